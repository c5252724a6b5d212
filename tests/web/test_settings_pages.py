"""The settings pages: admins only; plugins with generated settings forms (secrets never sent),
pipelines and stages, lists, custom fields, numbering, users and roles, API tokens."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import marshmallow as ma
import pytest
from marshmallow import fields, validate
from sqlalchemy import event

from crmcore import PluginInfo, hookimpl
from crmcore.auth.service import create_api_token, create_user, list_api_tokens
from crmcore.fields.service import define_field, list_fields
from crmcore.lists.service import add_option, list_options
from crmcore.numbering.service import list_rules
from crmcore.parties.service import create_party
from crmcore.pipelines.service import add_stage, create_pipeline, get_pipeline, list_pipelines
from crmcore.records.service import create_record
from crmcore.tenancy.service import add_member, list_members
from crmcore.testing import CrmClient

XSS = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
SECRET = "sk_live_51HxQyZpL0ngS3cr3tValue"


# -- helpers ------------------------------------------------------------------------------------


class _Elements(HTMLParser):
    """Every element with an id, by id, with its tag and attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, tuple[str, dict[str, str | None]]] = {}
        self.twice: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            if found["id"] in self.by_id:
                self.twice.append(found["id"])
            self.by_id[found["id"]] = (tag, found)


def elements(html: str) -> dict[str, tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(html)
    return parser.by_id


def body(response) -> str:
    return response.get_data(as_text=True)


def login(app, email: str) -> CrmClient:
    c = CrmClient(app.test_client())
    assert c.login(email).status_code == 302
    return c


@pytest.fixture
def client_as(app, make_user, business):
    """``client_as(role)``: a logged-in client of a new user with that role in ``business``."""

    def make(role: str) -> CrmClient:
        user_ctx = make_user(business, role)
        return login(app, user_ctx.user.email)

    return make


def pipeline_named(ctx, name: str):
    return next(p for p in list_pipelines(ctx, include_archived=True) if p.name == name)


def stage_names(ctx, pipeline_id: int) -> list[str]:
    return [s.name for s in get_pipeline(ctx, pipeline_id).active_stages()]


# -- plugins used by the tests ------------------------------------------------------------------


class GatewaySettings(ma.Schema):
    account = fields.String(required=True, validate=validate.Length(min=3, max=40),
                            metadata={"description": "The account name at the gateway."})
    api_key = fields.String(required=True, metadata={"secret": True, "description": "Starts with sk_."},
                            validate=validate.Regexp(r"^sk_(test|live)_\w{10,}$", error="{input} is not a key"))
    mode = fields.String(validate=validate.OneOf(["test", "live"]), load_default="test")
    retries = fields.Integer(validate=validate.Range(min=0, max=10))
    ratio = fields.Float()
    fee = fields.Decimal()
    notify = fields.Boolean()
    contact = fields.Email()
    callback = fields.Url()
    start_at = fields.DateTime()
    start_on = fields.Date()


class Gateway:
    """A plugin that only has settings."""


class Plain:
    """A plugin without settings."""


@pytest.fixture
def gateway(register_plugin):
    return register_plugin(Gateway(), name="tp-gateway",
                           info=PluginInfo(title="Gateway", version="2.1", settings_schema=GatewaySettings))


GOOD_SETTINGS = {"account": "acme-main", "api_key": SECRET, "mode": "live", "retries": "3", "ratio": "0.5",
                 "fee": "1.25", "notify": ["", "1"], "contact": "ops@acme.example",
                 "callback": "https://acme.example/hook", "start_at": "2030-01-02T03:04", "start_on": "2030-01-02"}


# -- access ---------------------------------------------------------------------------------------

PAGES = ["/settings/", "/settings/plugins", "/settings/pipelines", "/settings/lists", "/settings/fields",
         "/settings/fields?target=contact", "/settings/fields?target=record:deal", "/settings/numbering",
         "/settings/users", "/settings/tokens"]


def test_every_page_renders_for_the_owner_with_its_stylesheet(client, gateway):
    for url in PAGES:
        response = client.get(url)
        assert response.status_code == 200, url
        assert "/static/settings.css" in body(response)
        parser = _Elements()
        parser.feed(body(response))
        assert parser.twice == [], url  # many forms share a page: every id (and label) stays unique
    assert client.get("/static/settings.css").status_code == 200
    home = body(client.get("/settings/"))
    for section in ("Plugins", "Pipelines", "Lists", "Custom fields", "Numbering", "Users and roles", "API tokens"):
        assert section in home


def test_admins_see_the_settings_menu_entry_and_members_do_not(client, client_as):
    assert 'href="/settings/"' in body(client.get("/account/password"))
    assert client_as("admin").get("/settings/pipelines").status_code == 200
    assert 'href="/settings/"' not in body(client_as("member").get("/account/password"))


def _every_settings_route(app):
    """(method, url) of every route of the blueprint, with placeholder arguments."""
    values = {"int": 1, "default": "x"}
    out = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("settings."):
            continue
        args = {}
        for name, converter in rule._converters.items():
            args[name] = values["int"] if type(converter).__name__ == "IntegerConverter" else (
                "lost_reason" if name == "list_key" else values["default"])
        url = rule.build(args)[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((method, url))
    return out


@pytest.mark.parametrize("role", ["member", "read_only"])
def test_members_and_read_only_users_get_403_on_every_settings_route(app, client_as, role):
    c = client_as(role)
    routes = _every_settings_route(app)
    assert len(routes) > 30
    for method, url in routes:
        response = c.get(url) if method == "GET" else c.post(url, {"name": "x", "target": "party"})
        assert response.status_code == 403, (method, url, response.status_code)
    assert "admins and owners" in body(c.get("/settings/"))


# -- plugins ----------------------------------------------------------------------------------------


def test_plugins_page_lists_installed_plugins_and_load_errors(client, crm, gateway, monkeypatch):
    monkeypatch.setitem(crm.registry.errors, "tp-broken", f"import failed: ImportError: {XSS}")
    html = body(client.get("/settings/plugins"))
    assert "Gateway" in html and "tp-gateway" in html and "version 2.1" in html
    assert "Settings (core)" in html  # the core's own features, essential: no disable button
    assert "/settings/plugins/core-settings/disable" not in html
    assert "tp-broken" in html and f"ImportError: {ESCAPED}" in html and XSS not in html


def test_settings_form_is_generated_from_the_schema_by_field_type(client, gateway):
    found = elements(body(client.get("/settings/plugins")))
    kinds = {key: found[f"s-tp-gateway-{key}"] for key in GatewaySettings().fields}
    assert kinds["account"] == ("input", kinds["account"][1]) and kinds["account"][1]["type"] == "text"
    assert kinds["account"][1]["maxlength"] == "40" and "required" in kinds["account"][1]
    assert kinds["api_key"][1]["type"] == "password" and kinds["api_key"][1]["value"] == ""
    assert kinds["mode"][0] == "select"
    assert kinds["retries"][1]["type"] == "number" and kinds["retries"][1]["step"] == "1"
    assert kinds["retries"][1]["max"] == "10"
    assert kinds["ratio"][1]["type"] == "number" and kinds["ratio"][1]["step"] == "any"
    assert kinds["fee"][1]["type"] == "number"
    assert kinds["notify"][1]["type"] == "checkbox"
    assert kinds["contact"][1]["type"] == "email"
    assert kinds["callback"][1]["type"] == "url"
    assert kinds["start_at"][1]["type"] == "datetime-local"
    assert kinds["start_on"][1]["type"] == "date"
    html = body(client.get("/settings/plugins"))
    assert "The account name at the gateway." in html  # description as help text
    assert '<option value="live">live</option>' in html


def test_enable_needs_the_required_settings_then_save_enable_and_disable(client, ctx, gateway):
    response = client.post("/settings/plugins/tp-gateway/enable")
    assert response.status_code == 422
    found = elements(body(response))
    assert "Missing data for required field." in body(response)
    assert "s-tp-gateway-account-err" in found and "s-tp-gateway-api_key-err" in found
    assert not ctx.is_enabled("tp-gateway")

    response = client.post("/settings/plugins/tp-gateway/settings", GOOD_SETTINGS)
    assert response.status_code == 302
    ctx.session.rollback()  # end the fixture context's read snapshot: the page wrote since
    stored = ctx.plugin_settings("tp-gateway")
    assert stored["api_key"] == SECRET and stored["retries"] == 3 and stored["notify"] is True
    assert stored["mode"] == "live" and stored["start_on"] == "2030-01-02"

    assert client.post("/settings/plugins/tp-gateway/enable").status_code == 302
    ctx.session.rollback()
    assert ctx.is_enabled("tp-gateway")
    assert "Enabled" in body(client.get("/settings/plugins"))
    found = elements(body(client.get("/settings/plugins")))
    assert found["s-tp-gateway-account"][1]["value"] == "acme-main"
    assert found["s-tp-gateway-start_at"][1]["value"] == "2030-01-02T03:04"
    assert "checked" in found["s-tp-gateway-notify"][1]

    assert client.post("/settings/plugins/tp-gateway/disable").status_code == 302
    ctx.session.rollback()
    assert not ctx.is_enabled("tp-gateway")


def test_dependency_conflicts_are_shown_beside_the_plugin(client, ctx, register_plugin):
    base = register_plugin(Plain(), name="tp-base", info=PluginInfo(title="Base"))
    register_plugin(Plain(), name="tp-addon", info=PluginInfo(title="Addon", depends=(base,)))
    response = client.post("/settings/plugins/tp-addon/enable")
    assert response.status_code == 409
    assert "plugin &#39;tp-addon&#39; needs &#39;tp-base&#39; enabled first" in body(response)
    assert client.post("/settings/plugins/tp-base/enable").status_code == 302
    assert client.post("/settings/plugins/tp-addon/enable").status_code == 302
    response = client.post("/settings/plugins/tp-base/disable")
    assert response.status_code == 409
    assert "is needed by &#39;tp-addon&#39;" in body(response)
    assert client.post("/settings/plugins/core-settings/disable").status_code == 409
    assert client.post("/settings/plugins/no-such-plugin/enable").status_code == 404


def test_a_secret_is_never_sent_to_the_browser(client, ctx, gateway):
    responses = [client.post("/settings/plugins/tp-gateway/settings", GOOD_SETTINGS)]
    page = client.get("/settings/plugins")
    responses.append(page)
    found = elements(body(page))
    assert found["s-tp-gateway-api_key"][1]["value"] == ""
    assert found["s-tp-gateway-api_key"][1]["placeholder"] == "•••• (set)"
    assert "required" not in found["s-tp-gateway-api_key"][1]  # empty keeps the stored one

    # an error elsewhere: the typed values come back, the typed secret does not
    other = "sk_test_AnotherSecretValue"
    response = client.post("/settings/plugins/tp-gateway/settings",
                           {**GOOD_SETTINGS, "api_key": other, "contact": "not an email", "account": "ab"})
    assert response.status_code == 422
    responses.append(response)
    html = body(response)
    assert "Not a valid email address." in html and 'value="not an email"' in html
    assert elements(html)["s-tp-gateway-api_key"][1]["value"] == ""
    assert other not in html

    # an invalid secret: its error does not echo it
    bad = "sk_oops_this_is_wrong"
    response = client.post("/settings/plugins/tp-gateway/settings", {**GOOD_SETTINGS, "api_key": bad})
    assert response.status_code == 422
    responses.append(response)
    assert bad not in body(response) and "not shown: the field is secret" in body(response)

    # saving with the secret left empty keeps it
    response = client.post("/settings/plugins/tp-gateway/settings", {**GOOD_SETTINGS, "api_key": ""})
    assert response.status_code == 302
    responses.append(response)
    responses.append(client.get("/settings/plugins"))
    ctx.session.rollback()
    assert ctx.plugin_settings("tp-gateway")["api_key"] == SECRET
    for r in responses:
        assert SECRET not in body(r) and other not in body(r) and bad not in body(r)


def test_plugin_setting_values_are_escaped(client, ctx, gateway):
    assert client.post("/settings/plugins/tp-gateway/settings",
                       {**GOOD_SETTINGS, "account": XSS[:40]}).status_code == 302
    html = body(client.get("/settings/plugins"))
    assert ESCAPED in html and XSS not in html


# -- pipelines and stages ----------------------------------------------------------------------------


def test_create_rename_default_archive_and_restore_a_pipeline(client, ctx):
    response = client.post("/settings/pipelines/new", {
        "record_type": "deal", "name": "Renewals", "is_default": "",
        "stages": "Due | open | 20\n\nOffer sent | open | 60\nRenewed | won\nChurned | lost"})
    assert response.status_code == 302
    pipeline = pipeline_named(ctx, "Renewals")
    assert stage_names(ctx, pipeline.id) == ["Due", "Offer sent", "Renewed", "Churned"]
    assert [s.probability for s in get_pipeline(ctx, pipeline.id).stages] == [20, 60, 100, 0]

    assert client.post(f"/settings/pipelines/{pipeline.id}/rename", {"name": "Renewal deals"}).status_code == 302
    assert "Renewal deals" in body(client.get("/settings/pipelines"))
    assert client.post(f"/settings/pipelines/{pipeline.id}/default").status_code == 302
    assert get_pipeline(ctx, pipeline.id).is_default

    response = client.post(f"/settings/pipelines/{pipeline.id}/archive")
    assert response.status_code == 409
    assert "is the default for deal records" in body(response)
    sales = pipeline_named(ctx, "Sales")
    assert client.post(f"/settings/pipelines/{sales.id}/default").status_code == 302
    assert client.post(f"/settings/pipelines/{pipeline.id}/archive").status_code == 302
    assert get_pipeline(ctx, pipeline.id).archived_at is not None
    assert client.post(f"/settings/pipelines/{pipeline.id}/restore").status_code == 302
    assert get_pipeline(ctx, pipeline.id).archived_at is None


def test_create_pipeline_errors_are_shown_with_the_input_kept(client, ctx):
    response = client.post("/settings/pipelines/new", {
        "record_type": "deal", "name": "Sales", "stages": "Only | open\nWon | won | lots"})
    assert response.status_code == 422
    html = body(response)
    assert "line 2: the probability &#39;lots&#39; is not a whole number" in html
    assert "Only | open\nWon | won | lots" in html  # the textarea keeps what was typed
    response = client.post("/settings/pipelines/new", {
        "record_type": "deal", "name": "Another", "stages": "A | open\nB | won\nC | open"})
    assert response.status_code == 422
    assert "a pipeline needs at least one lost stage" in body(response)
    response = client.post("/settings/pipelines/new", {
        "record_type": "deal", "name": "Sales", "stages": "A | open\nB | won\nC | lost"})
    assert response.status_code == 422
    assert "a deal pipeline named &#39;Sales&#39; already exists" in body(response)
    assert elements(body(response))["new-deal-name-err"]
    assert len([p for p in list_pipelines(ctx, "deal")]) == 1


def test_add_edit_reorder_and_archive_stages(client, ctx):
    sales = pipeline_named(ctx, "Sales")
    response = client.post(f"/settings/pipelines/{sales.id}/stages",
                           {"name": "Demo", "kind": "open", "probability": "40"})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"#pipeline-{sales.id}")
    names = stage_names(ctx, sales.id)
    assert names.index("Demo") == names.index("Negotiation") + 1  # after the last open stage

    demo = next(s for s in get_pipeline(ctx, sales.id).stages if s.name == "Demo")
    assert client.post(f"/settings/pipelines/stages/{demo.id}/edit",
                       {"name": "Live demo", "kind": "open", "probability": "45"}).status_code == 302
    stage = next(s for s in get_pipeline(ctx, sales.id).stages if s.id == demo.id)
    assert (stage.name, stage.probability) == ("Live demo", 45)

    response = client.post(f"/settings/pipelines/stages/{demo.id}/edit",
                           {"name": "Live demo", "kind": "open", "probability": "140"})
    assert response.status_code == 422
    assert "use a percentage from 0 to 100" in body(response)
    assert elements(body(response))[f"stage-{demo.id}-probability"][1]["value"] == "140"

    # the "up" button of the new stage posts the whole new order
    html = body(client.get("/settings/pipelines"))
    ids = [s.id for s in get_pipeline(ctx, sales.id).active_stages()]
    position = ids.index(demo.id)
    wanted = ids[:position - 1] + [demo.id, ids[position - 1]] + ids[position + 1:]
    assert "".join(f'<input type="hidden" name="stage_ids" value="{i}">' for i in wanted) in html
    assert client.post(f"/settings/pipelines/{sales.id}/reorder", {"stage_ids": wanted}).status_code == 302
    assert [s.id for s in get_pipeline(ctx, sales.id).active_stages()] == wanted

    response = client.post(f"/settings/pipelines/{sales.id}/reorder", {"stage_ids": wanted[:-1]})
    assert response.status_code == 422

    assert client.post(f"/settings/pipelines/stages/{demo.id}/archive").status_code == 302
    assert "Live demo" not in stage_names(ctx, sales.id)
    assert client.post(f"/settings/pipelines/stages/{demo.id}/restore").status_code == 302
    assert "Live demo" in stage_names(ctx, sales.id)


def test_archiving_a_stage_that_holds_open_records_is_refused_with_the_reason(client, ctx):
    sales = pipeline_named(ctx, "Sales")
    first = get_pipeline(ctx, sales.id).active_stages()[0]
    party = create_party(ctx, {"kind": "organisation", "name": "Initech"})
    create_record(ctx, "deal", {"title": "Printers", "party_id": party.id})
    response = client.post(f"/settings/pipelines/stages/{first.id}/archive")
    assert response.status_code == 409
    html = body(response)
    assert "1 open record is in stage &#39;Qualification&#39;; move it first" in html
    assert 'class="form-error' in html
    assert first.name in stage_names(ctx, sales.id)


# -- lists ------------------------------------------------------------------------------------------


def test_list_options_add_edit_deactivate_activate_and_reorder(client, ctx):
    assert client.post("/settings/lists/lost_reason/add", {"value": "too_slow", "label": "Too slow"}).status_code == 302
    option = next(o for o in list_options(ctx, "lost_reason") if o.value == "too_slow")
    assert client.post(f"/settings/lists/options/{option.id}/edit",
                       {"label": "Delivery too slow", "color": "#c00"}).status_code == 302
    again = next(o for o in list_options(ctx, "lost_reason") if o.id == option.id)
    assert (again.label, again.color) == ("Delivery too slow", "#c00")

    assert client.post(f"/settings/lists/options/{option.id}/deactivate").status_code == 302
    assert option.id not in [o.id for o in list_options(ctx, "lost_reason")]
    assert client.post(f"/settings/lists/options/{option.id}/activate").status_code == 302
    assert option.id in [o.id for o in list_options(ctx, "lost_reason")]

    ids = [o.id for o in list_options(ctx, "lost_reason", include_inactive=True)]
    wanted = [ids[-1], *ids[:-1]]
    assert client.post("/settings/lists/lost_reason/reorder", {"option_ids": wanted}).status_code == 302
    assert [o.id for o in list_options(ctx, "lost_reason", include_inactive=True)] == wanted


def test_list_option_errors_are_shown(client):
    response = client.post("/settings/lists/lost_reason/add", {"value": "Price!", "label": "x"})
    assert response.status_code == 422
    assert elements(body(response))["add-lost_reason-value-err"]
    response = client.post("/settings/lists/lost_reason/add", {"value": "price", "label": "Price again"})
    assert response.status_code == 409
    assert "already has an option &#39;price&#39;" in body(response)
    assert client.post("/settings/lists/no_such_list/add", {"value": "a", "label": "A"}).status_code == 404


# -- custom fields ----------------------------------------------------------------------------------


def test_define_edit_archive_restore_and_reorder_custom_fields(client, ctx):
    response = client.post("/settings/fields/new", {
        "target": "record:deal", "key": "segment", "label": "Segment", "type": "choice", "required": ["", "1"],
        "help_text": "Market segment", "options.choices": "smb|Small business\nenterprise|Enterprise\n",
        "options.min": "5"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/settings/fields?target=record:deal")
    segment = next(d for d in list_fields(ctx, "record:deal") if d.key == "segment")
    assert segment.required and segment.help_text == "Market segment"
    assert segment.options["choices"] == [{"value": "smb", "label": "Small business"},
                                          {"value": "enterprise", "label": "Enterprise"}]
    html = body(client.get("/settings/fields?target=record:deal"))
    assert "smb|Small business\nenterprise|Enterprise" in html

    assert client.post("/settings/fields/new", {"target": "record:deal", "key": "budget", "label": "Budget",
                                                "type": "amount", "options.min": "0", "options.currency": "usd"}
                       ).status_code == 302
    budget = next(d for d in list_fields(ctx, "record:deal") if d.key == "budget")
    assert budget.options["currency"] == "USD"

    response = client.post(f"/settings/fields/{segment.id}/edit", {
        "target": "record:deal", "label": "Customer segment", "required": [""], "help_text": "",
        "options.choices": "smb|Small business\nenterprise|Enterprise\npublic|Public sector"})
    assert response.status_code == 302
    segment = next(d for d in list_fields(ctx, "record:deal") if d.id == segment.id)
    assert segment.label == "Customer segment" and not segment.required and len(segment.options["choices"]) == 3

    ids = [d.id for d in list_fields(ctx, "record:deal", include_archived=True)]
    assert client.post("/settings/fields/reorder",
                       {"target": "record:deal", "field_ids": list(reversed(ids))}).status_code == 302
    assert [d.id for d in list_fields(ctx, "record:deal", include_archived=True)] == list(reversed(ids))

    assert client.post(f"/settings/fields/{budget.id}/archive", {"target": "record:deal"}).status_code == 302
    assert [d.key for d in list_fields(ctx, "record:deal")] == ["segment"]
    assert client.post(f"/settings/fields/{budget.id}/restore", {"target": "record:deal"}).status_code == 302
    assert len(list_fields(ctx, "record:deal")) == 2


def test_custom_field_errors_are_shown_beside_the_fields(client, ctx):
    response = client.post("/settings/fields/new", {"target": "party", "key": "Bad Key", "label": "Size",
                                                    "type": "integer", "options.min": "10", "options.max": "1"})
    assert response.status_code == 422
    found = elements(body(response))
    assert found["new-field-key"][1]["value"] == "Bad Key"
    assert "new-field-key-err" in found
    assert "Use a lowercase letter" in body(response)
    assert list_fields(ctx, "party") == []

    response = client.post("/settings/fields/new", {"target": "party", "key": "size", "label": "Size",
                                                    "type": "integer", "options.min": "10", "options.max": "1"})
    assert response.status_code == 422
    assert "new-field-options-max-err" in elements(body(response))
    response = client.post("/settings/fields/new", {"target": "party", "key": "kind", "label": "Kind",
                                                    "type": "choice", "options.choices": ""})
    assert response.status_code == 422
    assert "new-field-options-choices-err" in elements(body(response))
    assert client.get("/settings/fields?target=record:nothing").status_code == 404


# -- numbering ------------------------------------------------------------------------------------


def test_numbering_preview_save_and_turn_off(client, ctx):
    response = client.post("/settings/numbering", {"target": "party", "pattern": "ORG-{0000}", "is_active": ["", "1"],
                                                   "action": "preview"})
    assert response.status_code == 200
    html = body(response)
    assert "<code>ORG-0001</code>, <code>ORG-0002</code>, <code>ORG-0003</code>" in html
    assert next(r for r in list_rules(ctx) if r.target == "party").pattern != "ORG-{0000}"  # not saved

    response = client.post("/settings/numbering", {"target": "party", "pattern": "ORG", "action": "preview"})
    assert response.status_code == 422
    assert "the pattern has no counter; add one such as {0000}" in body(response)
    assert elements(body(response))["rule-party-pattern"][1]["value"] == "ORG"

    response = client.post("/settings/numbering", {"target": "party", "pattern": "ORG", "is_active": ["", "1"],
                                                   "action": "save"})
    assert response.status_code == 422 and "no counter" in body(response)

    response = client.post("/settings/numbering", {"target": "contact", "pattern": "P{yy}-{000}",
                                                   "is_active": ["", "1"], "action": "save"})
    assert response.status_code == 302
    rule = next(r for r in list_rules(ctx) if r.target == "contact")
    assert (rule.pattern, rule.is_active) == ("P{yy}-{000}", True)
    assert client.post("/settings/numbering/disable", {"target": "contact"}).status_code == 302
    assert not next(r for r in list_rules(ctx) if r.target == "contact").is_active
    assert client.post("/settings/numbering/disable", {"target": "record:nothing"}).status_code == 404


# -- users and roles --------------------------------------------------------------------------------


def test_add_an_existing_user_change_the_role_and_remove(client, crm, ctx):
    user = create_user(crm, "sam@example.com", "a long enough password", name="Sam")
    assert client.post("/settings/users/add", {"email": "Sam@Example.com", "role": "member"}).status_code == 302
    assert ("sam@example.com", "member") in [(u.email, r.value) for u, r in list_members(ctx)]
    response = client.post("/settings/users/add", {"email": "sam@example.com", "role": "member"})
    assert response.status_code == 409 and "already a member" in body(response)
    response = client.post("/settings/users/add", {"email": "nobody@example.com", "role": "member"})
    assert response.status_code == 404

    assert client.post(f"/settings/users/{user.id}/role", {"role": "admin"}).status_code == 302
    assert ("sam@example.com", "admin") in [(u.email, r.value) for u, r in list_members(ctx)]
    response = client.post(f"/settings/users/{user.id}/role", {"role": "boss"})
    assert response.status_code == 422 and "use one of" in body(response)
    assert client.post(f"/settings/users/{user.id}/remove").status_code == 302
    assert "sam@example.com" not in [u.email for u, _r in list_members(ctx)]


def test_create_a_user_shows_the_generated_password_once(app, client, ctx):
    response = client.post("/settings/users/create", {"email": "new@example.com", "name": "New Person",
                                                      "password": "", "role": "read_only"})
    assert response.status_code == 200
    password = elements(body(response))["new-password"][1]["value"]
    assert password and "only time the password is shown" in body(response)
    assert ("new@example.com", "read_only") in [(u.email, r.value) for u, r in list_members(ctx)]
    assert password not in body(client.get("/settings/users"))
    response = CrmClient(app.test_client()).login("new@example.com", password)
    assert response.status_code == 302

    response = client.post("/settings/users/create", {"email": "typed@example.com", "password": "my own password 1",
                                                      "role": "member"})
    assert response.status_code == 200 and "my own password 1" not in body(response)
    response = client.post("/settings/users/create", {"email": "short@example.com", "password": "short",
                                                      "role": "member"})
    assert response.status_code == 422
    assert "use at least" in body(response) and 'value="short"' not in body(response)
    response = client.post("/settings/users/create", {"email": "new@example.com", "role": "member"})
    assert response.status_code == 409 and "already exists" in body(response)


def test_the_last_owner_cannot_be_demoted_or_removed(client, ctx):
    me = ctx.user_id
    response = client.post(f"/settings/users/{me}/role", {"role": "admin"})
    assert response.status_code == 409
    assert "a business needs at least one owner" in body(response)
    response = client.post(f"/settings/users/{me}/remove")
    assert response.status_code == 409
    assert "a business needs at least one owner" in body(response)


def test_an_admin_cannot_make_owners(client_as, crm, ctx):
    admin = client_as("admin")
    html = body(admin.get("/settings/users"))
    assert '<option value="owner"' not in html.split('id="add-member"')[1]
    create_user(crm, "x@example.com", "a long enough password")
    assert admin.post("/settings/users/add", {"email": "x@example.com", "role": "owner"}).status_code == 403
    assert admin.post("/settings/users/create", {"email": "y@example.com", "role": "owner"}).status_code == 403
    assert "y@example.com" not in [u.email for u, _r in list_members(ctx)]


# -- API tokens --------------------------------------------------------------------------------------


def test_a_token_is_shown_once_then_only_its_name_and_prefix(client, ctx):
    response = client.post("/settings/tokens/new", {"name": "Zapier", "expires_on": "2099-12-31"})
    assert response.status_code == 200
    token = elements(body(response))["new-token-value"][1]["value"]
    assert token.startswith("crm_") and "shown only this once" in body(response)
    (row,) = list_api_tokens(ctx)
    listing = body(client.get("/settings/tokens"))
    assert token not in listing
    assert "Zapier" in listing and f"crm_{row.prefix}_…" in listing
    assert token not in body(client.get("/settings/tokens"))

    response = client.post("/settings/tokens/new", {"name": ""})
    assert response.status_code == 422
    assert "give a name of 1 to 100 characters" in body(response)
    assert "new-token-name-err" in elements(body(response))

    assert client.post(f"/settings/tokens/{row.id}/revoke").status_code == 302
    assert list_api_tokens(ctx) == []
    assert "Zapier" not in body(client.get("/settings/tokens"))


def test_a_past_expiry_date_is_refused(client, ctx):
    response = client.post("/settings/tokens/new", {"name": "Old", "expires_on": "2001-01-01"})
    assert response.status_code == 422
    assert "new-token-expires_on-err" in elements(body(response))
    assert list_api_tokens(ctx) == []


# -- another business's objects ------------------------------------------------------------------------


def test_another_business_objects_are_not_found_on_every_route(client, ctx, other_ctx, other_business):
    other_pipeline = list_pipelines(other_ctx, "deal")[0]
    other_stage = other_pipeline.stages[0]
    other_field = define_field(other_ctx, "party", {"key": "theirs", "label": "Theirs", "type": "text"})
    other_option = list_options(other_ctx, "lost_reason")[0]
    other_token, _plain = create_api_token(other_ctx, "Their token")
    other_owner = other_ctx.user_id
    mine = pipeline_named(ctx, "Sales")
    p, s, f, o, t = other_pipeline.id, other_stage.id, other_field.id, other_option.id, other_token.id
    posts = [
        (f"/settings/pipelines/{p}/rename", {"name": "Hijacked"}),
        (f"/settings/pipelines/{p}/archive", {}), (f"/settings/pipelines/{p}/restore", {}),
        (f"/settings/pipelines/{p}/default", {}),
        (f"/settings/pipelines/{p}/stages", {"name": "Hijacked", "kind": "open"}),
        (f"/settings/pipelines/{p}/reorder", {"stage_ids": [x.id for x in other_pipeline.stages]}),
        (f"/settings/pipelines/{mine.id}/reorder", {"stage_ids": [s]}),
        (f"/settings/pipelines/stages/{s}/edit", {"name": "Hijacked", "kind": "open"}),
        (f"/settings/pipelines/stages/{s}/archive", {}), (f"/settings/pipelines/stages/{s}/restore", {}),
        (f"/settings/fields/{f}/edit", {"target": "party", "label": "Hijacked"}),
        (f"/settings/fields/{f}/archive", {"target": "party"}), (f"/settings/fields/{f}/restore", {}),
        ("/settings/fields/reorder", {"target": "party", "field_ids": [f]}),
        (f"/settings/lists/options/{o}/edit", {"label": "Hijacked"}),
        (f"/settings/lists/options/{o}/deactivate", {}), (f"/settings/lists/options/{o}/activate", {}),
        ("/settings/lists/lost_reason/reorder", {"option_ids": [o]}),
        (f"/settings/tokens/{t}/revoke", {}),
        (f"/settings/users/{other_owner}/role", {"role": "read_only"}),
        (f"/settings/users/{other_owner}/remove", {}),
    ]
    for url, data in posts:
        response = client.post(url, data)
        assert response.status_code == 404, (url, response.status_code)
        assert "Hijacked" not in body(response)
    assert get_pipeline(other_ctx, p).name == other_pipeline.name
    assert [x.name for x in get_pipeline(other_ctx, p).stages] == [x.name for x in other_pipeline.stages]
    assert list_fields(other_ctx, "party")[0].label == "Theirs"
    assert list_options(other_ctx, "lost_reason")[0].label == other_option.label
    assert len(list_api_tokens(other_ctx)) == 1
    assert [r.value for _u, r in list_members(other_ctx)] == ["owner"]
    for page in PAGES:
        html = body(client.get(page))
        assert "Their token" not in html and "Theirs" not in html and "owner@globex.example" not in html


# -- escaping -----------------------------------------------------------------------------------------


def test_names_and_labels_are_escaped_everywhere(client, crm, ctx):
    sales = pipeline_named(ctx, "Sales")
    assert client.post(f"/settings/pipelines/{sales.id}/rename", {"name": XSS}).status_code == 302
    assert client.post(f"/settings/pipelines/{sales.id}/stages", {"name": XSS, "kind": "open"}).status_code == 302
    assert client.post("/settings/pipelines/new", {"record_type": "lead", "name": "x" + XSS,
                                                   "stages": f"{XSS}2 | open\nW | won\nL | lost"}).status_code == 302
    assert client.post("/settings/lists/competitor/add", {"value": "evil", "label": XSS}).status_code == 302
    assert client.post("/settings/fields/new", {"target": "party", "key": "evil", "label": XSS, "type": "choice",
                                                "help_text": XSS, "options.choices": f"a|{XSS}"}).status_code == 302
    assert client.post("/settings/tokens/new", {"name": XSS}).status_code == 200
    create_user(crm, "evil@example.com", "a long enough password", name=XSS)
    add_member(ctx, "evil@example.com", "member")
    for page in ["/settings/pipelines", "/settings/lists", "/settings/fields", "/settings/tokens", "/settings/users"]:
        html = body(client.get(page))
        assert ESCAPED in html, page
        assert XSS not in html, page
    # refused input is shown again escaped too
    response = client.post("/settings/pipelines/new", {"record_type": "deal", "name": XSS, "stages": XSS})
    assert response.status_code == 422
    assert XSS not in body(response) and ESCAPED in body(response)


# -- statements per page -----------------------------------------------------------------------------


@pytest.fixture
def count_statements(crm):
    def count(fn):
        seen = []

        def listener(*_args, **_kwargs):
            seen.append(1)

        event.listen(crm.db.engine, "before_cursor_execute", listener)
        try:
            fn()
        finally:
            event.remove(crm.db.engine, "before_cursor_execute", listener)
        return len(seen)

    return count


def _grow(ctx, crm, n: int, start: int) -> None:
    sales = pipeline_named(ctx, "Sales")
    for i in range(start, start + n):
        add_stage(ctx, sales.id, {"name": f"Step {i}", "kind": "open"})
        create_pipeline(ctx, "incident", {"name": f"Desk {i}", "stages": [
            {"name": "Open", "kind": "open"}, {"name": "Done", "kind": "won"}, {"name": "Dropped", "kind": "lost"}]})
        add_option(ctx, "competitor", {"value": f"rival_{i}", "label": f"Rival {i}"})
        define_field(ctx, "party", {"key": f"extra_{i}", "label": f"Extra {i}", "type": "text"})
        create_api_token(ctx, f"Token {i}")
        create_user(crm, f"user{i}@example.com", None, name=f"User {i}")
        add_member(ctx, f"user{i}@example.com", "member")


def test_list_pages_use_the_same_number_of_statements_for_5_or_40_rows(client, crm, ctx, count_statements):
    pages = ["/settings/pipelines", "/settings/lists", "/settings/fields", "/settings/users", "/settings/tokens",
             "/settings/plugins", "/settings/numbering"]

    def get(page: str) -> None:
        assert client.get(page).status_code == 200

    _grow(ctx, crm, 5, 0)
    few = {page: count_statements(lambda page=page: get(page)) for page in pages}
    _grow(ctx, crm, 35, 5)
    assert body(client.get("/settings/tokens")).count('id="token-') == 40
    assert body(client.get("/settings/fields")).count('class="card field-def') == 40
    assert body(client.get("/settings/users")).count('<tr id="member-') == 41
    many = {page: count_statements(lambda page=page: get(page)) for page in pages}
    assert few == many


def test_the_settings_index_lists_other_plugins_settings_pages(app, crm, register_plugin, ctx):
    class Extra:
        @hookimpl
        def crm_admin_menu(self, ctx):
            return [{"label": "Gateway options", "url": "/x/gateway", "section": "settings", "order": 50}]

    register_plugin(Extra(), name="tp-extra", enable_for=ctx)
    html = body(login(app, "owner@acme.example").get("/settings/"))
    assert re.search(r'href="/x/gateway">Gateway options</a>', html)


def test_generated_settings_form_shows_schema_defaults_until_something_is_stored(client, register_plugin):
    import marshmallow as ma

    from crmcore import PluginInfo

    class DefaultsSchema(ma.Schema):
        greeting = ma.fields.String(load_default="Hello there")
        strict = ma.fields.Boolean(load_default=True)

    class DefaultsPlugin:
        PLUGIN = PluginInfo(title="Defaults", settings_schema=DefaultsSchema)

    name = register_plugin(DefaultsPlugin())
    html = client.get("/settings/plugins").get_data(as_text=True)
    section = html.split(f'id="plugin-{name}"', 1)[1].split('<section class="card plugin"', 1)[0]
    assert 'value="Hello there"' in section
    import re

    checkbox = re.search(r'<input type="checkbox"[^>]*name="strict"[^>]*>', section).group(0)
    assert "checked" in checkbox
