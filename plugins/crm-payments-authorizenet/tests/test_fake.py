"""The local stand-in answers as Authorize.Net does (other plugins' tests rely on it): JSON after a
byte order mark, errors as HTTP 200 with resultCode Error, keys in schema order, credentials checked."""

from __future__ import annotations

import json
from decimal import Decimal

import requests
from crm_payments_authorizenet.api import decode

AUTH = {"name": "5KP3u95bQpv", "transactionKey": "346HZ32z3fP4hTG2"}


def post(fake, payload):
    response = requests.post(fake.api_url, data=json.dumps(payload), headers={"Content-Type": "application/json"},
                             timeout=5)
    assert response.status_code == 200 and response.content.startswith(b"\xef\xbb\xbf")
    return json.loads(response.content.decode("utf-8-sig"))


def message(answer):
    return answer["messages"]["resultCode"], answer["messages"]["message"][0]["code"]


def test_answers_start_with_a_byte_order_mark_and_errors_are_http_200(fake):
    answer = post(fake, {"getTransactionDetailsRequest": {"merchantAuthentication": AUTH, "transId": "1"}})
    assert message(answer) == ("Error", "E00040")
    wrong = post(fake, {"getTransactionDetailsRequest": {"merchantAuthentication": AUTH | {"transactionKey": "x"},
                                                         "transId": "1"}})
    assert message(wrong) == ("Error", "E00007")


def test_keys_must_follow_the_schema_order(fake):
    answer = post(fake, {"getTransactionDetailsRequest": {"transId": "1", "merchantAuthentication": AUTH}})
    assert message(answer) == ("Error", "E00003") and "merchantAuthentication" in answer["messages"]["message"][0]["text"]
    swapped = post(fake, {"getHostedPaymentPageRequest": {"merchantAuthentication": AUTH, "transactionRequest": {
        "amount": "5.00", "transactionType": "authCaptureTransaction"}}})
    assert message(swapped) == ("Error", "E00003")
    fine = post(fake, {"getHostedPaymentPageRequest": {"merchantAuthentication": AUTH, "transactionRequest": {
        "transactionType": "authCaptureTransaction", "amount": "5.00"}}})
    assert message(fine) == ("Ok", "I00001") and fine["token"]


def test_unknown_requests_and_garbage(fake):
    assert message(post(fake, {"chargeEverybodyRequest": {"merchantAuthentication": AUTH}})) == ("Error", "E00003")
    assert message(post(fake, [1, 2])) == ("Error", "E00003")
    assert requests.get(fake.api_url, timeout=5).status_code == 405
    assert requests.post(fake.hosted_url, data={"token": "nope"}, timeout=5).status_code == 400


def test_the_gateway_reads_the_byte_order_mark_and_exact_amounts():
    assert decode(b"\xef\xbb\xbf" + b'{"authAmount": 0.1, "n": 3}') == {"authAmount": Decimal("0.1"), "n": 3}
    assert decode(b'{"plain": true}') == {"plain": True}
    assert decode(b"\xef\xbb\xbf<html>") is None and decode(b"\xff") is None


def test_malformed_fields_get_an_error_answer_not_a_dropped_connection(fake):
    for transaction in ({"transactionType": "authCaptureTransaction", "amount": "5.00", "customer": "pat"},
                        {"transactionType": "authCaptureTransaction", "amount": 5},
                        {"transactionType": "authCaptureTransaction", "amount": "5.00", "order": ["A1"]}):
        answer = post(fake, {"getHostedPaymentPageRequest": {"merchantAuthentication": AUTH,
                                                             "transactionRequest": transaction}})
        assert answer["messages"]["resultCode"] == "Error"
    answer = post(fake, {"getHostedPaymentPageRequest": {"merchantAuthentication": AUTH, "transactionRequest": {
        "transactionType": "authCaptureTransaction", "amount": "5.00"}, "hostedPaymentSettings": "none"}})
    assert message(answer) == ("Error", "E00003")
