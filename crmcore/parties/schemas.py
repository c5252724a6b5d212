"""Input schemas for parties, contacts, contact mechanisms, addresses and list filters.

Schemas check shape and simple formats and normalise what needs no database (language,
currency, country, names). What needs the business (list options, members, custom fields, phone
numbers that depend on an address country) is checked by the service.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

from crmcore.lists.schemas import Text, WholeNumber
from crmcore.parties.models import ADDRESS_PURPOSES, MECHANISM_KINDS, PARTY_KINDS
from crmcore.parties.normalize import (
    NormalizeError,
    normalize_country,
    normalize_currency,
    normalize_language,
)

#: how users also say "shipping"
PURPOSE_ALIASES = {"ship_to": "shipping", "ship-to": "shipping", "shipto": "shipping", "delivery": "shipping"}
SORTS = ("name", "-created", "-updated")
MAX_TAGS = 50


class _Normalized(fields.String):
    """A stripped string passed through a normaliser; empty means None."""

    def __init__(self, normalizer: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_none", True)
        super().__init__(**kwargs)
        self.normalizer = normalizer

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | None:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if not text:
            return None
        try:
            return self.normalizer(text)
        except NormalizeError as exc:
            raise ValidationError(str(exc)) from exc


def Language(**kwargs: Any) -> fields.Field:  # noqa: N802 - reads like a field class
    return _Normalized(normalize_language, **kwargs)


def Currency(**kwargs: Any) -> fields.Field:  # noqa: N802
    return _Normalized(normalize_currency, **kwargs)


def Country(**kwargs: Any) -> fields.Field:  # noqa: N802
    return _Normalized(normalize_country, **kwargs)


class OptionRef(fields.Field):
    """A list option given by its value key (``"qualified"``) or its id; resolved by the service."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValidationError("give an option value or id")
        if isinstance(value, str):
            value = value.strip()
            if len(value) > 64:
                raise ValidationError("at most 64 characters")
            return value or None
        return value


class MechanismSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(MECHANISM_KINDS))
    value = Text(300, required=True)
    label = Text(60)
    is_primary = fields.Boolean()


class MechanismUpdateSchema(Schema):
    value = Text(300, not_empty=True)
    label = Text(60)
    is_primary = fields.Boolean()


class AddressSchema(Schema):
    purpose = fields.String(validate=validate.OneOf(ADDRESS_PURPOSES))
    label = Text(100)
    line1 = Text(200, required=True)
    line2 = Text(200)
    postal_code = Text(20)
    city = Text(100)
    region = Text(100)
    country = Country()
    is_default = fields.Boolean()

    @pre_load
    def _purpose_alias(self, data: Any, **_kwargs: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("purpose"), str):
            purpose = data["purpose"].strip().lower()
            data = {**data, "purpose": PURPOSE_ALIASES.get(purpose, purpose)}
        return data


class _PartyFields(Schema):
    kind = fields.String(validate=validate.OneOf(PARTY_KINDS))
    name = Text(300)
    first_name = Text(150)
    last_name = Text(150)
    is_prospect = fields.Boolean()
    is_customer = fields.Boolean()
    is_supplier = fields.Boolean()
    prospect_status = OptionRef(allow_none=True)
    potential = OptionRef(allow_none=True)
    tags = fields.List(Text(80, not_empty=True), validate=validate.Length(max=MAX_TAGS))
    sales_rep_ids = fields.List(WholeNumber(), validate=validate.Length(max=50))
    language = Language()
    currency = Currency()
    tax_id = Text(40)
    custom = fields.Dict(keys=fields.String())


class PartyCreateSchema(_PartyFields):
    mechanisms = fields.List(fields.Nested(MechanismSchema), validate=validate.Length(max=100))
    addresses = fields.List(fields.Nested(AddressSchema), validate=validate.Length(max=50))


class PartyUpdateSchema(_PartyFields):
    """Partial update of the party itself; mechanisms and addresses have their own use cases."""


class ContactSchema(Schema):
    party_id = WholeNumber(allow_none=True)
    first_name = Text(150)
    last_name = Text(150)
    job_title = Text(150)
    department = Text(150)
    language = Language()
    notes = Text(20_000)
    custom = fields.Dict(keys=fields.String())


class ContactCreateSchema(ContactSchema):
    mechanisms = fields.List(fields.Nested(MechanismSchema), validate=validate.Length(max=100))


class ContactUpdateSchema(ContactSchema):
    """``party_id`` changes through :func:`move_contact`, which says what moved where."""

    class Meta:
        exclude = ("party_id",)


class PartyFilterSchema(Schema):
    q = Text(300)
    kind = fields.String(validate=validate.OneOf(PARTY_KINDS), allow_none=True)
    is_prospect = fields.Boolean(allow_none=True)
    is_customer = fields.Boolean(allow_none=True)
    is_supplier = fields.Boolean(allow_none=True)
    prospect_status = OptionRef(allow_none=True)
    potential = OptionRef(allow_none=True)
    tag = fields.Raw(allow_none=True)
    sales_rep_id = WholeNumber(allow_none=True)
    language = Language()
    archived = fields.Boolean(allow_none=True)
    custom = fields.Dict(keys=fields.String(), allow_none=True)

    @validates_schema
    def _tags(self, data: dict[str, Any], **_kwargs: Any) -> None:
        tag = data.get("tag")
        if tag is None:
            return
        names = [tag] if isinstance(tag, str) else tag
        if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
            raise ValidationError("give a tag name or a list of tag names", "tag")
        if len(names) > MAX_TAGS:
            raise ValidationError(f"at most {MAX_TAGS} tags", "tag")
