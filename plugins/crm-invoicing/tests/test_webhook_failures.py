"""A webhook that meets a temporary failure is answered 503 so the provider delivers it again;
one that is bad (signature, body) stays a 400. Temporary: the gateway's TemporaryFailure (it
could not ask its provider) and the database busy (another writer holds the lock beyond the
wait). Nothing is recorded by the failed delivery; the redelivery applies it once."""

from __future__ import annotations

import time
from contextlib import contextmanager
from decimal import Decimal

from crm_invoicing.models import GatewayEvent
from sqlalchemy import event, func, select, text

from .test_pay_flow import Payer, attempts, continue_target, invoice_state, issue_from_deal  # noqa: TID252
from .testgateway import NAME as GATEWAY  # noqa: TID252
from .testgateway import signature  # noqa: TID252

HOOK = f"/hooks/payments/{GATEWAY}/acme"


def paid_at_the_provider(inv, app, deal, gateway):
    """An invoice whose session the payer paid; the CRM has not heard of it yet."""
    record, path = issue_from_deal(inv, deal)
    continue_target(Payer(app).pay(path))
    (attempt,) = attempts(inv)
    return record, gateway.pay(attempt.provider_reference)


def events_logged(ctx):
    ctx.session.rollback()
    return ctx.session.scalar(select(func.count()).select_from(GatewayEvent))


def test_the_gateway_unable_to_ask_its_provider_is_503_then_the_redelivery_applies(inv, app, deal, gateway):
    record, session = paid_at_the_provider(inv, app, deal, gateway)
    client = app.test_client()
    hook_body, headers = gateway.webhook("payment.updated", {"id": session["id"]}, event_id="evt_updated")
    gateway.script(502)  # the provider's API fails while the gateway asks it about the session
    answer = client.post(HOOK, data=hook_body, headers=headers)
    assert answer.status_code == 503 and int(answer.headers["Retry-After"]) > 0
    assert invoice_state(inv, record.id) == ("active", Decimal("0"), 0) and events_logged(inv) == 0
    assert client.post(HOOK, data=hook_body, headers=headers).status_code == 200
    assert invoice_state(inv, record.id) == ("paid", Decimal("1077.00"), 1)
    assert client.post(HOOK, data=hook_body, headers=headers).status_code == 200  # once more: a duplicate
    assert invoice_state(inv, record.id) == ("paid", Decimal("1077.00"), 1)


def test_bad_signatures_and_bodies_stay_400(inv, app, deal, gateway):
    record, session = paid_at_the_provider(inv, app, deal, gateway)
    client = app.test_client()
    hook_body, headers = gateway.webhook("payment.updated", {"id": session["id"]})
    _, wrong = gateway.webhook("payment.updated", {"id": session["id"]}, secret="whsec_not_the_secret_at_all")
    assert client.post(HOOK, data=hook_body, headers=wrong).status_code == 400
    assert client.post(HOOK, data=hook_body + b" ", headers=headers).status_code == 400  # the body changed
    stamp = int(time.time())
    not_json = b"{not json"  # signed right, unreadable
    signed = {"TestPay-Signature": f"t={stamp},v1={signature(gateway.webhook_secret, stamp, not_json)}"}
    assert client.post(HOOK, data=not_json, headers=signed).status_code == 400
    assert invoice_state(inv, record.id) == ("active", Decimal("0"), 0) and events_logged(inv) == 0


@contextmanager
def database_busy(ctx):
    """Another connection holds what the webhook needs to write (SQLite: the write lock;
    PostgreSQL: the invoice rows), and the app's connections wait 0.3 s for it, not 30."""
    engine = ctx.crm.db.engine
    sqlite = engine.dialect.name == "sqlite"

    def short_wait(dbapi_conn, _record, _proxy):
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout=300" if sqlite else "SET lock_timeout = '300ms'")
        cursor.close()

    def normal_wait(dbapi_conn, _record):
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout=30000" if sqlite else "SET lock_timeout = 0")
        cursor.close()

    blocker = engine.connect().execution_options(crm_write=True)
    transaction = blocker.begin()  # SQLite: BEGIN IMMEDIATE, the write lock
    if not sqlite:
        blocker.execute(text("select id from invoicing_invoices for update"))
    event.listen(engine, "checkout", short_wait)
    event.listen(engine, "checkin", normal_wait)
    try:
        yield
    finally:
        transaction.rollback()
        blocker.close()
        event.remove(engine, "checkout", short_wait)
        event.remove(engine, "checkin", normal_wait)


def test_the_database_busy_is_503_then_the_redelivery_applies(inv, app, deal, gateway):
    record, session = paid_at_the_provider(inv, app, deal, gateway)
    record_id = record.id
    inv.session.rollback()  # the test's own session holds nothing meanwhile
    client = app.test_client()
    hook_body, headers = gateway.webhook("payment.succeeded", session, event_id="evt_busy")
    with database_busy(inv):
        answer = client.post(HOOK, data=hook_body, headers=headers)
    assert answer.status_code == 503 and answer.headers["Retry-After"]
    assert invoice_state(inv, record_id) == ("active", Decimal("0"), 0) and events_logged(inv) == 0
    assert client.post(HOOK, data=hook_body, headers=headers).status_code == 200
    assert invoice_state(inv, record_id) == ("paid", Decimal("1077.00"), 1)
