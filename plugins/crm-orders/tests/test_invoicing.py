"""Invoicing an order through the real crm-invoicing: the invoice draft and the order's new state
in one transaction; a refusal of invoicing changes nothing; a cancelled invoice lets the order be
invoiced again; loaners are invoiced with their charges; without invoicing enabled, orders still
work and say why they cannot be invoiced."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from crm_invoicing import service as invoicing
from crm_orders import service
from crm_quoting import service as quoting
from sqlalchemy import func, select

from crmcore.errors import Conflict, ValidationFailed
from crmcore.records.models import Record

from .conftest import accepted_quote, line, new_party, new_product  # noqa: TID252


def invoices(ctx):
    return ctx.session.scalar(select(func.count()).select_from(Record).where(Record.type == "invoice"))


def order(ctx, lines=None):
    return service.create_order(ctx, {"party_id": new_party(ctx).id, "lines": lines or [
        line(quantity="3", unit_price="0.3333", discount_percent="12.5", tax_rate="9"), line(unit_price="19.99")]})


def test_an_open_order_is_invoiced_and_locked(inv):
    record = order(inv)
    invoice = service.create_invoice(inv, record.id)
    view = service.get_order(inv, record.id)
    assert (view.status, view.order.invoice_id) == ("invoiced", invoice.id)
    assert view.invoice.status == "draft" and view.locked and "invoice" not in view.actions
    found = invoicing.get_invoice(inv, invoice.id)
    assert found.invoice.order_id == record.id and found.record.party_id == record.party_id
    assert [(ln.source_kind, ln.source_id) for ln in found.lines] == [("order_line", ln.id) for ln in view.lines]
    assert [ln.net_amount for ln in found.lines] == [ln.net_amount for ln in view.lines]
    assert (found.invoice.net_amount, found.invoice.tax_amount, found.invoice.total_amount) == \
        (view.totals.net, view.totals.tax, view.totals.total)
    with pytest.raises(Conflict) as exc:
        service.update_order(inv, record.id, {"notes": "after the invoice"})
    assert "invoiced and locked" in exc.value.message
    with pytest.raises(Conflict) as exc:
        service.create_invoice(inv, record.id)
    assert "invoiced already" in exc.value.message
    assert invoices(inv) == 1


def test_quote_order_and_invoice_agree_to_the_cent(inv):
    party = new_party(inv)
    rates = new_product(inv, sku="P-9", unit_price=D("12.345"), tax_rate=D(9))
    quote = accepted_quote(inv, party, [{"product_id": rates.id, "quantity": "7"},
                                        line(quantity="2.5", unit_price="33.3333", discount_percent="3")])
    made = service.order_for_quote(inv, quote.id)
    service.fulfil_order(inv, made.id)
    invoice = invoicing.get_invoice(inv, service.create_invoice(inv, made.id).id)
    q = quoting.get_quote(inv, quote.id)
    assert invoice.invoice.quote_id == quote.id and invoice.invoice.order_id == made.id
    assert (q.totals.net, q.totals.tax, q.totals.total) == \
        (invoice.invoice.net_amount, invoice.invoice.tax_amount, invoice.invoice.total_amount)
    assert service.get_order(inv, made.id).status == "invoiced"


def test_a_refusal_of_invoicing_changes_nothing(inv):
    odd = new_product(inv, sku="BOOK-1", name="Manual", unit_price=D("20"), tax_rate=D(6))  # quoting allows its own rate
    record = order(inv, [line(), {"product_id": odd.id}])
    with pytest.raises(ValidationFailed) as exc:
        service.create_invoice(inv, record.id)
    assert "lines.1.tax_rate" in exc.value.errors and "invoicing refused" in exc.value.message
    view = service.get_order(inv, record.id)
    assert (view.status, view.order.invoice_id, view.order.invoiced_at) == ("open", None, None)
    assert invoices(inv) == 0 and "invoice" in view.actions


def test_a_cancelled_invoice_lets_the_order_be_invoiced_again(inv):
    record = order(inv)
    first = service.create_invoice(inv, record.id)
    invoicing.cancel_invoice(inv, first.id, "Wrong contact")
    view = service.get_order(inv, record.id)
    assert view.invoice.cancelled and view.status == "invoiced" and "invoice" in view.actions
    second = service.create_invoice(inv, record.id)
    view = service.get_order(inv, record.id)
    assert second.id != first.id and view.order.invoice_id == second.id and not view.invoice.cancelled
    assert "invoice" not in view.actions and invoices(inv) == 2


def test_without_invoicing_orders_work_but_are_not_invoiced(o):
    record = order(o)
    view = service.get_order(o, record.id)
    assert "invoice" not in view.actions and not service.invoicing_available(o)
    with pytest.raises(Conflict) as exc:
        service.create_invoice(o, record.id)
    assert "invoicing is not enabled" in exc.value.message
    service.fulfil_order(o, record.id)
    assert service.get_order(o, record.id).status == "fulfilled"


def test_orders_that_cannot_be_invoiced(inv):
    cancelled = order(inv)
    service.cancel_order(inv, cancelled.id, "Not needed")
    empty = service.create_order(inv, {"party_id": new_party(inv).id})
    loan = service.create_order(inv, {"kind": "loaner", "party_id": new_party(inv).id, "unit_description": "Demo"})
    for record, words in ((cancelled, "is cancelled: it cannot be invoiced"), (empty, "no lines to invoice"),
                          (loan, "once its unit is out")):
        with pytest.raises(Conflict) as exc:
            service.create_invoice(inv, record.id)
        assert words in exc.value.message
    with pytest.raises(ValidationFailed) as exc:
        service.create_invoice(inv, order(inv).id, {"charges": [line()]})
    assert "only a loaner order takes charges" in exc.value.errors["charges"][0]
    assert invoices(inv) == 0


def test_a_loaner_is_invoiced_with_its_charges_and_keeps_its_status(inv):
    day = service.today(inv)
    loan = service.create_order(inv, {"kind": "loaner", "party_id": new_party(inv).id, "unit_description": "Demo",
                                      "lines": [line(description="Loan fee", unit_price="150")]})
    service.hand_over(inv, loan.id, {"due_back": (day + dt.timedelta(days=7)).isoformat()})
    with pytest.raises(ValidationFailed) as exc:
        service.create_invoice(inv, loan.id, {"charges": [line(description="Repair"), line(unit_price="x")]})
    assert set(exc.value.errors) == {"charges.1.unit_price"}
    assert len(service.get_order(inv, loan.id).lines) == 1 and invoices(inv) == 0
    invoice = service.create_invoice(inv, loan.id, {"charges": [line(description="Repair of the door",
                                                                     unit_price="80")]})
    view = service.get_order(inv, loan.id)
    assert (view.status, view.order.invoice_id) == ("out", invoice.id)
    assert [ln.description for ln in view.lines] == ["Loan fee", "Repair of the door"]
    found = invoicing.get_invoice(inv, invoice.id)
    assert found.invoice.net_amount == D("230.00") == view.order.net_amount
    service.return_unit(inv, loan.id)
    assert service.get_order(inv, loan.id).status == "returned"
