"""Invoices and payments under random sequences of everything that can happen to them, in two
businesses at once: create, activate, pay by hand, pay by gateway event (again, and again from
another context), credit, cancel, refund by hand and by event, events of the other business.

After every step, for every invoice of both businesses: paid = the applied parts of its
payment rows, 0 <= paid <= total - credited, credited <= total, each payment's applied part
within what is held of it, the status the amounts give, one row per provider payment, and no
row pointing across businesses. A refused step changes nothing."""

from __future__ import annotations

import dataclasses
import itertools
from decimal import Decimal

import pytest
from crm_invoicing import NAME, payments, rules, service
from crm_invoicing.models import Invoice, Payment, Status
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select, text

from crmcore import PluginInfo
from crmcore.context import Context
from crmcore.errors import CrmError
from crmcore.parties.service import create_party
from crmcore.payments.gateways import (
    PAYMENT_GATEWAYS_GROUP,
    EventKind,
    PaymentEvent,
    PaymentGateway,
    PaymentSession,
)
from crmcore.plugins.drivers import register_driver, unregister_driver
from crmcore.plugins.service import enable_plugin

GATEWAY = "machinepay"


class MachinePay(PaymentGateway):
    """A gateway that is never called here: the events are made by the machine."""

    name = GATEWAY
    title = "Machine pay"

    def create_session(self, request, settings):
        return PaymentSession(provider_reference=f"s-{request.attempt_id}", redirect_url="https://pay.example/")


class GatewayOwner:
    pass


amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("400"), places=2)
lines = st.lists(st.fixed_dictionaries({
    "description": st.just("Item"),
    "quantity": st.sampled_from(["1", "2", "3", "0.5"]),
    "unit_price": st.decimals(min_value=Decimal("-40"), max_value=Decimal("250"), places=2).map(str),
    "tax_rate": st.sampled_from(["0", "9", "21"]),
}), min_size=1, max_size=3)


def snapshot(ctx: Context, record_id: int) -> tuple:
    ctx.session.rollback()
    invoice = ctx.session.scalar(select(Invoice).where(Invoice.record_id == record_id))
    if invoice is None:
        return ()
    n = ctx.session.scalar(select(func.count()).select_from(Payment).where(Payment.invoice_id == invoice.id))
    return (invoice.status, invoice.paid_amount, invoice.credited_amount, invoice.total_amount, n)


class Invoices(RuleBasedStateMachine):
    contexts: tuple[Context, Context] = ()  # type: ignore[assignment]
    parties: tuple[int, int] = (0, 0)
    ids = itertools.count(1)

    drafts = Bundle("drafts")
    issued = Bundle("issued")

    def __init__(self) -> None:
        super().__init__()
        with self.contexts[0].crm.db.engine.begin() as conn:  # each example starts without invoices
            for table in ("invoicing_gateway_events", "invoicing_payments", "invoicing_payment_attempts",
                          "invoicing_lines", "invoicing_invoices"):
                conn.execute(text(f"delete from {table}"))
        self.tokens: dict[tuple[int, int], str] = {}
        self.events: list[tuple[int, PaymentEvent]] = []
        self.gateway_payments: list[tuple[int, int, str]] = []  # (business index, record id, provider id)

    # -- helpers ---------------------------------------------------------------------------

    def attempt(self, which: int, record_id: int) -> payments.Started | None:
        token = self.tokens.get((which, record_id))
        if token is None:
            return None
        try:
            return payments.start_attempt(self.contexts[which], token, GATEWAY)
        except CrmError:
            return None

    def refused_changes_nothing(self, which: int, record_id: int, call) -> object:
        before = snapshot(self.contexts[which], record_id)
        try:
            return call()
        except CrmError:
            assert snapshot(self.contexts[which], record_id) == before
            return None

    # -- rules -----------------------------------------------------------------------------

    @rule(target=drafts, which=st.sampled_from([0, 1]), items=lines)
    def create(self, which, items):
        ctx = self.contexts[which]
        record = service.create_invoice(ctx, {"party_id": self.parties[which], "lines": items})
        return (which, record.id)

    @rule(target=issued, inv=drafts)
    def activate(self, inv):
        which, record_id = inv
        done = self.refused_changes_nothing(which, record_id,
                                            lambda: service.activate_invoice(self.contexts[which], record_id))
        if done is None:
            return multiple()
        self.tokens[inv] = done.token
        return inv

    @rule(target=issued, which=st.sampled_from([0, 1]), items=lines)
    def create_and_issue(self, which, items):
        return self.activate(self.create(which, items))

    @rule(inv=issued, amount=amounts, over=st.booleans())
    def pay_by_hand(self, inv, amount, over):
        which, record_id = inv
        self.refused_changes_nothing(which, record_id, lambda: service.record_payment(
            self.contexts[which], record_id, {"amount": str(amount), "overpayment": over}))

    @rule(inv=issued, share=st.sampled_from(["all", "half", "more"]))
    def pay_by_event(self, inv, share):
        which, record_id = inv
        started = self.attempt(which, record_id)
        if started is None:
            return
        payments.session_created(self.contexts[which], started.attempt_id, f"s-{started.attempt_id}")
        amount = {"all": started.amount, "half": (started.amount / 2).quantize(Decimal("0.01")) or Decimal("0.01"),
                  "more": started.amount + Decimal("5")}[share]
        provider_id = f"pi_{next(self.ids)}"
        event = PaymentEvent(EventKind.SUCCEEDED, f"s-{started.attempt_id}", provider_id, amount, started.currency,
                             attempt_id=started.attempt_id, provider_event_id=f"evt_{provider_id}")
        assert payments.apply_event(self.contexts[which], GATEWAY, event) in ("applied", "overpaid")
        self.events.append((which, event))
        self.gateway_payments.append((which, record_id, provider_id))

    @rule(data=st.data())
    def deliver_again(self, data):
        """A redelivery, through the same context and through a second one (another worker)."""
        if not self.events:
            return
        which, event = data.draw(st.sampled_from(self.events))
        assert payments.apply_event(self.contexts[which], GATEWAY, event) == "duplicate"
        ctx = self.contexts[which]
        with Context.open(ctx.crm, ctx.business.slug, system=True) as second:
            assert payments.apply_event(second, GATEWAY, event) == "duplicate"

    @rule(data=st.data())
    def event_of_the_other_business(self, data):
        """An event naming the other business's attempt is unknown here and ignored."""
        if not self.events:
            return
        which, event = data.draw(st.sampled_from(self.events))
        other = 1 - which
        stray = PaymentEvent(EventKind.SUCCEEDED, None, f"stray_{next(self.ids)}", event.amount, event.currency,
                             attempt_id=event.attempt_id)
        assert payments.apply_event(self.contexts[other], GATEWAY, stray) == "ignored"

    @rule(inv=issued, partial=st.booleans())
    def credit(self, inv, partial):
        which, record_id = inv
        ctx = self.contexts[which]
        data = None
        if partial:
            found = self.refused_changes_nothing(which, record_id, lambda: service.get_invoice(ctx, record_id))
            if found is None or not found.lines:
                return
            data = {"lines": [{"line_id": found.lines[0].id, "quantity": "0.5"}]}
        self.refused_changes_nothing(which, record_id, lambda: service.create_credit_note(ctx, record_id, data))

    @rule(inv=st.one_of(drafts, issued))
    def cancel(self, inv):
        which, record_id = inv
        self.refused_changes_nothing(which, record_id, lambda: service.cancel_invoice(self.contexts[which], record_id))

    @rule(data=st.data(), amount=amounts, again=st.booleans())
    def refund_by_event(self, data, amount, again):
        if not self.gateway_payments:
            return
        which, record_id, provider_id = data.draw(st.sampled_from(self.gateway_payments))
        event = PaymentEvent(EventKind.REFUNDED, None, provider_id, amount, "EUR",
                             provider_event_id=f"evt_{next(self.ids)}", provider_refund_id=f"re_{next(self.ids)}")
        first = payments.apply_event(self.contexts[which], GATEWAY, event)
        assert first in ("refunded", "ignored")  # ignored: nothing left of the payment to refund
        if again:  # the same refund in another event (Stripe: charge.refunded, then refund.updated)
            other = dataclasses.replace(event, provider_event_id=f"evt_{next(self.ids)}")
            assert payments.apply_event(self.contexts[which], GATEWAY, other) in ("duplicate", "ignored")

    @rule(inv=issued, amount=amounts)
    def refund_by_hand(self, inv, amount):
        which, record_id = inv
        ctx = self.contexts[which]
        found = self.refused_changes_nothing(which, record_id, lambda: service.get_invoice(ctx, record_id))
        paid = [p for p in found.payments if p.refund_of_id is None] if found is not None else []
        if paid:
            self.refused_changes_nothing(which, record_id, lambda: service.record_refund(
                ctx, paid[0].id, {"amount": str(amount)}))

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def amounts_and_statuses_agree(self):
        for ctx in self.contexts:
            ctx.session.rollback()
            rows = ctx.session.scalars(select(Invoice)).all()
            for invoice in rows:
                pays = ctx.session.scalars(select(Payment).where(Payment.invoice_id == invoice.id)).all()
                applied = sum((p.applied_amount for p in pays), Decimal(0))
                assert invoice.paid_amount == applied
                assert 0 <= invoice.credited_amount <= max(invoice.total_amount, Decimal(0))
                assert 0 <= invoice.paid_amount <= max(invoice.total_amount - invoice.credited_amount, Decimal(0))
                for p in pays:
                    if p.refund_of_id is None:
                        where = rules.position(p.amount, p.applied_amount, [
                            (r.amount, r.applied_amount) for r in pays if r.refund_of_id == p.id])
                        assert 0 <= where.applied <= where.held
                if invoice.status not in (Status.DRAFT, Status.CANCELLED):
                    assert invoice.status == rules.derive_status(invoice.kind, invoice.status, invoice.total_amount,
                                                                 invoice.credited_amount, invoice.paid_amount)
                if invoice.status == Status.PAID:
                    assert invoice.paid_at is not None
                if invoice.status in (Status.DRAFT, Status.CANCELLED):
                    assert applied == 0

    @invariant()
    def one_row_per_provider_payment_and_no_cross_business_rows(self):
        with self.contexts[0].crm.db.engine.connect() as conn:
            dupes = conn.execute(text(
                "select count(*) from (select gateway, provider_payment_id from invoicing_payments "
                "where provider_payment_id is not null group by business_id, gateway, provider_payment_id "
                "having count(*) > 1) d")).scalar()
            crossed = conn.execute(text(
                "select count(*) from invoicing_payments p join invoicing_invoices i on i.id = p.invoice_id "
                "join records r on r.id = i.record_id "
                "where p.business_id <> i.business_id or i.business_id <> r.business_id")).scalar()
            attempts = conn.execute(text(
                "select count(*) from invoicing_payment_attempts a join invoicing_invoices i on i.id = a.invoice_id "
                "where a.business_id <> i.business_id")).scalar()
        assert (dupes, crossed, attempts) == (0, 0, 0)


@pytest.fixture
def machine(inv, other_ctx, register_plugin):
    enable_plugin(other_ctx, NAME)
    owner = register_plugin(GatewayOwner(), name="machinepay-owner", info=PluginInfo(title="Machine pay"),
                            enable_for=[inv, other_ctx])
    register_driver(PAYMENT_GATEWAYS_GROUP, GATEWAY, MachinePay, owner)
    parties = tuple(create_party(c, {"kind": "organisation", "name": f"Customer of {c.business.slug}",
                                     "currency": "EUR"}).id for c in (inv, other_ctx))
    Invoices.contexts, Invoices.parties = (inv, other_ctx), parties  # type: ignore[assignment]
    yield Invoices
    unregister_driver(PAYMENT_GATEWAYS_GROUP, GATEWAY)


def test_invoices_and_payments_stay_consistent(machine):
    run_state_machine_as_test(machine, settings=settings(
        max_examples=40, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]))
