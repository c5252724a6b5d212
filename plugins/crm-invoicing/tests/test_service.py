"""The invoice use cases: create (standalone, from a deal, from other plugins' lines), edit only
while draft, activate (numbers, dates, token), cancel, credit notes, manual payments and refunds,
the deal's move, hooks and notifications; and their errors, which change nothing."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from crm_invoicing import NAME, service, tokens
from crm_invoicing.models import Invoice, InvoiceLine, Payment
from sqlalchemy import func, select

from crmcore import PluginInfo, hookimpl
from crmcore.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from crmcore.parties.service import create_party
from crmcore.plugins.service import disable_plugin, enable_plugin
from crmcore.records import service as records

from .conftest import line  # noqa: TID252


def count(ctx, model) -> int:
    ctx.session.rollback()
    return ctx.session.scalar(select(func.count()).select_from(model))


def issued(ctx, party, *lines, **data):
    record = service.create_invoice(ctx, {"party_id": party.id, "lines": list(lines) or [line()], **data})
    service.activate_invoice(ctx, record.id)
    return record


def view(ctx, record_id):
    ctx.session.rollback()
    return service.get_invoice(ctx, record_id)


# --------------------------------------------------------------------------------------------
# create


def test_an_invoice_is_a_record_with_lines_priced_by_the_money_rule(inv, party):
    record = service.create_invoice(inv, {"party_id": party.id, "lines": [
        line(description="Hours", quantity="3", unit_price="33.335", discount_percent="10", unit="h"),
        line(description="Trade-in", quantity="1", unit_price="-20", tax_rate="0"),
    ]})
    got = view(inv, record.id)
    assert (got.record.type, got.record.reference, got.record.title) == ("invoice", None, "Invoice for Initech <BV>")
    assert got.invoice.status == "draft" and got.invoice.currency == "EUR"
    first, second = got.lines
    # 3 x 33.335 = 100.005, -10% = 90.0045 -> 90.00; tax 21% = 18.90
    assert (first.net_amount, first.tax_amount, first.total_amount) == (Decimal("90.00"), Decimal("18.90"),
                                                                        Decimal("108.90"))
    assert (second.net_amount, second.total_amount, first.unit) == (Decimal("-20.00"), Decimal("-20.00"), "h")
    assert (got.invoice.net_amount, got.invoice.tax_amount, got.invoice.total_amount) == (
        Decimal("70.00"), Decimal("18.90"), Decimal("88.90"))
    assert [li.position for li in got.lines] == [1, 2]


def test_default_tax_rate_currency_and_source_ids_from_other_plugins(inv, party, deal):
    record = service.create_invoice(inv, {"party_id": party.id, "currency": "usd", "deal_id": deal.id, "lines": [
        {"description": "Widget", "quantity": "1.5", "unit_price": "10", "product_id": 77,
         "source_kind": "order_line", "source_id": 501}]})
    got = view(inv, record.id)
    assert got.invoice.currency == "USD" and got.invoice.deal_id == deal.id
    (only,) = got.lines
    assert (only.tax_rate, only.product_id, only.source_kind, only.source_id) == (Decimal("21"), 77, "order_line", 501)
    links = records.record_details(inv, deal.id)["links_out"]
    assert [(link["kind"], link["record"].id) for link in links] == [("invoice", record.id)]


@pytest.mark.parametrize("bad, field, message", [
    (line(quantity="-1"), "lines.0.quantity", "more than 0"),
    (line(quantity="0"), "lines.0.quantity", "more than 0"),
    (line(tax_rate="19"), "lines.0.tax_rate", "use one of 0, 9, 21"),
    (line(unit_price="abc"), "lines.0.unit_price", "number"),
    (line(unit_price=1.5), "lines.0.unit_price", "number"),
    (line(unit_price="1.23456"), "lines.0.unit_price", "4 decimals"),
    (line(discount_percent="101"), "lines.0.discount_percent", "0 to 100"),
    (line(description=""), "lines.0.description", "empty"),
    (line(colour="red"), "lines.0.colour", "Unknown"),
    (line(quantity="99999999999999", unit_price="99999999"), "lines.0.unit_price", "too large"),
])
def test_bad_lines_are_refused_naming_the_field_and_nothing_is_written(inv, party, bad, field, message):
    before = (count(inv, Invoice), count(inv, InvoiceLine))
    with pytest.raises(ValidationFailed) as exc:
        service.create_invoice(inv, {"party_id": party.id, "lines": [line(), bad]
                                     if not field.startswith("lines.0") else [bad]})
    assert field in exc.value.errors and message in " ".join(exc.value.errors[field])
    assert (count(inv, Invoice), count(inv, InvoiceLine)) == before
    assert records.list_records(inv, record_type="invoice").items == []


def test_another_business_party_or_deal_is_not_found_and_writes_nothing(inv, party, other_ctx):
    theirs = create_party(other_ctx, {"kind": "organisation", "name": "Globex"})
    with pytest.raises(ValidationFailed) as exc:
        service.create_invoice(inv, {"party_id": theirs.id, "lines": [line()]})
    assert exc.value.errors == {"party_id": [f"party {theirs.id} not found"]}
    their_deal = records.create_record(other_ctx, "deal", {"title": "Theirs", "party_id": theirs.id})
    with pytest.raises(ValidationFailed) as exc:
        service.create_invoice(inv, {"party_id": party.id, "deal_id": their_deal.id, "lines": [line()]})
    assert "deal_id" in exc.value.errors
    with pytest.raises(ValidationFailed):
        service.create_invoice_from_deal(inv, their_deal.id)
    assert count(inv, Invoice) == 0


def test_a_deal_that_is_no_deal_or_has_no_party_is_refused(inv, party):
    lead = records.create_record(inv, "lead", {"title": "A lead", "party_id": party.id})
    with pytest.raises(ValidationFailed, match="cannot invoice") as exc:
        service.create_invoice_from_deal(inv, lead.id)
    assert "is a lead, not a deal" in exc.value.errors["deal_id"][0]
    bare = records.create_record(inv, "deal", {"title": "No party"})
    with pytest.raises(ValidationFailed) as exc:
        service.create_invoice_from_deal(inv, bare.id)
    assert exc.value.errors == {"deal_id": ["the deal has no party: give it one first"]}


def test_unknown_keys_and_bad_types_are_refused(inv, party):
    for data, field in (({"party_id": party.id, "discount": 5}, "discount"), ({"party_id": "x"}, "party_id"),
                        ({"party_id": party.id, "currency": "EURO"}, "currency"),
                        ({"party_id": party.id, "currency": "XYZ"}, "currency"), ({}, "party_id"),
                        ({"party_id": party.id, "lines": "nope"}, "lines")):
        with pytest.raises(ValidationFailed) as exc:
            service.create_invoice(inv, data)
        assert field in exc.value.errors
    with pytest.raises(ValidationFailed):
        service.create_invoice(inv, ["not", "a", "mapping"])


def test_from_a_deal_takes_the_lines_plugins_propose(inv, deal, register_plugin):
    class Proposer:
        @hookimpl
        def crm_record_defaults(self, ctx, record_type, source, party):
            if record_type == "invoice" and source is not None:
                return {"lines": [{"description": f"From {source.title}", "quantity": "3", "unit_price": "7",
                                   "tax_rate": "9", "colour": "ignored"}]}
            return None

    register_plugin(Proposer(), name="line-proposer", enable_for=inv)
    record = service.create_invoice_from_deal(inv, deal.id)
    (only,) = view(inv, record.id).lines
    assert (only.description, only.quantity, only.tax_rate) == ("From Printers for Initech", Decimal("3"),
                                                                Decimal("9"))


def test_from_a_deal_takes_party_contact_currency_and_an_amount_line(inv, deal, party):
    record = service.create_invoice_from_deal(inv, deal.id)
    got = view(inv, record.id)
    assert got.record.party_id == party.id and got.invoice.deal_id == deal.id
    (only,) = got.lines
    assert (only.description, only.quantity, only.unit_price, only.tax_rate) == (
        "Printers for Initech", Decimal("1"), Decimal("1000"), Decimal("21"))
    assert got.invoice.total_amount == Decimal("1210.00")


# --------------------------------------------------------------------------------------------
# drafts and activation


def test_edit_only_while_draft_and_activation_numbers_dates_and_token(inv, party):
    record = service.create_invoice(inv, {"party_id": party.id, "lines": [line()], "payment_terms_days": 30})
    service.update_draft(inv, record.id, {"lines": [line(quantity="1"), line(description="Travel", tax_rate="0",
                                                                             unit_price="15")],
                                          "customer_note": "Thanks!"})
    got = view(inv, record.id)
    assert [li.description for li in got.lines] == ["Consulting", "Travel"]
    assert got.invoice.total_amount == Decimal("90.50")
    done = service.activate_invoice(inv, record.id)
    got = view(inv, record.id)
    today = dt.date.today()
    assert got.record.reference == f"INV{today:%y}-0001" and got.invoice.status == "active"
    assert (got.invoice.issue_date, got.invoice.due_date) == (today, today + dt.timedelta(days=30))
    assert got.invoice.billing_name == "Initech <BV>" and got.invoice.billing_address["city"] == "Amsterdam"
    assert got.record.amount == Decimal("90.50")
    assert tokens.well_formed(done.token) and len(done.token) * 6 >= 128
    assert got.invoice.token_hash == tokens.digest(done.token) and done.token not in (got.invoice.token_hash or "")
    assert got.invoice.token_prefix == done.token[:10]
    with pytest.raises(Conflict, match="only a draft"):
        service.update_draft(inv, record.id, {"customer_note": "changed"})
    with pytest.raises(Conflict, match="not a draft"):
        service.activate_invoice(inv, record.id)
    assert view(inv, record.id).invoice.customer_note == "Thanks!"


def test_numbers_are_given_at_activation_without_gaps(inv, party):
    first = service.create_invoice(inv, {"party_id": party.id, "lines": [line()]})
    empty = service.create_invoice(inv, {"party_id": party.id})
    second = service.create_invoice(inv, {"party_id": party.id, "lines": [line()]})
    service.activate_invoice(inv, second.id)
    with pytest.raises(ValidationFailed, match="cannot be issued") as exc:
        service.activate_invoice(inv, empty.id)  # refused: no number is used
    assert exc.value.errors == {"lines": ["add at least one line"]}
    service.activate_invoice(inv, first.id)
    year = f"{dt.date.today():%y}"
    refs = [view(inv, r.id).record.reference for r in (second, first, empty)]
    assert refs == [f"INV{year}-0001", f"INV{year}-0002", None]


def test_an_invoice_of_zero_or_less_is_not_issued(inv, party):
    zero = service.create_invoice(inv, {"party_id": party.id, "lines": [line(unit_price="10"),
                                                                        line(unit_price="-10")]})
    with pytest.raises(ValidationFailed) as exc:
        service.activate_invoice(inv, zero.id)
    assert "more than zero" in exc.value.errors["lines"][0]
    assert view(inv, zero.id).invoice.status == "draft" and view(inv, zero.id).record.reference is None


def test_a_draft_made_by_the_core_form_works_like_any_draft(inv, party):
    bare = records.create_record(inv, "invoice", {"title": "Typed by hand", "party_id": party.id})
    assert view(inv, bare.id).invoice.status == "draft" and view(inv, bare.id).lines == []
    service.update_draft(inv, bare.id, {"lines": [line()]})
    service.activate_invoice(inv, bare.id)
    assert view(inv, bare.id).invoice.status == "active"


def test_roles_and_other_businesses(inv, party, make_user, business, other_ctx):
    record = service.create_invoice(inv, {"party_id": party.id, "lines": [line()]})
    reader = make_user(business, "read_only")
    assert service.get_invoice(reader, record.id).record.id == record.id
    with pytest.raises(PermissionDenied):
        service.activate_invoice(reader, record.id)
    enable_plugin(other_ctx, NAME)
    for call in (lambda: service.get_invoice(other_ctx, record.id), lambda: service.activate_invoice(other_ctx, record.id),
                 lambda: service.record_payment(other_ctx, record.id, {"amount": "1"})):
        with pytest.raises(NotFound):
            call()
    deal = records.create_record(inv, "deal", {"title": "Not an invoice"})
    with pytest.raises(NotFound):
        service.get_invoice(inv, deal.id)


def test_disabled_the_invoices_are_hidden_and_kept(inv, party):
    record = issued(inv, party)
    disable_plugin(inv, NAME)
    with pytest.raises(NotFound):
        service.get_invoice(inv, record.id)
    enable_plugin(inv, NAME)
    assert view(inv, record.id).invoice.status == "active"


# --------------------------------------------------------------------------------------------
# payments, credit notes, cancel


def test_manual_payments_up_to_the_balance_unless_marked_as_overpayment(inv, party):
    record = issued(inv, party)  # 121.00
    with pytest.raises(ValidationFailed) as exc:
        service.record_payment(inv, record.id, {"amount": "0"})
    assert "amount" in exc.value.errors
    with pytest.raises(ValidationFailed, match="more than the balance") as exc:
        service.record_payment(inv, record.id, {"amount": "121.01"})
    assert "121.00" in exc.value.errors["amount"][0]
    with pytest.raises(ValidationFailed) as exc:
        service.record_payment(inv, record.id, {"amount": "10.001"})
    assert exc.value.errors == {"amount": ["EUR amounts have at most 2 decimals"]}
    with pytest.raises(ValidationFailed) as exc:
        service.record_payment(inv, record.id, {"amount": "1", "received_on": (dt.date.today() + dt.timedelta(days=2)
                                                                                 ).isoformat()})
    assert "received_on" in exc.value.errors
    assert count(inv, Payment) == 0
    service.record_payment(inv, record.id, {"amount": "21", "method": "cash"})
    assert view(inv, record.id).invoice.status == "partly_paid"
    service.record_payment(inv, record.id, {"amount": "150", "overpayment": True})
    got = view(inv, record.id)
    assert (got.invoice.status, got.invoice.paid_amount, got.balance, got.overpaid) == (
        "paid", Decimal("121.00"), Decimal("0.00"), Decimal("50.00"))


def test_a_refund_gives_back_the_overpaid_part_first_then_reopens(inv, party):
    record = issued(inv, party)
    payment = service.record_payment(inv, record.id, {"amount": "141", "overpayment": True})
    service.record_refund(inv, payment.id, {"amount": "20"})
    assert view(inv, record.id).invoice.status == "paid"  # only the overpaid 20 went back
    service.record_refund(inv, payment.id, {"amount": "21"})
    got = view(inv, record.id)
    assert (got.invoice.status, got.invoice.paid_amount, got.balance) == ("partly_paid", Decimal("100.00"),
                                                                           Decimal("21.00"))
    with pytest.raises(ValidationFailed, match="more than the payment"):
        service.record_refund(inv, payment.id, {"amount": "100.01"})


def test_cancel_without_payments_and_credit_notes_with(inv, party):
    draft = service.create_invoice(inv, {"party_id": party.id, "lines": [line()]})
    service.cancel_invoice(inv, draft.id)
    assert view(inv, draft.id).invoice.status == "cancelled"
    paid = issued(inv, party)
    service.record_payment(inv, paid.id, {"amount": "21"})
    with pytest.raises(Conflict, match="issue a credit note"):
        service.cancel_invoice(inv, paid.id)
    with pytest.raises(Conflict):
        service.record_payment(inv, draft.id, {"amount": "1"})


def test_a_credit_note_reduces_what_is_due_and_turns_covered_payments_into_overpayment(inv, party):
    record = issued(inv, party, line(quantity="3", unit_price="100"), line(description="Setup", quantity="1",
                                                                         unit_price="50", tax_rate="0"))
    got = view(inv, record.id)
    assert got.invoice.total_amount == Decimal("413.00")
    hours, setup = got.lines
    service.record_payment(inv, record.id, {"amount": "300"})
    note = service.create_credit_note(inv, record.id, {"lines": [{"line_id": hours.id, "quantity": "1"}],
                                                       "reason": "one hour less"})
    credit = view(inv, note.id)
    assert credit.record.reference == f"CN{dt.date.today():%y}-0001" and credit.invoice.status == "active"
    assert credit.invoice.total_amount == Decimal("-121.00") and credit.lines[0].quantity == Decimal("-1")
    got = view(inv, record.id)
    assert (got.invoice.credited_amount, got.invoice.paid_amount, got.balance, got.invoice.status) == (
        Decimal("121.00"), Decimal("292.00"), Decimal("0.00"), "paid")
    assert got.overpaid == Decimal("8.00")  # paid 300 of what is now 292: 8 to give back
    with pytest.raises(ValidationFailed) as exc:
        service.create_credit_note(inv, record.id, {"lines": [{"line_id": hours.id, "quantity": "3"}]})
    assert exc.value.errors == {"lines.0.quantity": ["at most 2 is left to credit on this line"]}
    service.create_credit_note(inv, record.id)  # everything left
    got = view(inv, record.id)
    assert got.invoice.credited_amount == got.invoice.total_amount and got.invoice.paid_amount == 0
    assert got.invoice.status == "credited" and got.overpaid == Decimal("300.00")
    with pytest.raises(ValidationFailed, match="nothing to credit"):
        service.create_credit_note(inv, record.id)
    with pytest.raises(Conflict):
        service.cancel_invoice(inv, note.id)


def test_partial_credits_of_a_line_add_up_to_the_line_exactly(inv, party):
    record = issued(inv, party, line(quantity="3", unit_price="0.335", tax_rate="9"))
    (only,) = view(inv, record.id).lines
    for _ in range(3):
        service.create_credit_note(inv, record.id, {"lines": [{"line_id": only.id, "quantity": "1"}]})
    got = view(inv, record.id)
    assert got.invoice.credited_amount == got.invoice.total_amount and got.balance == 0


def test_a_credit_note_line_of_another_invoice_is_refused(inv, party):
    one, two = issued(inv, party), issued(inv, party)
    (other_line,) = view(inv, two.id).lines
    with pytest.raises(ValidationFailed) as exc:
        service.create_credit_note(inv, one.id, {"lines": [{"line_id": other_line.id}]})
    assert "not a line of this invoice" in exc.value.errors["lines.0.line_id"][0]


# --------------------------------------------------------------------------------------------
# paid: the deal, the hooks, the notification


class Listener:
    def __init__(self) -> None:
        self.heard: list[tuple[str, int, str]] = []

    @hookimpl
    def crm_after_invoice_activated(self, ctx, invoice):
        self.heard.append(("activated", invoice.id, invoice.type))

    @hookimpl
    def crm_after_invoice_paid(self, ctx, invoice):
        self.heard.append(("paid", invoice.id, invoice.type))

    @hookimpl
    def crm_after_invoice_cancelled(self, ctx, invoice):
        self.heard.append(("cancelled", invoice.id, invoice.type))


def _won_stage(ctx, deal):
    from crmcore.pipelines.service import list_pipelines

    pipeline = next(p for p in list_pipelines(ctx, "deal") if p.id == deal.pipeline_id)
    return next(s for s in pipeline.stages if s.kind == "won")


def test_full_payment_moves_the_deal_and_raises_the_hooks(inv, deal, register_plugin):
    listener = Listener()
    register_plugin(listener, name="invoice-listener", info=PluginInfo(title="L", depends=(NAME,)), enable_for=inv)
    won = _won_stage(inv, deal)
    service.save_settings(inv, {"paid_stage_id": won.id})
    record = service.create_invoice_from_deal(inv, deal.id)
    service.activate_invoice(inv, record.id)
    service.record_payment(inv, record.id, {"amount": "1000"})
    assert records.get_record(inv, deal.id).status == "open"
    service.record_payment(inv, record.id, {"amount": "210"})
    moved = records.get_record(inv, deal.id)
    assert (moved.status, moved.stage_id) == ("won", won.id)
    assert listener.heard == [("activated", record.id, "invoice"), ("paid", record.id, "invoice")]
    other = issued(inv, records.get_record(inv, deal.id))
    service.cancel_invoice(inv, other.id)
    assert listener.heard[-1] == ("cancelled", other.id, "invoice")


def test_the_paid_stage_setting_is_checked_against_the_pipelines(inv, other_ctx, deal):
    with pytest.raises(ValidationFailed) as exc:
        service.save_settings(inv, {"paid_stage_id": 999999})
    assert "paid_stage_id" in exc.value.errors
    theirs = _won_stage(other_ctx, records.create_record(other_ctx, "deal", {"title": "Theirs"}))
    with pytest.raises(ValidationFailed):
        service.save_settings(inv, {"paid_stage_id": theirs.id})
    with pytest.raises(ValidationFailed) as exc:
        service.save_settings(inv, {"tax_rates": ["0", "21"], "default_tax_rate": "9"})
    assert "default_tax_rate" in exc.value.errors


def test_a_vetoed_deal_move_leaves_the_payment_and_says_why(inv, deal, register_plugin):
    from crmcore import Veto

    class Refuser:
        @hookimpl
        def crm_before_stage_change(self, ctx, record, from_stage, to_stage):
            raise Veto("deals are closed by the sales manager")

    register_plugin(Refuser(), name="refuser", enable_for=inv)
    service.save_settings(inv, {"paid_stage_id": _won_stage(inv, deal).id})
    record = service.create_invoice_from_deal(inv, deal.id)
    service.activate_invoice(inv, record.id)
    service.record_payment(inv, record.id, {"amount": "1210"})
    assert view(inv, record.id).invoice.status == "paid"
    assert records.get_record(inv, deal.id).status == "open"
    from crmcore.timeline.service import feed

    summaries = [e.summary for e in feed(inv, record_id=record.id).items]
    assert any("not moved" in s and "sales manager" in s for s in summaries)


def test_activation_and_payment_notify_through_the_rules(inv, party):
    from crmcore.messaging import rules
    from crmcore.messaging import service as messaging
    from crmcore.messaging.models import Message

    messaging.create_template(inv, {"key": "invoice_mail", "name": "Invoice", "subject": "Invoice {{ invoice.number }}",
                                    "body_text": "Pay {{ invoice.balance }} {{ invoice.currency }} at {{ invoice.pay_url }}"})
    template = messaging.list_templates(inv)[-1]
    rules.create_rule(inv, {"event": "invoice.activated", "recipient": "client_contact", "channel": "email",
                            "template_id": template.id})
    done = service.activate_invoice(inv, service.create_invoice(inv, {"party_id": party.id, "lines": [line()]}).id)
    inv.session.rollback()
    (message,) = inv.session.scalars(select(Message).where(Message.event == "invoice.activated")).all()
    assert message.to_address == "billing@initech.example"
    assert f"Pay 121.00 EUR at https://crm.example.test/pay/acme/{done.token}" in message.body_text
