"""The plugin in an installation: discovered with its driver, enabled per business, its settings
as an admin saves them (validated, secrets encrypted and masked); and the hosted payment page of
the local Stripe as a payer's browser uses it."""

from __future__ import annotations

import json
import logging
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import stripe
from crm_payments_stripe import DRIVER, NAME
from crm_payments_stripe.gateway import StripeGateway
from crm_payments_stripe.testing import FakeStripe, parse_form
from sqlalchemy import text

from crmcore import ValidationFailed
from crmcore.payments.gateways import (
    PAYMENT_GATEWAYS_GROUP,
    EventKind,
    PaymentRequest,
    ReturnRequest,
    WebhookRequest,
    enabled_gateways,
    get_gateway,
)
from crmcore.plugins.drivers import load_group
from crmcore.plugins.service import disable_plugin, enable_plugin, get_settings, save_settings

KEY = "sk_test_" + "51HxAcmeTestKey0123456789abcdef"
WHSEC = "whsec_" + "AcmeSigningSecret0123456789"
SETTINGS = {"secret_key": KEY, "webhook_secret": WHSEC}


def stored(crm, plugin=NAME):
    with crm.db.engine.connect() as conn:
        return str(conn.execute(text("select settings from plugin_enablements where plugin = :p"),
                                {"p": plugin}).scalar())


def test_discovered_with_its_driver(crm):
    assert NAME in crm.registry.plugins and NAME not in crm.registry.errors
    driver = load_group(PAYMENT_GATEWAYS_GROUP)[DRIVER]
    assert driver.plugin == NAME and driver.obj is StripeGateway
    assert "Stripe" in StripeGateway().payer_instructions({})


def test_enabled_in_one_business_only(ctx, other_ctx):
    assert DRIVER not in enabled_gateways(ctx)
    enable_plugin(ctx, NAME, SETTINGS)
    mine = enabled_gateways(ctx)
    assert DRIVER in mine and isinstance(mine[DRIVER].gateway, StripeGateway)
    assert mine[DRIVER].plugin == NAME and mine[DRIVER].settings(ctx)["secret_key"] == KEY
    assert DRIVER not in enabled_gateways(other_ctx) and get_gateway(other_ctx, DRIVER) is None
    disable_plugin(ctx, NAME)
    assert get_gateway(ctx, DRIVER) is None
    enable_plugin(ctx, NAME)
    assert get_gateway(ctx, DRIVER).settings(ctx)["webhook_secret"] == WHSEC  # kept while disabled


def test_each_business_pays_with_its_own_key(ctx, other_ctx, fake_stripe):
    """Two businesses, two keys, one process: each call uses its business's key."""
    with FakeStripe.random() as theirs:
        enable_plugin(ctx, NAME, fake_stripe.settings())
        enable_plugin(other_ctx, NAME, theirs.settings())
        request = PaymentRequest(attempt_id=1, idempotency_key="a-1", amount=Decimal("10"), currency="EUR",
                                 reference="INV-1", description="", return_url="https://x.example/r",
                                 cancel_url="https://x.example/c")
        for context, server in ((ctx, fake_stripe), (other_ctx, theirs), (ctx, fake_stripe)):
            found = get_gateway(context, DRIVER)
            found.gateway.create_session(request, found.settings(context))
            assert server.api_requests()[-1].authorization == f"Bearer {server.secret_key}"
        assert len(fake_stripe.sessions) == 1 and len(theirs.sessions) == 1
    assert stripe.api_key is None  # never the process-wide key


def test_secrets_are_encrypted_and_masked(ctx, crm, caplog):
    caplog.set_level(logging.DEBUG)
    enable_plugin(ctx, NAME, SETTINGS | {"statement_descriptor_suffix": "ACME INV"})
    raw = stored(crm)
    assert KEY not in raw and WHSEC not in raw and "$enc" in raw and "ACME INV" in raw
    shown = get_settings(ctx, NAME)
    assert KEY not in str(shown) and WHSEC not in str(shown)
    assert shown["secret_key"] == shown["webhook_secret"] != ""
    assert ctx.plugin_settings(NAME)["secret_key"] == KEY
    assert KEY not in caplog.text and WHSEC not in caplog.text


def test_saving_the_mask_or_nothing_keeps_the_secrets(ctx):
    enable_plugin(ctx, NAME, SETTINGS)
    mask = get_settings(ctx, NAME)["secret_key"]
    save_settings(ctx, NAME, {"secret_key": mask, "webhook_secret": "", "timeout": 5})
    assert ctx.plugin_settings(NAME)["secret_key"] == KEY
    assert ctx.plugin_settings(NAME)["webhook_secret"] == WHSEC
    assert ctx.plugin_settings(NAME)["timeout"] == 5


def test_env_reference_keeps_the_key_out_of_the_database(ctx, crm, monkeypatch):
    monkeypatch.setenv("ACME_STRIPE_KEY", KEY)
    enable_plugin(ctx, NAME, {"secret_key": "$env:ACME_STRIPE_KEY", "webhook_secret": WHSEC})
    assert KEY not in stored(crm)
    assert ctx.plugin_settings(NAME)["secret_key"] == KEY


@pytest.mark.parametrize(("settings", "field", "message"), [
    ({"webhook_secret": WHSEC}, "secret_key", "required"),
    ({"secret_key": KEY}, "webhook_secret", "required"),
    (SETTINGS | {"secret_key": "pk_test_" + "a" * 24}, "secret_key", "not a Stripe secret key"),
    (SETTINGS | {"secret_key": "sk_prod_" + "a" * 24}, "secret_key", "not a Stripe secret key"),
    (SETTINGS | {"secret_key": "sk_test_short"}, "secret_key", "not a Stripe secret key"),
    (SETTINGS | {"webhook_secret": "we_" + "a" * 24}, "webhook_secret", "whsec_"),
    (SETTINGS | {"api_base": "ftp://api.stripe.com"}, "api_base", "http"),
    (SETTINGS | {"api_base": "api.stripe.com"}, "api_base", "http"),
    (SETTINGS | {"api_base": "https://u:p@api.stripe.com"}, "api_base", "credentials"),
    (SETTINGS | {"timeout": 0}, "timeout", "greater than or equal"),
    (SETTINGS | {"timeout": 30}, "timeout", "less than or equal"),
    (SETTINGS | {"statement_descriptor_suffix": "A" * 23}, "statement_descriptor_suffix", "up to 22"),
    (SETTINGS | {"statement_descriptor_suffix": "12345"}, "statement_descriptor_suffix", "one letter"),
    (SETTINGS | {"statement_descriptor_suffix": "ACME*INV"}, "statement_descriptor_suffix", "none of"),
    (SETTINGS | {"statement_descriptor_suffix": "ÄCME"}, "statement_descriptor_suffix", "Latin"),
    (SETTINGS | {"payment_method_types": "card, iDEAL!"}, "payment_method_types", "not a Stripe payment method"),
    (SETTINGS | {"payment_method_types": 5}, "payment_method_types", "a list"),
    (SETTINGS | {"payment_method_types": ["card"] * 5 + [f"m{i}x" for i in range(20)]}, "payment_method_types",
     "at most 20"),
    (SETTINGS | {"colour": "red"}, "colour", "Unknown"),
])
def test_invalid_settings_are_refused_naming_the_field(ctx, settings, field, message):
    with pytest.raises(ValidationFailed) as exc:
        enable_plugin(ctx, NAME, settings)
    assert field in exc.value.errors and message in str(exc.value.errors[field])
    assert KEY not in str(exc.value.errors) and WHSEC not in str(exc.value.errors)
    assert not ctx.is_enabled(NAME)


def test_a_mistyped_key_is_not_echoed(ctx):
    typo = "sk_live_" + "Secret9" * 4 + "!"
    with pytest.raises(ValidationFailed) as exc:
        enable_plugin(ctx, NAME, SETTINGS | {"secret_key": typo})
    assert "Secret9" not in str(exc.value.errors) and "secret_key" in exc.value.errors


def test_payment_methods_as_typed_in_a_form(ctx):
    enable_plugin(ctx, NAME, SETTINGS | {"payment_method_types": " Card, ideal,,bancontact, card "})
    assert ctx.plugin_settings(NAME)["payment_method_types"] == ["card", "ideal", "bancontact"]
    save_settings(ctx, NAME, {"payment_method_types": "", "api_base": "https://api.stripe.com/"})
    assert ctx.plugin_settings(NAME).get("payment_method_types") is None


# -- the hosted page, as a browser uses it ------------------------------------------------------


class Receiver:
    """A local webhook endpoint that checks deliveries with the gateway, as the owning plugin would."""

    def __init__(self, settings):
        self.events: list = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args):
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = WebhookRequest("POST", self.path, dict(self.headers), {}, body)
                receiver.events.extend(StripeGateway().parse_webhook(request, settings))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/payments/stripe/acme"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_paying_on_the_hosted_page(fake_stripe):
    gateway = StripeGateway()
    receiver = Receiver(fake_stripe.settings())
    fake_stripe.webhook_url = receiver.url
    try:
        request = PaymentRequest(attempt_id=5, idempotency_key="a-5", amount=Decimal("1499.99"), currency="EUR",
                                 reference="INV-2026-0005", description="Loader <b>rental</b>",
                                 return_url="https://crm.example.com/done?s={CHECKOUT_SESSION_ID}",
                                 cancel_url="https://crm.example.com/cancel")
        session = gateway.create_session(request, fake_stripe.settings())
        page = requests.get(session.redirect_url, timeout=5)
        assert page.status_code == 200 and "1,499.99 EUR" in page.text and "INV-2026-0005" in page.text
        assert "Loader &lt;b&gt;rental&lt;/b&gt;" in page.text and "<b>rental" not in page.text
        assert 'href=\'https://crm.example.com/cancel\'' in page.text
        paid = requests.post(f"{session.redirect_url}/pay", timeout=5, allow_redirects=False)
        assert paid.status_code == 303
        assert paid.headers["Location"] == f"https://crm.example.com/done?s={session.provider_reference}"
        # the webhook was delivered, signed, and read by the gateway
        assert fake_stripe.deliveries == [("checkout.session.completed", 200)]
        [event] = receiver.events
        assert event.kind == EventKind.SUCCEEDED and event.attempt_id == 5 and event.amount == Decimal("1499.99")
        # the payer's return confirms the same payment
        [confirmed] = gateway.handle_return(ReturnRequest(session.provider_reference, {}, {}), fake_stripe.settings())
        assert confirmed.provider_payment_id == event.provider_payment_id
        # paying twice is refused, and the page says it is paid
        assert requests.post(f"{session.redirect_url}/pay", timeout=5, allow_redirects=False).status_code == 409
        assert "This payment is paid" in requests.get(session.redirect_url, timeout=5).text
    finally:
        receiver.close()


def test_unknown_pages_and_methods(fake_stripe):
    session = StripeGateway().create_session(PaymentRequest(
        attempt_id=6, idempotency_key="a-6", amount=Decimal("10"), currency="EUR", reference="INV-6",
        description="", return_url="https://x.example/r", cancel_url="https://x.example/c"), fake_stripe.settings())
    assert requests.get(f"{fake_stripe.url}/checkout/cs_test_nope", timeout=5).status_code == 404
    assert requests.post(f"{fake_stripe.url}/checkout/cs_test_nope/pay", timeout=5).status_code == 404
    assert requests.get(f"{session.redirect_url}/pay", timeout=5).status_code == 405
    assert requests.post(session.redirect_url, timeout=5).status_code == 405
    assert fake_stripe.session(session.provider_reference)["payment_status"] == "unpaid"


# -- the fake's own API manners (what other plugins' tests rely on) ----------------------------


def test_fake_refuses_requests_without_the_key(fake_stripe):
    answer = requests.post(f"{fake_stripe.url}/v1/checkout/sessions", data={"mode": "payment"}, timeout=5)
    assert answer.status_code == 401 and answer.json()["error"]["type"] == "invalid_request_error"
    wrong = requests.get(f"{fake_stripe.url}/v1/checkout/sessions/cs_x", timeout=5,
                         headers={"Authorization": "Bearer sk_test_" + "z" * 30})
    assert wrong.status_code == 401 and "z" * 30 not in wrong.json()["error"]["message"]


def test_fake_refuses_unknown_and_empty_parameters(fake_stripe):
    auth = {"Authorization": f"Bearer {fake_stripe.secret_key}"}
    unknown = requests.post(f"{fake_stripe.url}/v1/checkout/sessions", headers=auth, timeout=5,
                            data={"mode": "payment", "colour": "red"})
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "colour"
    empty = requests.post(f"{fake_stripe.url}/v1/checkout/sessions", headers=auth, timeout=5,
                          data={"mode": "payment", "customer_email": ""})
    assert empty.status_code == 400 and "empty string for 'customer_email'" in empty.json()["error"]["message"]
    assert json.loads(requests.get(f"{fake_stripe.url}/v1/nothing", headers=auth, timeout=5).text)["error"]


@pytest.mark.parametrize(("raw", "parsed"), [
    ("a=1", {"a": "1"}),
    ("a[b]=1&a[c]=2", {"a": {"b": "1", "c": "2"}}),
    ("l[0][x]=1&l[1][x]=2", {"l": [{"x": "1"}, {"x": "2"}]}),
    ("m[0]=a&m[2]=b", {"m": {"0": "a", "2": "b"}}),  # not a list: indexes have a gap
    ("e=", {"e": ""}),
])
def test_form_decoding(raw, parsed):
    assert parse_form(raw) == parsed


@pytest.mark.parametrize("raw", ["a[b=1", "a=1&a[b]=2", "a[b]=2&a=1", "]=1", "novalue"])
def test_malformed_forms(raw):
    with pytest.raises(ValueError):
        parse_form(raw)
