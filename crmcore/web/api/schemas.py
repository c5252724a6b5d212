"""The API's own schemas: what it answers (documentation and serialisation), its query
parameters, the few request bodies no feature schema describes, and the checks every input gets
before a service sees it.

Request bodies of the features' use cases are documented and checked with the features' own input
schemas (``crmcore/<feature>/schemas.py``); the service then validates and converts the body
itself, so the API never becomes a second source of rules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from crmcore.paging import MAX_LIMIT
from crmcore.parties.models import PARTY_KINDS
from crmcore.parties.schemas import SORTS as PARTY_SORTS
from crmcore.parties.schemas import OptionRef
from crmcore.records.models import RECORD_STATUSES
from crmcore.records.schemas import TEXT_MAX, Id, RecordCreateSchema, Trimmed
from crmcore.records.service import SORTS as RECORD_SORTS
from crmcore.web.api.blueprint import MAX_ID

#: the deepest nesting a JSON body may have
MAX_DEPTH = 16
CUSTOM_PREFIX = "custom."


# --------------------------------------------------------------------------------------------
# checks every input gets (the body and the query string), before any schema or service


def input_problems(value: Any, errors: dict[str, Any] | None = None, path: tuple[Any, ...] = ()) -> dict[str, Any]:
    """Field errors for values no database can take: NUL and lone surrogates in text, whole
    numbers beyond 64 bits, NaN/Infinity, absurd nesting. Empty when the input is fine."""
    errors = {} if errors is None else errors
    problem = None
    if len(path) > MAX_DEPTH:
        problem = f"nested more than {MAX_DEPTH} levels deep"
    elif isinstance(value, str):
        problem = text_problem(value)
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, int):
        if abs(value) > MAX_ID:
            problem = f"a whole number must be between -{MAX_ID} and {MAX_ID}"
    elif isinstance(value, float):
        if not math.isfinite(value):
            problem = "NaN and Infinity are not JSON numbers"
    elif isinstance(value, Mapping):
        for key, item in value.items():
            key_problem = text_problem(key) if isinstance(key, str) else None
            if key_problem:
                _add(errors, (*path, "_keys"), f"{key_problem} (in a key)")
            else:
                input_problems(item, errors, (*path, key))
        return errors
    elif isinstance(value, list):
        for index, item in enumerate(value):
            input_problems(item, errors, (*path, index))
        return errors
    if problem:
        _add(errors, path or ("_schema",), problem)
    return errors


def text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "remove the NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "the text holds an invalid character (a lone surrogate)"
    return None


def _add(errors: dict[Any, Any], path: tuple[Any, ...], message: str) -> None:
    node = errors
    for key in path[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):  # a message sits there already: keep the first
            return
        node = child
    node.setdefault(path[-1], []).append(message)




# --------------------------------------------------------------------------------------------
# fields


def ApiId(**kwargs: Any) -> fields.Integer:  # noqa: N802 - reads like a field class
    """A row id in a query string or body: 1 .. 2**63-1."""
    return fields.Integer(validate=validate.Range(min=1, max=MAX_ID), **kwargs)


def Money(**kwargs: Any) -> fields.String:  # noqa: N802
    """An amount as a decimal string (never a float), made by :func:`money_text`."""
    return fields.String(metadata={"format": "decimal", "example": "1250.50"}, **kwargs)


def money_text(amount: Decimal | None) -> str | None:
    """An amount as text, the same on every database: at least two decimals, at most four
    ("1250.50", "0.1234")."""
    if amount is None:
        return None
    exact = amount.quantize(Decimal("0.0001")).normalize()
    exponent = exact.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        exact = exact.quantize(Decimal("0.01"))
    return f"{exact:f}"


class Text(fields.String):
    """A plain string (documented with its length limit)."""

    def __init__(self, max_length: int, **kwargs: Any) -> None:
        super().__init__(validate=validate.Length(max=max_length), **kwargs)


# --------------------------------------------------------------------------------------------
# problems and pages


class ProblemSchema(ma.Schema):
    """An error, as RFC 9457 ``application/problem+json``."""

    type = fields.String(required=True, metadata={"example": "about:blank"})
    title = fields.String(required=True, metadata={"description": "the HTTP status phrase"})
    status = fields.Integer(required=True)
    detail = fields.String(metadata={"description": "what went wrong, for a person to read"})
    code = fields.String(metadata={"description": "machine-readable kind: invalid, not_found, forbidden, "
                                                  "conflict, vetoed, unauthorized, malformed, ..."})
    errors = fields.Dict(keys=fields.String(), metadata={
        "description": "field path -> messages (nested objects for nested fields)"})


class TotalSchema(ma.Schema):
    """How many rows match, counted up to a cap (``capped``: there are more than ``count``)."""

    count = fields.Integer(required=True)
    capped = fields.Boolean(required=True)


class _Page(ma.Schema):
    next_cursor = fields.String(allow_none=True, required=True,
                                metadata={"description": "pass as `cursor` for the next page; null on the last"})
    total = fields.Nested(TotalSchema, allow_none=True, required=True)


# --------------------------------------------------------------------------------------------
# parties, contacts, mechanisms, addresses


class MechanismSchema(ma.Schema):
    id = fields.Integer(required=True)
    party_id = fields.Integer(allow_none=True)
    contact_id = fields.Integer(allow_none=True)
    kind = fields.String(required=True)
    value = fields.String(required=True)
    label = fields.String(allow_none=True)
    is_primary = fields.Boolean(required=True)


class AddressSchema(ma.Schema):
    id = fields.Integer(required=True)
    party_id = fields.Integer(required=True)
    purpose = fields.String(required=True)
    label = fields.String(allow_none=True)
    line1 = fields.String(required=True)
    line2 = fields.String(allow_none=True)
    postal_code = fields.String(allow_none=True)
    city = fields.String(allow_none=True)
    region = fields.String(allow_none=True)
    country = fields.String(allow_none=True)
    is_default = fields.Boolean(required=True)


class PartySchema(ma.Schema):
    """A party as lists show it."""

    id = fields.Integer(required=True)
    kind = fields.String(required=True)
    name = fields.String(required=True)
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    reference = fields.String(allow_none=True)
    is_prospect = fields.Boolean(required=True)
    is_customer = fields.Boolean(required=True)
    is_supplier = fields.Boolean(required=True)
    prospect_status = fields.String(allow_none=True, metadata={"description": "option value"})
    potential = fields.String(allow_none=True, metadata={"description": "option value"})
    tags = fields.List(fields.String(), required=True)
    language = fields.String(allow_none=True)
    currency = fields.String(allow_none=True)
    tax_id = fields.String(allow_none=True)
    custom = fields.Dict(keys=fields.String(), required=True)
    archived_at = fields.DateTime(allow_none=True)
    merged_into_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class PartyDetailSchema(PartySchema):
    """A party with its sales reps, contact mechanisms and addresses."""

    sales_rep_ids = fields.List(fields.Integer(), required=True)
    mechanisms = fields.List(fields.Nested(MechanismSchema), required=True)
    addresses = fields.List(fields.Nested(AddressSchema), required=True)


class PartyPageSchema(_Page):
    items = fields.List(fields.Nested(PartySchema), required=True)


class ContactSchema(ma.Schema):
    id = fields.Integer(required=True)
    party_id = fields.Integer(allow_none=True, metadata={"description": "null: not assigned to a party yet"})
    name = fields.String(required=True)
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    job_title = fields.String(allow_none=True)
    department = fields.String(allow_none=True)
    language = fields.String(allow_none=True)
    notes = fields.String(allow_none=True)
    custom = fields.Dict(keys=fields.String(), required=True)
    archived_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)
    mechanisms = fields.List(fields.Nested(MechanismSchema),
                             metadata={"description": "in lists: the contact's emails, phones, ..."})


class ContactPageSchema(_Page):
    items = fields.List(fields.Nested(ContactSchema), required=True)


# --------------------------------------------------------------------------------------------
# records, pipelines


class RecordSchema(ma.Schema):
    id = fields.Integer(required=True)
    type = fields.String(required=True)
    reference = fields.String(allow_none=True)
    title = fields.String(required=True)
    description = fields.String(allow_none=True)
    party_id = fields.Integer(allow_none=True)
    contact_id = fields.Integer(allow_none=True)
    owner_id = fields.Integer(allow_none=True)
    amount = Money(allow_none=True)
    currency = fields.String(allow_none=True)
    expected_close_date = fields.Date(allow_none=True)
    pipeline_id = fields.Integer(allow_none=True)
    stage_id = fields.Integer(allow_none=True)
    stage_entered_at = fields.DateTime(allow_none=True)
    status = fields.String(required=True, validate=validate.OneOf(RECORD_STATUSES))
    lost_reason_id = fields.Integer(allow_none=True)
    lost_note = fields.String(allow_none=True)
    closed_at = fields.DateTime(allow_none=True)
    proposed_solution = fields.String(allow_none=True)
    custom = fields.Dict(keys=fields.String(), required=True)
    archived_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class RecordPageSchema(_Page):
    items = fields.List(fields.Nested(RecordSchema), required=True)


class StageSchema(ma.Schema):
    id = fields.Integer(required=True)
    pipeline_id = fields.Integer(required=True)
    name = fields.String(required=True)
    position = fields.Integer(required=True)
    kind = fields.String(required=True, metadata={"enum": ["open", "won", "lost"]})
    probability = fields.Integer(allow_none=True)
    archived_at = fields.DateTime(allow_none=True)


class PipelineSchema(ma.Schema):
    id = fields.Integer(required=True)
    record_type = fields.String(required=True)
    name = fields.String(required=True)
    position = fields.Integer(required=True)
    is_default = fields.Boolean(required=True)
    archived_at = fields.DateTime(allow_none=True)
    stages = fields.List(fields.Nested(StageSchema), required=True,
                         metadata={"description": "every stage in order, archived ones included"})


# --------------------------------------------------------------------------------------------
# notes, custom fields, plugins


class NoteSchema(ma.Schema):
    id = fields.Integer(required=True)
    body = fields.String(required=True)
    pinned = fields.Boolean(required=True)
    party_id = fields.Integer(allow_none=True)
    record_id = fields.Integer(allow_none=True)
    author_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class NotePageSchema(_Page):
    items = fields.List(fields.Nested(NoteSchema), required=True)


class FieldSchema(ma.Schema):
    id = fields.Integer(required=True)
    target = fields.String(required=True)
    key = fields.String(required=True)
    label = fields.String(required=True)
    type = fields.String(required=True)
    options = fields.Dict(keys=fields.String(), required=True)
    required = fields.Boolean(required=True)
    position = fields.Integer(required=True)
    help_text = fields.String(allow_none=True)
    archived_at = fields.DateTime(allow_none=True)


class PluginSchema(ma.Schema):
    name = fields.String(required=True)
    title = fields.String(required=True)
    version = fields.String(required=True)
    enabled = fields.Boolean(required=True)
    essential = fields.Boolean(required=True)
    depends = fields.List(fields.String(), required=True)
    source = fields.String(required=True)


class PluginSettingsSchema(ma.Schema):
    plugin = fields.String(required=True)
    settings = fields.Dict(keys=fields.String(), required=True,
                           metadata={"description": "secrets are masked; `$env:NAME` references shown as such"})


# --------------------------------------------------------------------------------------------
# query parameters


class QuerySchema(ma.Schema):
    """Query parameters: unknown ones are errors (a typo must not silently list everything),
    except ``custom.<key>`` filters where the list takes them (read from the query string)."""

    custom_filters = False

    @ma.pre_load
    def _drop_custom(self, data: Any, **_kwargs: Any) -> Any:
        if not self.custom_filters:
            return data
        return {key: data[key] for key in data if not key.startswith(CUSTOM_PREFIX)}


class PageQuery(QuerySchema):
    cursor = Text(2000, metadata={"description": "`next_cursor` of the previous page"})
    limit = fields.Integer(validate=validate.Range(min=1, max=MAX_LIMIT),
                           metadata={"description": f"rows per page (default 50, at most {MAX_LIMIT})"})


class PartyListQuery(PageQuery):
    custom_filters = True

    q = Text(300, metadata={"description": "any part (3+ characters) of the name, of an email or phone of the "
                                          "party or its contacts, or of the reference; shorter: name prefix"})
    kind = fields.String(validate=validate.OneOf(PARTY_KINDS))
    is_prospect = fields.Boolean()
    is_customer = fields.Boolean()
    is_supplier = fields.Boolean()
    prospect_status = Text(64, metadata={"description": "option value or id"})
    potential = Text(64, metadata={"description": "option value or id"})
    tag = fields.List(Text(80), validate=validate.Length(max=50),
                      metadata={"description": "repeat for parties having every tag"})
    sales_rep_id = ApiId()
    language = Text(35)
    archived = fields.Boolean(metadata={"description": "true: only archived parties (default: none)"})
    sort = fields.String(validate=validate.OneOf(PARTY_SORTS), load_default="name")


class ContactListQuery(PageQuery):
    party_id = ApiId()
    unassigned = fields.Boolean(metadata={"description": "only contacts not at a party"})
    q = Text(300, metadata={"description": "name prefix or email"})
    include_archived = fields.Boolean(load_default=False)


class RecordListQuery(PageQuery):
    custom_filters = True

    type = Text(32, metadata={"description": "record type (lead, deal, incident, action, ...)"})
    status = fields.String(validate=validate.OneOf(RECORD_STATUSES))
    pipeline_id = ApiId()
    stage_id = ApiId()
    party_id = ApiId()
    contact_id = ApiId()
    owner_id = ApiId()
    q = Text(300, metadata={"description": "title prefix, any case"})
    include_archived = fields.Boolean(load_default=False)
    sort = fields.String(validate=validate.OneOf(tuple(RECORD_SORTS)), load_default="-created")


class PipelineListQuery(QuerySchema):
    type = Text(32, metadata={"description": "record type; default: every type usable here"})
    include_archived = fields.Boolean(load_default=False)


class NoteListQuery(PageQuery):
    party_id = ApiId(metadata={"description": "notes on the party and on its records"})
    record_id = ApiId()


class FieldListQuery(QuerySchema):
    target = Text(64, required=True, metadata={"description": "party, contact or record:<type>"})
    include_archived = fields.Boolean(load_default=False)


# --------------------------------------------------------------------------------------------
# request bodies the features have no schema for


class NoBody(ma.Schema):
    """The operation takes no fields: send nothing or ``{}``."""


class ProspectStatusInput(ma.Schema):
    prospect_status = OptionRef(required=True, allow_none=True,
                                metadata={"description": "option value or id; null clears it"})


class ContactMoveInput(ma.Schema):
    party_id = ApiId(required=True, allow_none=True, strict=True,
                     metadata={"description": "the party to move to; null unassigns the contact"})


class RecordCreateInput(RecordCreateSchema):
    """A new record: its ``type``, optionally the record it continues (``source_id``)."""

    type = Text(32, required=True)
    source_id = ApiId(allow_none=True, strict=True, metadata={
        "description": "create the record as the next step of this one (prefilled from it, linked)"})
    title = Trimmed(300, metadata={"description": "required unless a default fills it"})


class StageMoveInput(ma.Schema):
    stage_id = Id(required=True)
    note = Trimmed(TEXT_MAX, allow_none=True)


class CloseWonInput(ma.Schema):
    stage_id = Id(allow_none=True, metadata={"description": "default: the pipeline's first won stage"})
    note = Trimmed(TEXT_MAX, allow_none=True)


class CloseLostInput(ma.Schema):
    lost_reason = OptionRef(required=True, metadata={"description": "lost_reason option value or id"})
    stage_id = Id(allow_none=True, metadata={"description": "default: the pipeline's first lost stage"})
    note = Trimmed(TEXT_MAX, allow_none=True)


class ReopenInput(ma.Schema):
    stage_id = Id(allow_none=True, metadata={"description": "default: the stage it was in before closing"})
    note = Trimmed(TEXT_MAX, allow_none=True)


class SettingsInput(ma.Schema):
    settings = fields.Dict(keys=fields.String(), required=True,
                           metadata={"description": "validated by the plugin's settings schema"})


class EnableInput(ma.Schema):
    settings = fields.Dict(keys=fields.String(), allow_none=True)
