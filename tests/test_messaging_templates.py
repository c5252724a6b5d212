"""Templates: sandboxed Jinja, strict variables, escaping, and validation when saving."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmcore.errors import ValidationFailed
from crmcore.messaging import service as messaging
from crmcore.messaging import templates as tpl
from crmcore.messaging.defaults import DEFAULT_TEMPLATES


def parts(**values):
    return tpl.Parts(**{"subject": "s", "body_text": "t", **values})


def test_one_template_gives_the_email_and_the_sms():
    rendered = tpl.render(parts(subject="Hello {{ party.name }}\n again", body_text="Dear {{ contact.first_name }}",
                                body_html="<p>{{ party.name }}</p>", sms_text="{{ business.name }}: hi"),
                          tpl.sample_context())
    assert rendered.subject == "Hello Meadow Farms again"  # one line, whatever the template did
    assert rendered.text == "Dear Maria" and rendered.html == "<p>Meadow Farms</p>"
    assert rendered.sms == "Acme Equipment: hi"
    assert tpl.render(parts(body_text="Text for both"), tpl.sample_context()).sms == "Text for both"


def test_html_is_escaped_and_text_is_not():
    context = tpl.sample_context({"note": '<script>alert("x")</script> & co'})
    rendered = tpl.render(parts(body_text="{{ note }}", body_html="<p>{{ note }}</p>"), context)
    assert rendered.text == '<script>alert("x")</script> & co'
    assert rendered.html == "<p>&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; co</p>"


def test_typos_are_errors_naming_the_part_and_what_exists():
    errors = tpl.check(parts(subject="{{ party.nmae }}", body_text="{{ costumer.name }}",
                             body_html="{% if %}", sms_text="{{ record.title }"), tpl.sample_context())
    assert set(errors) == {"subject", "body_text", "body_html", "sms_text"}
    assert "no field 'nmae' here; it has:" in errors["subject"][0] and "name" in errors["subject"][0]
    assert "unknown variable 'costumer'" in errors["body_text"][0] and "party" in errors["body_text"][0]
    assert errors["body_html"][0].startswith("line 1:")


@pytest.mark.parametrize("source", [
    "{{ party.__class__ }}", "{{ ''.__class__.__mro__ }}", "{{ party.update({'name': 'x'}) }}",
    "{{ [].append(1) }}", "{{ 'x' * 100000 }}", "{{ 9 ** 999 }}", "{% for i in range(10**7) %}{% endfor %}",
    "{{ cycler.__init__.__globals__ }}", "{{ lipsum.__globals__ }}",
])
def test_the_sandbox_refuses_what_a_template_must_not_do(source):
    assert "body_text" in tpl.check(parts(body_text=source), tpl.sample_context())


def test_filters_format_money_and_dates_in_the_business_language():
    context = tpl.sample_context()
    rendered = tpl.render(parts(body_text="{{ record.amount | money(record.currency) }} by "
                                          "{{ record.expected_close_date | date }}"), context)
    assert rendered.text == "€84,500.00 by December 15, 2026"
    context["business"] = {**context["business"], "language": "de"}
    german = tpl.render(parts(body_text="{{ record.amount | money('EUR') }}"), context)
    assert german.text.replace("\xa0", " ") == "84.500,00 €"


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_any_value_is_escaped_in_html(value):
    html = tpl.render(parts(body_html="<b>{{ v }}</b>"), tpl.sample_context({"v": value})).html
    inner = html[3:-4]
    assert "<" not in inner and ">" not in inner and '"' not in inner


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="{}%#\r"), max_size=200))
def test_text_without_jinja_renders_as_itself(source):
    """(Jinja turns a lone carriage return into a newline: emails end lines with CRLF anyway.)"""
    assert tpl.render(parts(body_text=source), tpl.sample_context()).text == source


def test_every_default_template_renders_for_its_event(ctx):
    created = messaging.seed_default_templates(ctx)
    assert {t.key for t in created} == {t["key"] for t in DEFAULT_TEMPLATES}
    assert messaging.seed_default_templates(ctx) == []  # idempotent


def test_saving_validates_every_part_and_keeps_nothing_on_error(ctx):
    with pytest.raises(ValidationFailed) as raised:
        messaging.create_template(ctx, {"key": "welcome", "name": "Welcome", "subject": "Hi {{ party.nmae }}",
                                        "body_text": "Hello", "body_html": "<p>{{ costumer }}</p>"})
    assert set(raised.value.errors) == {"subject", "body_html"}
    assert messaging.list_templates(ctx) == []


@pytest.mark.parametrize(("data", "field"), [
    ({"key": "Bad Key!"}, "key"),
    ({"key": ""}, "key"),
    ({"name": ""}, "name"),
    ({"subject": ""}, "subject"),
    ({"body_text": "   "}, "body_text"),
    ({"sms_text": "x" * 2001}, "sms_text"),
    ({"unknown": 1}, "unknown"),
])
def test_template_fields_are_checked(ctx, data, field):
    values = {"key": "welcome", "name": "Welcome", "subject": "Hi", "body_text": "Hello"} | data
    with pytest.raises(ValidationFailed) as raised:
        messaging.create_template(ctx, values)
    assert field in raised.value.errors


def test_an_event_key_checks_against_that_event(ctx):
    """``party.created`` has no record: an unguarded record variable is refused there, accepted
    in a template that is not an event's."""
    source = {"name": "x", "subject": "{{ record.title }}", "body_text": "t"}
    with pytest.raises(ValidationFailed) as raised:
        messaging.create_template(ctx, {"key": "party.created", **source})
    assert "empty for this message" in raised.value.errors["subject"][0]
    assert messaging.create_template(ctx, {"key": "any.thing", **source}).key == "any.thing"
    guarded = {"name": "x", "subject": "{% if record %}{{ record.title }}{% endif %}Welcome", "body_text": "t"}
    assert messaging.create_template(ctx, {"key": "party.created", **guarded}).key == "party.created"


def test_keys_are_unique_per_business(ctx, other_ctx):
    data = {"key": "welcome", "name": "Welcome", "subject": "Hi", "body_text": "Hello"}
    first = messaging.create_template(ctx, data)
    with pytest.raises(ValidationFailed) as raised:
        messaging.create_template(ctx, data)
    assert "key" in raised.value.errors
    assert messaging.create_template(other_ctx, data).key == "welcome"
    second = messaging.create_template(ctx, {**data, "key": "other"})
    with pytest.raises(ValidationFailed):
        messaging.update_template(ctx, second.id, data)
    updated = messaging.update_template(ctx, first.id, {**data, "subject": "Hi again", "active": False})
    assert updated.subject == "Hi again" and not updated.active


def test_the_preview_renders_against_the_sample_and_saves_nothing(ctx):
    rendered = messaging.preview_template(ctx, {"key": "deal.lost", "name": "x", "subject": "Lost {{ record.title }}",
                                                "body_text": "{{ lost_reason }}", "sms_text": "{{ lost_reason }}!"})
    assert rendered.subject == "Lost Excavator EX-140" and rendered.text == "Price" and rendered.sms == "Price!"
    # deal.lost has no to_stage: the sms part is refused
    with pytest.raises(ValidationFailed):
        messaging.preview_template(ctx, {"key": "deal.lost", "name": "x", "subject": "s", "body_text": "t",
                                         "sms_text": "{{ to_stage.name }}"})
    assert messaging.list_templates(ctx) == []
