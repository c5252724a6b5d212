"""refund: the card's masked number from getTransactionDetails, then refundTransaction; retries
recognised by Authorize.Net's duplicate check; refusals explained."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from crmcore.payments.gateways import PaymentRequest, PermanentFailure, TemporaryFailure


def paid(fake, gateway, amount="250.00", settle=True, **pay):
    request = PaymentRequest(attempt_id=7, idempotency_key="k7", amount=Decimal(amount), currency="USD",
                             reference="INV-7", description="Parts", return_url="https://crm.example.com/r",
                             cancel_url="https://crm.example.com/c")
    token = gateway.create_session(request, fake.settings()).redirect_fields["token"]
    tx = fake.pay(token, **pay)
    if settle:
        fake.settle()
    return tx


def test_refund_reads_the_card_then_refunds(fake, gateway):
    tx = paid(fake, gateway, card_number="5424000000000015")
    result = gateway.refund(tx.trans_id, Decimal("100.00"), "USD", "refund-key-1", fake.settings())
    [details] = fake.requests("getTransactionDetailsRequest")
    assert details.body["transId"] == tx.trans_id
    [refund] = fake.requests("createTransactionRequest")
    request = refund.body["transactionRequest"]
    assert request["transactionType"] == "refundTransaction" and request["amount"] == "100.00"
    assert request["payment"] == {"creditCard": {"cardNumber": "0015", "expirationDate": "XXXX"}}
    assert request["refTransId"] == tx.trans_id
    assert request["transactionSettings"] == {"setting": [{"settingName": "duplicateWindow", "settingValue": "28800"}]}
    assert len(request["order"]["invoiceNumber"]) == 20 and len(refund.body["refId"]) == 20
    assert result.amount == Decimal("100.00") and result.status == "succeeded"
    assert fake.transactions[result.provider_refund_id].ref_trans_id == tx.trans_id
    assert fake.transactions[tx.trans_id].refunded == Decimal("100.00")


def test_a_retried_refund_returns_the_first_and_refunds_once(fake, gateway):
    tx = paid(fake, gateway)
    first = gateway.refund(tx.trans_id, Decimal("50.00"), "USD", "refund-key-1", fake.settings())
    again = gateway.refund(tx.trans_id, Decimal("50.00"), "USD", "refund-key-1", fake.settings())
    assert again == first
    assert fake.transactions[tx.trans_id].refunded == Decimal("50.00")
    assert [r.result for r in fake.requests("createTransactionRequest")] == ["Ok", "Error"]  # the duplicate
    # another refund of the same amount (another key) is a second refund
    second = gateway.refund(tx.trans_id, Decimal("50.00"), "USD", "refund-key-2", fake.settings())
    assert second.provider_refund_id != first.provider_refund_id
    assert fake.transactions[tx.trans_id].refunded == Decimal("100.00")


def test_a_refund_whose_answer_was_lost_is_found_on_retry(fake, gateway):
    """Authorize.Net refunded, but the answer never arrived: the retry (same key) is recognised
    as a duplicate of that refund, which is confirmed and returned; money went back once."""
    tx = paid(fake, gateway)
    fake.drop_next_answer("createTransactionRequest")
    with pytest.raises(TemporaryFailure):
        gateway.refund(tx.trans_id, Decimal("30.00"), "USD", "refund-key-9", fake.settings())
    [made] = [t for t in fake.transactions.values() if t.type == "refundTransaction"]
    result = gateway.refund(tx.trans_id, Decimal("30.00"), "USD", "refund-key-9", fake.settings())
    assert result.provider_refund_id == made.trans_id
    assert fake.transactions[tx.trans_id].refunded == Decimal("30.00")


def test_an_unsettled_payment_cannot_be_refunded_yet(fake, gateway):
    tx = paid(fake, gateway, settle=False)
    with pytest.raises(PermanentFailure, match="not settled yet .capturedPendingSettlement.*voided"):
        gateway.refund(tx.trans_id, Decimal("10.00"), "USD", "k", fake.settings())
    assert fake.requests("createTransactionRequest") == []


def test_more_than_was_paid_is_refused_with_authorize_nets_reason(fake, gateway):
    tx = paid(fake, gateway, amount="20.00")
    gateway.refund(tx.trans_id, Decimal("15.00"), "USD", "k1", fake.settings())
    with pytest.raises(PermanentFailure, match="error 55 The sum of credits"):
        gateway.refund(tx.trans_id, Decimal("10.00"), "USD", "k2", fake.settings())


def test_bank_account_payments_are_refunded_by_hand(fake, gateway):
    tx = paid(fake, gateway, bank_account=True)
    with pytest.raises(PermanentFailure, match="not paid by card: refund it in the Merchant Interface"):
        gateway.refund(tx.trans_id, Decimal("10.00"), "USD", "k", fake.settings())


def test_a_declined_or_refund_transaction_is_not_refundable(fake, gateway):
    declined = paid(fake, gateway, card_number="4000300011110002")
    with pytest.raises(PermanentFailure, match="cannot be refunded .declined."):
        gateway.refund(declined.trans_id, Decimal("1.00"), "USD", "k", fake.settings())
    tx = paid(fake, gateway)
    refund = gateway.refund(tx.trans_id, Decimal("1.00"), "USD", "k", fake.settings())
    with pytest.raises(PermanentFailure, match="not a payment .refundTransaction."):
        gateway.refund(refund.provider_refund_id, Decimal("1.00"), "USD", "k2", fake.settings())


def test_unknown_and_malformed_transactions(fake, gateway):
    with pytest.raises(PermanentFailure, match="E00040 The record cannot be found"):
        gateway.refund("60099999999", Decimal("1.00"), "USD", "k", fake.settings())
    with pytest.raises(PermanentFailure, match="digits only"):
        gateway.refund("pi_123", Decimal("1.00"), "USD", "k", fake.settings())
    with pytest.raises(PermanentFailure, match="2 decimals"):
        gateway.refund("60099999999", Decimal("1"), "JPY", "k", fake.settings())
    with pytest.raises(PermanentFailure, match="amount"):
        gateway.refund("60099999999", Decimal("0"), "USD", "k", fake.settings())


def test_no_access_to_transaction_details_says_what_to_enable(fake, gateway):
    fake.fail_next("E00011", "Access denied. You do not have permissions to call the Transaction Details API.")
    with pytest.raises(PermanentFailure, match="enable the Transaction Details API"):
        gateway.refund("60012345678", Decimal("1.00"), "USD", "k", fake.settings())


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_trouble_during_a_refund_is_temporary(fake, gateway, status):
    tx = paid(fake, gateway)
    fake.script(status)
    with pytest.raises(TemporaryFailure, match=str(status)):
        gateway.refund(tx.trans_id, Decimal("5.00"), "USD", "k", fake.settings())
    assert gateway.refund(tx.trans_id, Decimal("5.00"), "USD", "k", fake.settings()).amount == Decimal("5.00")


def test_a_hanging_refund_is_cut_off(fake, gateway):
    tx = paid(fake, gateway)
    fake.hang = True
    with pytest.raises(TemporaryFailure, match="within 0.3 s"):
        gateway.refund(tx.trans_id, Decimal("5.00"), "USD", "k", fake.settings(timeout=0.3))
    fake.release()


def test_refusals_carry_no_secret(fake, gateway, caplog):
    caplog.set_level(logging.DEBUG)
    tx = paid(fake, gateway, settle=False)
    for settings in (fake.settings(), fake.settings(transaction_key="WrongKey12345678")):
        with pytest.raises(PermanentFailure) as exc:
            gateway.refund(tx.trans_id, Decimal("5.00"), "USD", "k", settings)
        for secret in (fake.transaction_key, "WrongKey12345678", fake.signature_key):
            assert secret not in str(exc.value) and secret not in caplog.text
