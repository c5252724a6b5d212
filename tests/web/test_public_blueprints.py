"""Plugins' public pages and webhooks (crmcore.web.public): no login, the business comes from
the URL and only where the plugin is enabled, CSRF kept on forms and waived only for webhooks."""

from __future__ import annotations

import dataclasses

import pytest
from flask import abort, request

from crmcore import PluginInfo, hookimpl
from crmcore.testing import CrmClient
from crmcore.web import create_app
from crmcore.web.public import csrf_exempt, public_blueprint, public_context, public_url


def _plugin_pages(plugin_name: str):
    public = public_blueprint("tp_public", __name__, url_prefix="/tp")

    @public.get("/<business>/hello")
    def hello(business):
        ctx = public_context(business, plugin_name)
        if ctx is None:
            abort(404)
        with ctx:
            return f"hello {ctx.business.name} at {public_url('/tp/' + business + '/hello')}"

    @public.post("/<business>/form")
    def form(business):
        return "form ok"

    @public.post("/<business>/webhook")
    @csrf_exempt
    def webhook(business):
        return "got " + request.get_data(as_text=True)

    class Pages:
        @hookimpl
        def crm_register_blueprints(self, app):
            return [public]

    return Pages()


@pytest.fixture
def public_app(crm, register_plugin, ctx):
    register_plugin(_plugin_pages("tp-public"), name="tp-public", info=PluginInfo(title="Public pages"),
                    enable_for=ctx)
    return create_app(crm=crm, testing=True)


def test_a_public_page_needs_no_login(public_app, business):
    response = public_app.test_client().get(f"/tp/{business.slug}/hello")
    assert response.status_code == 200
    assert response.get_data(as_text=True).startswith(f"hello {business.name} at http://localhost/tp/")


def test_public_url_prefers_the_configured_address(public_app, crm, business):
    crm.config = dataclasses.replace(crm.config, public_url="https://crm.example.com/")
    body = public_app.test_client().get(f"/tp/{business.slug}/hello").get_data(as_text=True)
    assert body.endswith(f"at https://crm.example.com/tp/{business.slug}/hello")


@pytest.mark.parametrize("slug", ["no-such-business", "UPPER", "a%00b", "-dash"])
def test_a_url_without_an_enabled_business_is_not_found(public_app, slug):
    assert public_app.test_client().get(f"/tp/{slug}/hello").status_code in (404, 422)


def test_a_business_where_the_plugin_is_off_looks_missing(public_app, other_business):
    assert public_app.test_client().get(f"/tp/{other_business.slug}/hello").status_code == 404


def test_public_forms_keep_csrf_and_webhooks_are_exempt(public_app, business):
    raw = public_app.test_client()
    assert raw.post(f"/tp/{business.slug}/form", data={"x": "1"}).status_code == 400  # no token
    response = raw.post(f"/tp/{business.slug}/webhook", data=b'{"id": 1}', content_type="application/json")
    assert response.status_code == 200 and response.get_data(as_text=True) == 'got {"id": 1}'


def test_a_logged_in_session_changes_nothing(public_app, business):
    client = CrmClient(public_app.test_client())
    client.login(f"owner@{business.slug}.example")
    assert client.get(f"/tp/{business.slug}/hello").status_code == 200
    assert client.post(f"/tp/{business.slug}/form", {"x": "1"}).status_code == 200  # with its token


def test_other_plugin_blueprints_still_need_a_login(crm, register_plugin, ctx):
    import flask

    private = flask.Blueprint("tp_private", __name__, url_prefix="/tp-private")

    @private.get("/")
    def index():
        return "secret"

    class Pages:
        @hookimpl
        def crm_register_blueprints(self, app):
            return [private]

    register_plugin(Pages(), name="tp-private", info=PluginInfo(title="Private"), enable_for=ctx)
    app = create_app(crm=crm, testing=True)
    response = app.test_client().get("/tp-private/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
