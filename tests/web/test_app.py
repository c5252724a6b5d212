"""The app shell: login, sessions, CSRF, security headers, business switching, plugin gating."""

from __future__ import annotations

import flask

from crmcore import PluginInfo, hookimpl
from crmcore.testing import TEST_PASSWORD, CrmClient


def test_login_page_and_wrong_password(anon_client):
    assert anon_client.get("/login").status_code == 200
    response = anon_client.login("owner@acme.example", "wrong password")
    assert response.status_code == 401
    assert "wrong email or password" in response.get_data(as_text=True)


def test_pages_need_a_login(anon_client, business):
    response = anon_client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_login_rotates_the_session_and_logout_ends_it(app, business):
    c = CrmClient(app.test_client())
    c.csrf_token()
    with c.raw.session_transaction() as sess:
        sess["planted"] = "by an attacker"
    assert c.login("owner@acme.example").status_code == 302
    with c.raw.session_transaction() as sess:
        assert "planted" not in sess
        assert sess["business_id"] == business.id
    assert c.post("/logout").status_code == 302
    assert c.get("/").status_code == 302


def test_login_refuses_open_redirects(anon_client, business):
    token = anon_client.csrf_token()
    response = anon_client.raw.post("/login?next=https://evil.example/", data={
        "email": "owner@acme.example", "password": TEST_PASSWORD, "csrf_token": token})
    assert response.status_code == 302
    assert "evil.example" not in response.headers["Location"]


def test_post_without_csrf_token_is_refused(client):
    response = client.raw.post("/logout")
    assert response.status_code == 400
    assert "expired" in response.get_data(as_text=True)


def test_security_headers(client):
    response = client.get("/account/password")
    assert response.status_code == 200
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    cookie = response.request.environ  # the session cookie flags are set by config
    assert client.raw.application.config["SESSION_COOKIE_HTTPONLY"] is True
    assert client.raw.application.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert cookie is not None


def test_password_change_keeps_the_form_and_shows_errors(client):
    response = client.post("/account/password", {"current_password": TEST_PASSWORD,
                                                  "new_password": "short", "confirm_password": "short"})
    assert response.status_code == 422
    assert "use at least 10 characters" in response.get_data(as_text=True)
    response = client.post("/account/password", {"current_password": TEST_PASSWORD,
                                                  "new_password": "a brand new secret",
                                                  "confirm_password": "a brand new secret"})
    assert response.status_code == 302


def test_business_switcher_only_to_own_businesses(crm, client, business, other_business):
    from crmcore.context import Context
    from crmcore.tenancy.service import add_member

    with Context.open(crm, other_business.slug, "owner@globex.example") as other_owner:
        add_member(other_owner, "owner@acme.example", "member")
    assert client.post("/account/business", {"business_id": str(other_business.id)}).status_code == 302
    with client.raw.session_transaction() as sess:
        assert sess["business_id"] == other_business.id
    assert client.post("/account/business", {"business_id": "999999"}).status_code == 400


class _PagesPlugin:
    PLUGIN = PluginInfo(title="Pages plugin")

    def __init__(self) -> None:
        self.bp = flask.Blueprint("pagesplugin", __name__)
        self.bp.add_url_rule("/x/pagesplugin", "index", lambda: "plugin page")

    @hookimpl
    def crm_register_blueprints(self, app):
        return [self.bp]

    @hookimpl
    def crm_admin_menu(self, ctx):
        return [{"label": "Plugin page", "url": "/x/pagesplugin", "order": 500}]


def test_plugin_pages_and_menu_follow_enablement(crm, register_plugin, ctx, business):
    from crmcore.plugins.service import disable_plugin, enable_plugin
    from crmcore.web import create_app

    name = register_plugin(_PagesPlugin())
    app = create_app(crm=crm, testing=True)
    c = CrmClient(app.test_client())
    c.login("owner@acme.example")
    assert c.get("/x/pagesplugin").status_code == 404
    assert "Plugin page" not in c.get("/account/password").get_data(as_text=True)
    enable_plugin(ctx, name)
    assert c.get("/x/pagesplugin").get_data(as_text=True) == "plugin page"
    assert "Plugin page" in c.get("/account/password").get_data(as_text=True)
    disable_plugin(ctx, name)
    assert c.get("/x/pagesplugin").status_code == 404
