"""List fields in a plugin's generated settings form: a list of fixed choices is a group of
checkboxes, any other list a textarea with one item per line (each loaded by the inner field,
errors naming the line); what is shown saves back unchanged; secret and structured lists are
not editable here and keep what is stored; a refused save writes nothing."""

from __future__ import annotations

import re
from decimal import Decimal
from html.parser import HTMLParser

import marshmallow as ma
import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import fields, validate
from werkzeug.datastructures import MultiDict

from crmcore import PluginInfo
from crmcore.plugins.service import save_settings
from crmcore.web.settings import schema_form

NAME = "tp-lists"


class ListSettings(ma.Schema):
    recipients = fields.List(fields.Email(), required=True, validate=validate.Length(min=1),
                             metadata={"description": "Who gets the report."})
    cc = fields.List(fields.Email())
    channels = fields.List(fields.String(validate=validate.OneOf(["email", "sms", "push"],
                                                                 labels=["Email", "Text message", "Push"])),
                           load_default=list)
    tiers = fields.List(fields.String(), validate=validate.ContainsOnly(["gold", "silver"]))
    levels = fields.List(fields.Integer(validate=validate.OneOf([1, 2, 3])))
    sizes = fields.List(fields.Integer(strict=True, validate=validate.Range(min=1)))
    prices = fields.List(fields.Decimal(places=2, as_string=True))
    tags = fields.List(fields.String(validate=validate.Length(max=10)), load_default=lambda: ["crm"])
    rules = fields.List(fields.Dict())
    title = fields.String()


class ListsPlugin:
    """A plugin with list settings only."""


@pytest.fixture
def plugin(register_plugin):
    return register_plugin(ListsPlugin(), name=NAME, info=PluginInfo(title="Lists", settings_schema=ListSettings))


GOOD = {
    "recipients": "ann@acme.example\r\n\r\n   bob@acme.example  \r\n",
    "cc": "",
    "channels": ["", "email", "push"],
    "tiers": ["", "gold"],
    "levels": ["", "2", "3"],
    "sizes": "3\n10",
    "prices": "1.50\n2",
    "tags": "",
    "title": "Weekly",
}


# -- helpers -------------------------------------------------------------------------------------


class _Form(HTMLParser):
    """What a browser would post for one form: hidden and text inputs, ticked boxes, textareas
    (without the newline that follows the tag), selected options."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.data: list[tuple[str, str]] = []
        self.textarea: str | None = None
        self.text = ""
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside:
            return
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "input" and a.get("name") and a.get("name") != "csrf_token":
            if a.get("type") == "checkbox" and "checked" not in a:
                return
            self.data.append((a["name"], a.get("value", "")))
        elif tag == "textarea":
            self.textarea, self.text = a["name"], ""

    def handle_data(self, data: str) -> None:
        if self.textarea is not None:
            self.text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea" and self.textarea is not None:
            text = self.text[1:] if self.text.startswith("\n") else self.text
            self.data.append((self.textarea, text))
            self.textarea = None
        elif tag == "form":
            self.inside = False


def shown_form(client) -> _Form:
    parser = _Form(f"settings-{NAME}")
    parser.feed(client.get("/settings/plugins").get_data(as_text=True))
    return parser


def section(html: str) -> str:
    return html.split(f'id="plugin-{NAME}"', 1)[1].split('<section class="card plugin"', 1)[0]


def stored(ctx) -> dict:
    ctx.session.rollback()
    return ctx.plugin_settings(NAME)


def post(client, data: dict | MultiDict):
    """Post the form with every value of a name (CrmClient.post keeps one per name)."""
    pairs = data.items(multi=True) if isinstance(data, MultiDict) else \
        [(k, v) for k, values in data.items() for v in (values if isinstance(values, list) else [values])]
    return client.raw.post(f"/settings/plugins/{NAME}/settings",
                           data=MultiDict([*pairs, ("csrf_token", client.csrf_token())]))


# -- rendering -------------------------------------------------------------------------------------


def test_lists_render_as_checkboxes_or_lines(client, plugin):
    html = section(client.get("/settings/plugins").get_data(as_text=True))
    # a list of choices: one labelled box per choice, none ticked (load_default=list)
    channels = re.search(r'<fieldset class="field checkboxes" id="s-tp-lists-channels">.*?</fieldset>', html, re.S)
    assert channels, html
    boxes = re.findall(r'<input type="checkbox" id="[^"]+" name="channels" value="(\w+)"( checked)?> ([^<]+)</label>',
                       channels.group(0))
    assert [(v, c, label.strip()) for v, c, label in boxes] == [
        ("email", "", "Email"), ("sms", "", "Text message"), ("push", "", "Push")]
    assert re.search(r'name="tiers" value="gold"', html) and re.search(r'name="levels" value="3"', html)
    # any other list: a textarea, one item per line, the schema's default shown
    assert re.search(r'<textarea id="s-tp-lists-recipients" name="recipients"', html)
    assert "Who gets the report. One per line." in html
    assert re.search(r'Recipients <span class="req"', html)  # required (and at least one item)
    assert re.search(r'<textarea id="s-tp-lists-tags" name="tags" rows="4">\ncrm</textarea>', html)
    for key in ("sizes", "prices", "cc"):
        assert re.search(rf'<textarea id="s-tp-lists-{key}" name="{key}"', html)
    # structured lists are notes, without any input (a secret list is refused when the plugin
    # loads: tests/test_settings.py)
    assert 'name="rules"' not in html
    assert "A list of structured items cannot be edited on this page" in html
    assert not [i for i in shown_form(client).ids if shown_form(client).ids.count(i) > 1]


# -- saving ----------------------------------------------------------------------------------------


def test_a_save_stores_real_lists(client, ctx, plugin):
    response = post(client, GOOD)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert stored(ctx) == {
        "recipients": ["ann@acme.example", "bob@acme.example"], "cc": [], "channels": ["email", "push"],
        "tiers": ["gold"], "levels": [2, 3], "sizes": [3, 10], "prices": ["1.50", "2.00"], "tags": [],
        "title": "Weekly"}
    assert Decimal(stored(ctx)["prices"][0]) == Decimal("1.5")


def test_what_is_shown_saves_back_unchanged(client, ctx, plugin):
    save_settings(ctx, NAME, {"recipients": ["ann@acme.example", "bob@acme.example"], "cc": ["x@acme.example"],
                              "channels": ["sms"], "tiers": ["silver", "gold"], "levels": [1],
                              "sizes": [7], "prices": ["0.99"], "tags": ["a b", "ü", "x, y"],
                              "rules": [{"when": "won", "then": "mail"}]})
    before = stored(ctx)
    form = shown_form(client)
    data = MultiDict(form.data)
    assert data.getlist("channels") == ["", "sms"] and data.getlist("tiers") == ["", "gold", "silver"]
    assert data["tags"] == "a b\nü\nx, y"
    response = post(client, data)
    assert response.status_code == 302, response.get_data(as_text=True)
    after = stored(ctx)
    assert after["tiers"] == ["gold", "silver"]  # the boxes' order: the same set
    assert {**after, "tiers": before["tiers"]} == before  # structured lists kept


def test_an_empty_list_is_saved_where_the_schema_allows_it(client, ctx, plugin):
    assert post(client, GOOD).status_code == 302
    emptied = {**GOOD, "channels": [""], "tiers": [""], "levels": [""], "sizes": "\n \n", "prices": "",
               "cc": "", "tags": ""}
    assert post(client, emptied).status_code == 302
    assert stored(ctx) == {"recipients": ["ann@acme.example", "bob@acme.example"], "cc": [], "channels": [],
                           "tiers": [], "levels": [], "sizes": [], "prices": [], "tags": [], "title": "Weekly"}


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"recipients": "ok@acme.example\n\nnot an email\n"}, "recipients", "line 3: Not a valid email address."),
    ({"recipients": "\r\n  \r\n"}, "recipients", "Missing data for required field."),
    ({"sizes": "1\nlots"}, "sizes", "line 2: Not a valid integer."),
    ({"sizes": "4\n\n\n0"}, "sizes", "line 4: Must be greater than or equal to 1."),
    ({"prices": "1.5\nabc"}, "prices", "line 2: Not a valid number."),
    ({"tags": "fine\nmuch too long a tag"}, "tags", "line 2: Longer than maximum length 10."),
    ({"channels": ["", "email", "fax"]}, "channels", "“fax”: Must be one of: email, sms, push."),
    ({"levels": ["", "9"]}, "levels", "“9”: Must be one of: 1, 2, 3."),
    ({"tiers": ["", "bronze"]}, "tiers", "One or more of the choices you made was not in: gold, silver."),
])
def test_a_refused_list_names_the_field_and_item_keeps_the_input_and_writes_nothing(
        client, ctx, plugin, change, field, message):
    assert post(client, GOOD).status_code == 302
    before = stored(ctx)
    typed = {**GOOD, **change}
    response = post(client, typed)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    error = re.search(rf'<span class="field-error" id="s-tp-lists-{field}-err" role="alert">([^<]*)</span>', html)
    assert error, html
    assert error.group(1).replace("&#34;", '"').replace("&#39;", "'") == message
    # the page shows what was typed, every field of the form
    form = _Form(f"settings-{NAME}")
    form.feed(html)
    again = MultiDict(form.data)
    boxes = {c.key: [value for value, _label in c.choices] for c in schema_form.controls(ListSettings)}
    for key, value in typed.items():
        if isinstance(value, list):  # ticked again where a box exists (a tampered value has none)
            assert again.getlist(key) == [""] + [choice for choice in boxes[key] if choice in value]
        else:
            assert again[key] == value
    assert stored(ctx) == before


def test_lists_saved_for_one_business_are_not_another_s(client, ctx, other_ctx, plugin):
    assert post(client, GOOD).status_code == 302
    other_ctx.session.rollback()
    assert other_ctx.plugin_settings(NAME) == {}


# -- the form's functions, for any list --------------------------------------------------------------

_ITEM = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), min_size=1,
                max_size=12).filter(lambda t: t == t.strip() and t != "")


@given(st.lists(_ITEM, max_size=6))
def test_any_list_of_one_line_items_shows_and_reads_back_the_same(items):
    controls = schema_form.controls(ListSettings)
    (tags,) = [c for c in controls if c.key == "tags"]
    shown = schema_form.shown_values([tags], {"tags": items})["tags"]
    assert schema_form.read_form([tags], MultiDict({"tags": shown})) == {"tags": items}


@given(st.lists(st.sampled_from(["email", "sms", "push"]), unique=True))
def test_any_ticked_choices_show_and_read_back_the_same(chosen):
    (channels,) = [c for c in schema_form.controls(ListSettings) if c.key == "channels"]
    shown = schema_form.shown_values([channels], {"channels": chosen})["channels"]
    assert shown == chosen
    posted = MultiDict([("channels", "")] + [("channels", value) for value in shown])
    assert schema_form.read_form([channels], posted) == {"channels": chosen}


def test_a_secret_list_is_never_an_input():
    """A plugin declaring one is refused at load (tests/test_settings.py); a schema that reaches
    the form another way (the install-wide ``crm_settings_schema`` hook) still gets a note, no
    input that could echo a secret."""

    class Secretive(ma.Schema):
        tokens = fields.List(fields.String(), metadata={"secret": True})

    (control,) = schema_form.controls(Secretive)
    assert control.kind == "unsupported" and control.secret
