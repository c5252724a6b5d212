"""handle_return: Authorize.Net tells the return page nothing; the gateway looks the attempt's
invoice number up among the recent unsettled transactions, and reports nothing when it cannot."""

from __future__ import annotations

from decimal import Decimal

from crmcore.payments.gateways import EventKind, PaymentRequest, ReturnRequest


def start(fake, gateway, attempt_id=42, amount="80.00"):
    request = PaymentRequest(attempt_id=attempt_id, idempotency_key=f"k{attempt_id}", amount=Decimal(amount),
                             currency="USD", reference="INV-9", description="Service",
                             return_url="https://crm.example.com/r", cancel_url="https://crm.example.com/c")
    session = gateway.create_session(request, fake.settings())
    return session.provider_reference, session.redirect_fields["token"]


def back(gateway, fake, reference, **settings):
    # the query is the payer's browser's: never trusted, so a forged one changes nothing
    forged = {"transId": "60000000999", "responseCode": "1"}
    return gateway.handle_return(ReturnRequest(provider_reference=reference, query=forged, form={}),
                                 fake.settings(**settings))


def test_a_paid_attempt_is_confirmed_on_return(fake, gateway):
    reference, token = start(fake, gateway)
    start(fake, gateway, attempt_id=43)
    other_reference, other_token = start(fake, gateway, attempt_id=44)
    fake.pay(other_token)
    tx = fake.pay(token)
    [event] = back(gateway, fake, reference)
    assert (event.kind, event.provider_payment_id, event.amount, event.attempt_id, event.provider_reference) == \
        (EventKind.SUCCEEDED, tx.trans_id, Decimal("80.00"), 42, "A42")
    [listing] = fake.requests("getUnsettledTransactionListRequest")
    assert listing.body["sorting"] == {"orderBy": "submitTimeUTC", "orderDescending": True}


def test_not_paid_or_only_declined_reports_nothing(fake, gateway):
    reference, token = start(fake, gateway)
    assert back(gateway, fake, reference) == []
    fake.pay(token, card_number="4000300011110002")
    assert back(gateway, fake, reference) == []  # the decline comes by webhook; the payer may try again
    paid = fake.pay(token)
    assert [e.provider_payment_id for e in back(gateway, fake, reference)] == [paid.trans_id]


def test_a_foreign_reference_is_not_looked_up(fake, gateway):
    assert back(gateway, fake, "INV-9") == []
    assert fake.received == []


def test_failures_report_nothing_and_are_logged(fake, gateway, caplog):
    reference, token = start(fake, gateway)
    fake.pay(token)
    fake.script(500)
    assert back(gateway, fake, reference) == []
    assert "could not confirm" in caplog.text
    assert back(gateway, fake, reference, transaction_key="WrongKey12345678") == []
    assert "WrongKey12345678" not in caplog.text and fake.transaction_key not in caplog.text
    fake.hang = True
    assert back(gateway, fake, reference, timeout=0.2) == []
    fake.release()
    assert back(gateway, fake, reference, transaction_key="short") == []
    assert len(back(gateway, fake, reference)) == 1
