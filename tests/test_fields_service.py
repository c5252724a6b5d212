"""Custom-field definitions and values through the service: roles, tenancy, required handling,
archived fields, party references, merge rules, rendering, plugin-provided types."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from crmcore.audit.models import AuditEntry
from crmcore.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from crmcore.fields import service as fields
from crmcore.fields.models import FieldDefinition
from crmcore.fields.types import TextField
from crmcore.parties.models import Party
from crmcore.plugins.drivers import register_driver, unregister_driver
from crmcore.plugins.service import disable_plugin, enable_plugin

COLOURS = {"choices": [{"value": "red", "label": "Red"}, {"value": "green", "label": "Green"}]}


def count(ctx, model) -> int:
    ctx.session.rollback()
    return ctx.session.scalar(select(func.count()).select_from(model))


def add_party(ctx, name: str, custom: dict | None = None) -> Party:
    party = Party(kind="organisation", name=name, name_key=name.casefold(), custom=custom or {})
    ctx.session.add(party)
    ctx.session.commit()
    return party


# --------------------------------------------------------------------------------------------
# definitions


def test_define_field_fills_defaults_and_audits(ctx):
    first = fields.define_field(ctx, "party", {"key": "industry", "label": " Industry ", "type": "choice",
                                               "options": COLOURS, "help_text": "  "})
    second = fields.define_field(ctx, "party", {"key": "budget", "label": "Budget", "type": "amount"})
    assert (first.label, first.help_text, first.position, first.required) == ("Industry", None, 0, False)
    assert second.position == 1
    assert second.options == {"currency": "EUR"}  # the business's currency
    assert [f.key for f in fields.list_fields(ctx, "party")] == ["industry", "budget"]
    actions = ctx.session.scalars(select(AuditEntry.action).where(AuditEntry.entity_id == first.id)).all()
    assert "field.defined" in actions


BAD_DEFINITIONS = [
    ({"key": "Bad Key", "label": "x", "type": "text"}, "key"),
    ({"key": "9lives", "label": "x", "type": "text"}, "key"),
    ({"key": "a" * 64, "label": "x", "type": "text"}, "key"),
    ({"key": "ok", "label": "", "type": "text"}, "label"),
    ({"key": "ok", "label": "x", "type": "text", "colour": "red"}, "colour"),
    ({"key": "ok", "label": "x", "type": "nope"}, "type"),
    ({"key": "ok", "label": "x", "type": "text", "options": {"max_length": -1}}, "options"),
    ({"key": "ok", "label": "x", "type": "date", "options": {"format": "dd.mm"}}, "options"),
    ({"key": "ok", "label": "x", "type": "choice"}, "options"),
    ({"key": "ok", "label": "x", "type": "text", "help_text": "h" * 501}, "help_text"),
    ("not a mapping", "_schema"),
]


def test_define_field_refuses_bad_input_and_writes_nothing(ctx):
    before = count(ctx, FieldDefinition)
    for data, path in BAD_DEFINITIONS:
        with pytest.raises(ValidationFailed) as info:
            fields.define_field(ctx, "party", data)
        assert path in info.value.errors, (data, info.value.errors)
    assert count(ctx, FieldDefinition) == before


def test_unknown_type_lists_the_available_ones(ctx):
    with pytest.raises(ValidationFailed) as info:
        fields.get_field_type(ctx, "colour")
    assert "unknown field type 'colour'" in info.value.message
    assert "multi_choice" in info.value.errors["type"][0] and "text" in info.value.errors["type"][0]


def test_define_field_checks_the_target(ctx):
    for target in ("parties", "record:", "record:spaceship", "record:Deal", "", None):
        with pytest.raises(ValidationFailed) as info:
            fields.define_field(ctx, target, {"key": "x", "label": "X", "type": "text"})
        assert "target" in info.value.errors, target
    with pytest.raises(ValidationFailed) as info:
        fields.define_field(ctx, "record:spaceship", {"key": "x", "label": "X", "type": "text"})
    assert "'spaceship' is not a record type of this business" in info.value.errors["target"][0]


def test_targets_for_contacts_and_record_types(ctx):
    fields.define_field(ctx, "contact", {"key": "birthday", "label": "Birthday", "type": "date"})
    fields.define_field(ctx, "record:deal", {"key": "model", "label": "Model", "type": "text"})
    assert [f.key for f in fields.list_fields(ctx, "record:deal")] == ["model"]
    assert fields.list_fields(ctx, "record:lead") == []


def test_keys_are_unique_per_target(ctx):
    fields.define_field(ctx, "party", {"key": "size", "label": "Size", "type": "integer"})
    fields.define_field(ctx, "contact", {"key": "size", "label": "Size", "type": "integer"})
    with pytest.raises(Conflict) as info:
        fields.define_field(ctx, "party", {"key": "size", "label": "Other", "type": "text"})
    assert "key" in info.value.errors


def test_admin_only_for_definitions_read_only_may_list(ctx, business, make_user):
    definition = fields.define_field(ctx, "party", {"key": "size", "label": "Size", "type": "integer"})
    member = make_user(business, "member")
    reader = make_user(business, "read_only")
    for who in (member, reader):
        with pytest.raises(PermissionDenied):
            fields.define_field(who, "party", {"key": "x", "label": "X", "type": "text"})
        with pytest.raises(PermissionDenied):
            fields.update_field(who, definition.id, {"label": "Y"})
        with pytest.raises(PermissionDenied):
            fields.archive_field(who, definition.id)
    assert [f.key for f in fields.list_fields(reader, "party")] == ["size"]
    admin = make_user(business, "admin")
    fields.update_field(admin, definition.id, {"label": "Fleet size"})


def test_other_business_cannot_see_or_touch_a_field(ctx, other_ctx):
    definition = fields.define_field(ctx, "party", {"key": "size", "label": "Size", "type": "integer"})
    assert fields.list_fields(other_ctx, "party") == []
    with pytest.raises(NotFound):
        fields.update_field(other_ctx, definition.id, {"label": "Mine"})
    with pytest.raises(NotFound):
        fields.archive_field(other_ctx, definition.id)
    with pytest.raises(ValidationFailed):
        fields.reorder_fields(other_ctx, "party", [definition.id])
    # the same key is free in the other business
    fields.define_field(other_ctx, "party", {"key": "size", "label": "Size", "type": "text"})


def test_update_field(ctx):
    definition = fields.define_field(ctx, "party", {"key": "colour", "label": "Colour", "type": "choice",
                                                    "options": COLOURS})
    with pytest.raises(Conflict):
        fields.update_field(ctx, definition.id, {"type": "text"})
    with pytest.raises(Conflict):
        fields.update_field(ctx, definition.id, {"key": "color"})
    with pytest.raises(ValidationFailed) as info:
        fields.update_field(ctx, definition.id, {"options": {"choices": []}})
    assert "options" in info.value.errors
    updated = fields.update_field(ctx, definition.id, {
        "key": "colour", "type": "choice", "label": "Main colour", "required": True, "help_text": "pick one",
        "options": {"choices": [{"value": "red", "label": "Rot"}, {"value": "blue"}]}})
    assert (updated.label, updated.required, updated.help_text) == ("Main colour", True, "pick one")
    assert updated.options["choices"][1] == {"value": "blue", "label": "blue"}
    entry = ctx.session.scalars(select(AuditEntry).where(AuditEntry.action == "field.updated")).one()
    assert entry.changes["removed_choices"] == ["green"]


def test_removed_choice_stays_stored_but_cannot_be_written(ctx):
    definition = fields.define_field(ctx, "party", {"key": "colour", "label": "Colour", "type": "choice",
                                                    "options": COLOURS})
    stored = fields.clean_custom_values(ctx, "party", {"colour": "green"})
    fields.update_field(ctx, definition.id, {"options": {"choices": [{"value": "red", "label": "Red"}]}})
    kept = fields.clean_custom_values(ctx, "party", {}, existing=stored, partial=True)
    assert kept == {"colour": "green"}
    with pytest.raises(ValidationFailed):
        fields.clean_custom_values(ctx, "party", {"colour": "green"})
    assert [str(html) for _, html in fields.render_values(ctx, "party", kept)] == ["green"]


def test_archive_restore_and_reorder(ctx):
    a = fields.define_field(ctx, "party", {"key": "a", "label": "A", "type": "text"})
    b = fields.define_field(ctx, "party", {"key": "b", "label": "B", "type": "text"})
    c = fields.define_field(ctx, "party", {"key": "c", "label": "C", "type": "text"})
    fields.archive_field(ctx, b.id)
    assert [f.key for f in fields.list_fields(ctx, "party")] == ["a", "c"]
    assert [f.key for f in fields.list_fields(ctx, "party", include_archived=True)] == ["a", "b", "c"]
    ordered = fields.reorder_fields(ctx, "party", [c.id, a.id])
    assert [f.key for f in ordered] == ["c", "a", "b"]
    assert [f.key for f in fields.list_fields(ctx, "party")] == ["c", "a"]
    fields.restore_field(ctx, b.id)
    assert [f.key for f in fields.list_fields(ctx, "party")] == ["c", "a", "b"]
    with pytest.raises(ValidationFailed) as info:
        fields.reorder_fields(ctx, "party", [a.id, a.id, 999999, "x"])
    assert len(info.value.errors["field_ids"]) == 3
    with pytest.raises(ValidationFailed):
        fields.reorder_fields(ctx, "contact", [a.id])


# --------------------------------------------------------------------------------------------
# values


@pytest.fixture
def party_fields(ctx):
    fields.define_field(ctx, "party", {"key": "size", "label": "Size", "type": "integer", "required": True,
                                       "options": {"min": 0}})
    fields.define_field(ctx, "party", {"key": "colour", "label": "Colour", "type": "choice", "options": COLOURS})
    fields.define_field(ctx, "party", {"key": "note", "label": "Note", "type": "text"})
    return ctx


def test_clean_create_requires_required_fields(party_fields):
    ctx = party_fields
    with pytest.raises(ValidationFailed) as info:
        fields.clean_custom_values(ctx, "party", {"colour": "red"})
    assert info.value.errors == {"custom": {"size": ["This field is required."]}}
    with pytest.raises(ValidationFailed) as info:
        fields.clean_custom_values(ctx, "party", None)
    assert info.value.errors["custom"]["size"] == ["This field is required."]
    assert fields.clean_custom_values(ctx, "party", {"size": "12", "colour": "red", "note": " "}) == {
        "size": 12, "colour": "red"}


def test_clean_reports_every_bad_key_at_once(party_fields):
    with pytest.raises(ValidationFailed) as info:
        fields.clean_custom_values(party_fields, "party", {"size": -1, "colour": "purple", "nope": 1})
    errors = info.value.errors["custom"]
    assert set(errors) == {"size", "colour", "nope"}
    assert errors["nope"] == ["unknown field 'nope' for party"]
    assert info.value.message == "invalid custom fields"


def test_clean_refuses_a_non_mapping(party_fields):
    with pytest.raises(ValidationFailed):
        fields.clean_custom_values(party_fields, "party", ["size", 1])


def test_clean_partial_update(party_fields):
    ctx = party_fields
    existing = {"size": 3, "colour": "red"}
    assert fields.clean_custom_values(ctx, "party", {"note": "hi"}, existing=existing, partial=True) == {
        "size": 3, "colour": "red", "note": "hi"}
    assert fields.clean_custom_values(ctx, "party", {"colour": None}, existing=existing, partial=True) == {"size": 3}
    assert fields.clean_custom_values(ctx, "party", {"colour": ""}, existing=existing, partial=True) == {"size": 3}
    with pytest.raises(ValidationFailed) as info:
        fields.clean_custom_values(ctx, "party", {"size": ""}, existing=existing, partial=True)
    assert info.value.errors == {"custom": {"size": ["This field is required."]}}
    # a required field missing from an old row is not enforced by an update that leaves it alone
    assert fields.clean_custom_values(ctx, "party", {"note": "x"}, existing={}, partial=True) == {"note": "x"}


def test_archived_field_keeps_its_value_and_refuses_new_ones(party_fields):
    ctx = party_fields
    colour = next(f for f in fields.list_fields(ctx, "party") if f.key == "colour")
    fields.archive_field(ctx, colour.id)
    existing = {"size": 1, "colour": "red"}
    assert fields.clean_custom_values(ctx, "party", {"size": 2}, existing=existing, partial=True) == {
        "size": 2, "colour": "red"}
    assert fields.clean_custom_values(ctx, "party", {"size": 2, "colour": "red"}, existing=existing) == {
        "size": 2, "colour": "red"}
    with pytest.raises(ValidationFailed) as info:
        fields.clean_custom_values(ctx, "party", {"colour": "green"}, existing=existing, partial=True)
    assert "archived" in info.value.errors["custom"]["colour"][0]
    with pytest.raises(ValidationFailed):
        fields.clean_custom_values(ctx, "party", {"colour": None}, existing=existing, partial=True)
    # an archived required field is not required any more
    size = next(f for f in fields.list_fields(ctx, "party") if f.key == "size")
    fields.archive_field(ctx, size.id)
    assert fields.clean_custom_values(ctx, "party", {"note": "n"}) == {"note": "n"}


def test_party_reference_must_exist_in_the_business(ctx, other_ctx):
    fields.define_field(ctx, "party", {"key": "dealer", "label": "Dealer", "type": "party_ref"})
    mine = add_party(ctx, "Mine")
    theirs = add_party(other_ctx, "Theirs")
    assert fields.clean_custom_values(ctx, "party", {"dealer": str(mine.id)}) == {"dealer": mine.id}
    for bad in (theirs.id, 987654):
        with pytest.raises(ValidationFailed) as info:
            fields.clean_custom_values(ctx, "party", {"dealer": bad})
        assert info.value.errors == {"custom": {"dealer": [f"party {bad} not found"]}}


def test_merge_rules(ctx):
    kept = {"a": 1, "b": "", "c": None, "d": [1]}
    duplicate = {"a": 2, "b": "dup", "c": "dup", "e": "new", "f": None, "d": []}
    assert fields.merge_custom_values(ctx, "party", kept, duplicate) == {
        "a": 1, "b": "dup", "c": "dup", "d": [1], "e": "new"}
    assert fields.merge_custom_values(ctx, "party", kept, duplicate, "duplicate") == {
        "a": 2, "b": "dup", "c": "dup", "d": [1], "e": "new"}
    assert fields.merge_custom_values(ctx, "party", kept, duplicate, "keep") == kept
    assert fields.merge_custom_values(ctx, "party", None, {"x": 1}) == {"x": 1}
    with pytest.raises(ValidationFailed) as info:
        fields.merge_custom_values(ctx, "party", kept, duplicate, "newest")
    assert "rule" in info.value.errors


# --------------------------------------------------------------------------------------------
# rendering through the service


def test_render_inputs_and_values(ctx):
    fields.define_field(ctx, "party", {"key": "budget", "label": "Budget", "type": "amount", "required": True})
    fields.define_field(ctx, "party", {"key": "since", "label": "Since", "type": "date"})
    fields.define_field(ctx, "party", {"key": "dealer", "label": "Dealer", "type": "party_ref"})
    old = fields.define_field(ctx, "party", {"key": "old", "label": "Old", "type": "text"})
    fields.archive_field(ctx, old.id)
    dealer = add_party(ctx, "Dealer <GmbH>")
    values = {"budget": "1500", "since": "2024-03-05", "dealer": dealer.id, "old": "kept"}

    inputs = fields.render_inputs(ctx, "party", values)
    assert [d.key for d, _ in inputs] == ["budget", "since", "dealer"]
    assert 'name="custom.budget"' in str(inputs[0][1]) and 'value="1500"' in str(inputs[0][1])
    assert 'value="2024-03-05"' in str(inputs[1][1])

    shown = {d.key: str(html) for d, html in fields.render_values(ctx, "party", values)}
    assert shown["budget"] == "€1,500.00"
    assert shown["since"] == "Mar 5, 2024"
    assert "Dealer &lt;GmbH&gt;" in shown["dealer"]
    assert shown["old"] == "kept"


def test_render_survives_values_the_type_cannot_read(ctx):
    fields.define_field(ctx, "party", {"key": "since", "label": "Since", "type": "date"})
    values = {"since": "<script>soon</script>"}
    shown = dict((d.key, str(h)) for d, h in fields.render_values(ctx, "party", values))
    assert shown["since"] == "&lt;script&gt;soon&lt;/script&gt;"
    control = str(fields.render_inputs(ctx, "party", values)[0][1])
    assert "<script>" not in control


# --------------------------------------------------------------------------------------------
# a field type provided by a plugin


class ColourField(TextField):
    """A plugin's field type (here a text variant)."""

    key = "colour"
    label = "Colour"


class ColourPlugin:
    """A plugin with no hooks; it only owns the driver."""


@pytest.fixture
def colour_plugin(ctx, register_plugin):
    name = register_plugin(ColourPlugin(), enable_for=ctx)
    register_driver(fields.GROUP, "colour", ColourField, plugin=name)
    yield name
    unregister_driver(fields.GROUP, "colour")


def test_plugin_field_type_only_where_the_plugin_is_enabled(ctx, other_ctx, colour_plugin):
    assert isinstance(fields.get_field_type(ctx, "colour"), ColourField)
    definition = fields.define_field(ctx, "party", {"key": "paint", "label": "Paint", "type": "colour"})
    assert fields.clean_custom_values(ctx, "party", {"paint": "teal"}) == {"paint": "teal"}

    with pytest.raises(ValidationFailed) as info:
        fields.define_field(other_ctx, "party", {"key": "paint", "label": "Paint", "type": "colour"})
    assert "not enabled in this business" in info.value.message
    assert "colour" not in info.value.errors["type"][0].split("available: ")[1].split(", ")

    disable_plugin(ctx, colour_plugin)
    existing = {"paint": "teal"}
    assert fields.clean_custom_values(ctx, "party", {}, existing=existing, partial=True) == existing
    assert fields.clean_custom_values(ctx, "party", {}, existing=existing) == existing
    with pytest.raises(ValidationFailed) as info:
        fields.clean_custom_values(ctx, "party", {"paint": "navy"}, existing=existing, partial=True)
    assert "plugin is disabled" in info.value.errors["custom"]["paint"][0]
    with pytest.raises(ValidationFailed):
        fields.custom_filter(ctx, "party", Party.custom, "paint", "teal")
    assert fields.render_inputs(ctx, "party", existing) == []
    assert [str(h) for _, h in fields.render_values(ctx, "party", existing)] == ["teal"]
    with pytest.raises(ValidationFailed):
        fields.update_field(ctx, definition.id, {"options": {"max_length": 5}})
    fields.update_field(ctx, definition.id, {"label": "Paint colour"})  # no type needed for this

    enable_plugin(ctx, colour_plugin)
    assert fields.clean_custom_values(ctx, "party", {"paint": "navy"}, existing=existing, partial=True) == {
        "paint": "navy"}


def test_a_driver_that_is_no_field_type_is_reported(ctx):
    register_driver(fields.GROUP, "broken", object(), plugin=None)
    try:
        with pytest.raises(ValidationFailed) as info:
            fields.get_field_type(ctx, "broken")
        assert "not a crmcore.fields.base.FieldType" in info.value.errors["type"][0]
    finally:
        unregister_driver(fields.GROUP, "broken")


def test_datetime_input_uses_the_business_time_zone(ctx):
    fields.define_field(ctx, "party", {"key": "visit", "label": "Visit", "type": "datetime"})
    ctx.business.timezone = "America/New_York"
    stored = fields.clean_custom_values(ctx, "party", {"visit": "2024-01-10T09:30"})
    assert stored == {"visit": "2024-01-10T14:30:00+00:00"}
    assert dt.datetime.fromisoformat(stored["visit"]).tzinfo is not None
