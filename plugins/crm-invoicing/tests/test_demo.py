"""Invoicing's demo data (hook ``crm_seed_demo``, ``trylast``): the invoice drafted from an accepted
quote issued, one issued and partly paid by a bank transfer recorded by hand, one draft; without
an accepted quote, the oldest won deal's invoice is issued instead."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from crm_invoicing import service
from crm_invoicing.plugin import crm_seed_demo

from crmcore.fields.service import define_field
from crmcore.parties.service import create_party
from crmcore.records import service as records


@pytest.fixture
def deals(inv):
    """A won deal, then two open ones, oldest first (the second with a machine model)."""
    define_field(inv, "record:deal", {"key": "machine_model", "label": "Machine model", "type": "text"})
    made = []
    for name, amount, custom in (("Stonebridge Construction", "140000", {"machine_model": "Excavator EX-140"}),
                                 ("Riverford Rentals", "46000", {"machine_model": "Skid steer SS-50"}),
                                 ("Oakdale Farms", "18000", {})):
        party = create_party(inv, {"kind": "organisation", "name": name})
        made.append(records.create_record(inv, "deal", {"title": f"Machine for {name}", "party_id": party.id,
                                                        "amount": amount, "currency": "EUR", "custom": custom}))
    records.close_won(inv, made[0].id)
    return made


def _by_status(ctx) -> dict[str, tuple]:
    return {invoice.status: (record, invoice) for record, invoice in service.list_invoices(ctx, limit=50).items}


def test_hook_is_called_after_the_other_plugins():
    from crm_invoicing import plugin

    assert plugin.crm_seed_demo.crmcore_impl["trylast"] is True


def test_seed_demo_without_quotes_invoices_deals(inv, deals):
    won, open_deal, last = deals
    lines = crm_seed_demo(inv)
    found = _by_status(inv)
    assert sorted(found) == ["active", "draft", "partly_paid"]
    issued, paid, draft = found["active"], found["partly_paid"], found["draft"]
    assert lines == [f"3 invoices: {issued[0].reference} issued, {paid[0].reference} partly paid by bank transfer, "
                     "1 draft"]
    assert (issued[1].deal_id, paid[1].deal_id, draft[1].deal_id) == (won.id, open_deal.id, last.id)

    view = service.get_invoice(inv, issued[0].id)
    assert [(li.description, li.unit_price) for li in view.lines] == [("Excavator EX-140", D("140000")),
                                                                       ("Delivery and commissioning", D("850"))]
    assert issued[1].total_amount == D("170428.50")  # (140000 + 850) * 1.21
    (payment,) = service.get_invoice(inv, paid[0].id).payments
    assert (payment.method, payment.gateway) == ("bank_transfer", None)
    assert payment.amount == (paid[1].total_amount * D("0.30")).quantize(D("0.01")) == paid[1].paid_amount
    assert payment.reference == f"Down payment {paid[0].reference}"
    assert draft[0].reference is None and draft[0].title == f"Service contract: {last.title}"
    assert [li.description for li in service.get_invoice(inv, draft[0].id).lines] == ["Full service contract, 1 year"]


def test_seed_demo_issues_the_invoice_of_the_accepted_quote(inv, deals):
    pytest.importorskip("crm_quoting")
    from crm_quoting import service as quoting

    from crmcore.plugins.service import enable_plugin

    won, open_deal, last = deals
    enable_plugin(inv, "catalog")
    enable_plugin(inv, "quoting")
    quote = quoting.create_quote_for_deal(inv, open_deal.id, {"lines": [
        {"description": "Skid steer SS-50", "quantity": "1", "unit_price": "46200", "tax_rate": "21"}]})
    acceptance = quoting.accept_quote(inv, quote.id)
    assert acceptance.invoice_id is not None

    lines = crm_seed_demo(inv)
    found = _by_status(inv)
    issued_record, issued = found["active"]
    assert issued_record.id == acceptance.invoice_id and issued.quote_id == quote.id
    assert issued.total_amount == quoting.get_quote(inv, quote.id).quote.total_amount
    assert lines[0].startswith(f"3 invoices: {issued_record.reference} issued from the accepted quote, ")
    # the accepted quote's deal is invoiced already: the others are used
    assert found["partly_paid"][1].deal_id == won.id and found["draft"][1].deal_id == last.id


def test_seed_demo_without_deals_makes_nothing(inv):
    assert crm_seed_demo(inv) == []
    assert service.list_invoices(inv).items == []
