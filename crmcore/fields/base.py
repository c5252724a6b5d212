"""The field-type interface, and the SQL and HTML building blocks field types share.

A field type is a driver in the entry-point group ``crmcore.field_types``; the core's own live in
:mod:`crmcore.fields.types`, a plugin's in its distribution. One type knows how to validate a value
(a marshmallow field), store it in the target's ``custom`` JSON column and read it back, render an
input and a value (escaped), and filter rows in SQL so list filters stay in the database.

SQL filters work on SQLite (``json_extract``) and PostgreSQL (JSONB). An equality on PostgreSQL is a
containment test ``custom @> {"key": value}`` so the GIN index on ``custom`` (``jsonb_path_ops``)
serves it; ranges cast ``custom ->> 'key'`` to numeric/date/timestamptz behind a format guard so one
malformed row cannot break a list page.

Rendering needs the business's locale, time zone and currency, and a party reference wants the
party's name; the service sets them for the duration of a call with :func:`using_env`, so the
interface stays ``render_value(definition, value)`` for plugin authors.
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import json
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

import marshmallow as ma
from markupsafe import Markup
from sqlalchemy import Boolean, Date, DateTime, Integer, Numeric, String, and_, bindparam, not_, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

if TYPE_CHECKING:
    from crmcore.fields.models import FieldDefinition

#: every operator a field type may support; each type lists its own in ``ops``
ALL_OPS = ("eq", "lt", "gt", "le", "ge", "contains", "isnull")
RANGE_OPS = ("lt", "gt", "le", "ge")


# --------------------------------------------------------------------------------------------
# the environment of a call (locale, time zone, currency, looked-up names)


@dataclass(frozen=True)
class FieldEnv:
    """What rendering and parsing need from the business, set by the service per call."""

    locale: str = "en"
    timezone: str = "UTC"
    currency: str = "EUR"
    #: party id -> name, for rendering party references without a query per value
    party_names: Mapping[int, str] = field(default_factory=dict)

    @property
    def babel_locale(self) -> Any:
        from babel import Locale, UnknownLocaleError

        try:
            return Locale.parse((self.locale or "en").replace("-", "_"))
        except (UnknownLocaleError, ValueError, TypeError):
            return Locale.parse("en")

    @property
    def tzinfo(self) -> dt.tzinfo:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            return ZoneInfo(self.timezone or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            return dt.UTC


_DEFAULT_ENV = FieldEnv()
_env: ContextVar[FieldEnv | None] = ContextVar("crmcore_field_env", default=None)


def current_env() -> FieldEnv:
    """The environment the service set for this call (English, UTC, EUR outside one)."""
    return _env.get() or _DEFAULT_ENV


@contextlib.contextmanager
def using_env(env: FieldEnv) -> Iterator[FieldEnv]:
    token = _env.set(env)
    try:
        yield env
    finally:
        _env.reset(token)


# --------------------------------------------------------------------------------------------
# the interface


def is_empty(value: Any) -> bool:
    """No value: None, a blank string, an empty list. Such input clears a field."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple | set | frozenset):
        return len(value) == 0
    return False


class FieldType(abc.ABC):
    """A custom-field type. Subclass it, give ``key``/``label``/``ops``, declare it in the
    ``crmcore.field_types`` entry-point group (the class; the core instantiates it without
    arguments)."""

    key: ClassVar[str]
    label: ClassVar[str]
    #: validates ``FieldDefinition.options`` for this type (None: the type takes no options)
    options_schema: ClassVar[type[ma.Schema] | None] = None
    #: the filter operators :meth:`sql_filter` understands
    ops: ClassVar[tuple[str, ...]] = ("eq", "isnull")
    #: ``"party"`` when a stored value is a party id (the service checks it exists in the business)
    references: ClassVar[str | None] = None

    # -- validation and storage --------------------------------------------------------

    @abc.abstractmethod
    def marshmallow_field(self, definition: FieldDefinition) -> ma.fields.Field:
        """A field validating one value (the service handles ``required`` and empty input)."""

    def filter_field(self, definition: FieldDefinition, op: str) -> ma.fields.Field:
        """The field validating a filter operand; by default the value field itself."""
        return self.marshmallow_field(definition)

    def prepare_options(self, options: dict[str, Any], *, env: FieldEnv) -> dict[str, Any]:
        """Fill business-dependent defaults into loaded options (e.g. an amount's currency)."""
        return options

    def to_storage(self, value: Any) -> Any:
        """Python value (after the marshmallow load) -> JSON-safe value for ``custom``."""
        return value

    def from_storage(self, raw: Any) -> Any:
        """JSON value from ``custom`` -> Python value."""
        return raw

    # -- rendering ----------------------------------------------------------------------

    @abc.abstractmethod
    def render_input(self, definition: FieldDefinition, value: Any, *, name: str) -> Markup:
        """An HTML form control with its label and help text; every text escaped."""

    def render_value(self, definition: FieldDefinition, value: Any) -> Markup:
        """The value for display, escaped."""
        return Markup("{}").format("" if value is None else value)

    # -- filtering ----------------------------------------------------------------------

    def sql_filter(self, column: Any, definition: FieldDefinition, op: str, value: Any) -> ColumnElement[bool]:
        """A condition on the target's ``custom`` column. ``value`` is the loaded operand
        (a bool for ``isnull``). Handles ``eq`` (containment) and ``isnull``; types add more."""
        if op == "eq":
            return json_eq(column, definition.key, self.to_storage(value))
        if op == "isnull":
            return json_isnull(column, definition.key, bool(value))
        raise ValueError(f"field type {self.key!r} has no filter operator {op!r}")


# --------------------------------------------------------------------------------------------
# HTML helpers (everything passes through Markup.format, so values are escaped)


def html_attrs(attrs: Mapping[str, Any]) -> Markup:
    """`` name="value"`` pairs, escaped; True gives a bare attribute, None/False omits it."""
    parts = []
    for name, value in attrs.items():
        if value is None or value is False:
            continue
        if value is True:
            parts.append(Markup(" {}").format(name))
        else:
            parts.append(Markup(' {}="{}"').format(name, value))
    return Markup("").join(parts)


def input_id(definition: FieldDefinition) -> str:
    return f"cf-{definition.key}"


def control_attrs(definition: FieldDefinition, name: str, *, required: bool | None = None) -> dict[str, Any]:
    """The attributes every control carries: id, name, required, the help-text link."""
    fid = input_id(definition)
    return {
        "id": fid,
        "name": name,
        "required": definition.required if required is None else required,
        "aria-describedby": f"{fid}-help" if definition.help_text else None,
    }


def wrap_control(definition: FieldDefinition, control: Markup) -> Markup:
    """A control with its label (marked when required) and help text."""
    fid = input_id(definition)
    marker = Markup(' <span class="required" aria-hidden="true">*</span>') if definition.required else ""
    label = Markup('<label for="{}">{}{}</label>').format(fid, definition.label, marker)
    help_text = (Markup('<p class="help" id="{}-help">{}</p>').format(fid, definition.help_text)
                 if definition.help_text else "")
    return Markup('<div class="field field-{}">{}{}{}</div>').format(definition.type, label, control, help_text)


def text_input(definition: FieldDefinition, value: Any, *, name: str, type_: str = "text",
               **extra: Any) -> Markup:
    attrs = {"type": type_, **control_attrs(definition, name), "value": "" if value is None else value, **extra}
    return wrap_control(definition, Markup("<input{}>").format(html_attrs(attrs)))


# --------------------------------------------------------------------------------------------
# SQL building blocks. Each is a small function element compiled per dialect; the key and the
# operands are bound parameters, so statements stay cacheable and nothing is spliced into SQL.


def _path(key: str) -> str:
    return '$."' + key.replace('"', '\\"') + '"'


def _doc(key: str, value: Any) -> str:
    from crmcore.db import dumps

    return dumps({key: value})


class NumberParam(TypeDecorator):
    """A number compared with a stored number: NUMERIC on PostgreSQL; on SQLite a string
    compared against ``CAST(... AS NUMERIC)`` (whose affinity converts it, without a float)."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        return dialect.type_descriptor(Numeric() if dialect.name == "postgresql" else String())

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        number = Decimal(str(value))
        return number if dialect.name == "postgresql" else format(number, "f")


class DateParam(TypeDecorator):
    """A date: DATE on PostgreSQL, its ISO text on SQLite (ISO text sorts as dates do)."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        return dialect.type_descriptor(Date() if dialect.name == "postgresql" else String())

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        return value if dialect.name == "postgresql" else value.isoformat()


class DateTimeParam(TypeDecorator):
    """A UTC instant: TIMESTAMPTZ on PostgreSQL; on SQLite the canonical stored text
    (:func:`iso_utc`), whose fixed format sorts chronologically."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        return dialect.type_descriptor(DateTime(timezone=True) if dialect.name == "postgresql" else String())

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        return value.astimezone(dt.UTC) if dialect.name == "postgresql" else iso_utc(value)


def iso_utc(value: dt.datetime) -> str:
    """The stored form of an instant: UTC, whole seconds, ``+00:00``."""
    return value.astimezone(dt.UTC).replace(microsecond=0).isoformat()


class _JsonFn(FunctionElement):
    inherit_cache = True

    def _args(self, compiler: Any, **kw: Any) -> list[str]:
        return [compiler.process(clause, **kw) for clause in self.clauses]


class json_text(_JsonFn):  # noqa: N801 - SQL function naming
    """The value under a key as text (SQL NULL when missing or JSON null)."""

    inherit_cache = True

    type = String()
    name = "crm_json_text"


@compiles(json_text)
def _json_text_sqlite(element: json_text, compiler: Any, **kw: Any) -> str:
    column, path, _key = element._args(compiler, **kw)
    return f"json_extract({column}, {path})"


@compiles(json_text, "postgresql")
def _json_text_pg(element: json_text, compiler: Any, **kw: Any) -> str:
    column, _path, key = element._args(compiler, **kw)
    return f"({column} ->> CAST({key} AS TEXT))"


def _text(column: Any, key: str) -> json_text:
    return json_text(column, bindparam(None, _path(key), String()), bindparam(None, key, String()))


class json_number(_JsonFn):  # noqa: N801
    """The value under a key as a number (a JSON number or a decimal string)."""

    inherit_cache = True

    type = NumberParam()
    name = "crm_json_number"


@compiles(json_number)
def _json_number_sqlite(element: json_number, compiler: Any, **kw: Any) -> str:
    column, path, _key = element._args(compiler, **kw)
    return f"CAST(json_extract({column}, {path}) AS NUMERIC)"


@compiles(json_number, "postgresql")
def _json_number_pg(element: json_number, compiler: Any, **kw: Any) -> str:
    column, _path, key = element._args(compiler, **kw)
    text = f"({column} ->> CAST({key} AS TEXT))"
    return f"(CASE WHEN {text} ~ '^-?[0-9]+(\\.[0-9]+)?$' THEN CAST({text} AS NUMERIC) END)"


class json_date(_JsonFn):  # noqa: N801
    """The value under a key as a date (ISO text on SQLite)."""

    inherit_cache = True
    type = DateParam()
    name = "crm_json_date"


@compiles(json_date)
def _json_date_sqlite(element: json_date, compiler: Any, **kw: Any) -> str:
    column, path, _key = element._args(compiler, **kw)
    return f"json_extract({column}, {path})"


@compiles(json_date, "postgresql")
def _json_date_pg(element: json_date, compiler: Any, **kw: Any) -> str:
    column, _path, key = element._args(compiler, **kw)
    text = f"({column} ->> CAST({key} AS TEXT))"
    return f"(CASE WHEN {text} ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$' THEN CAST({text} AS DATE) END)"


class json_datetime(_JsonFn):  # noqa: N801
    """The value under a key as an instant (the canonical UTC text on SQLite)."""

    inherit_cache = True
    type = DateTimeParam()
    name = "crm_json_datetime"


@compiles(json_datetime)
def _json_datetime_sqlite(element: json_datetime, compiler: Any, **kw: Any) -> str:
    column, path, _key = element._args(compiler, **kw)
    return f"json_extract({column}, {path})"


@compiles(json_datetime, "postgresql")
def _json_datetime_pg(element: json_datetime, compiler: Any, **kw: Any) -> str:
    column, _path, key = element._args(compiler, **kw)
    text = f"({column} ->> CAST({key} AS TEXT))"
    return (f"(CASE WHEN {text} ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}T[0-9:.]+(Z|[+-][0-9:]+)$' "
            f"THEN CAST({text} AS TIMESTAMPTZ) END)")


class json_contains(_JsonFn):  # noqa: N801
    """``{"key": value}`` is contained in the document: on PostgreSQL ``@>`` (GIN-indexed); on
    SQLite the values at the key compare equal (``json_extract`` of both documents)."""

    inherit_cache = True
    type = Boolean()
    name = "crm_json_contains"


@compiles(json_contains)
def _json_contains_sqlite(element: json_contains, compiler: Any, **kw: Any) -> str:
    column, doc, path = element._args(compiler, **kw)
    return f"(json_extract({column}, {path}) = json_extract({doc}, {path}))"


@compiles(json_contains, "postgresql")
def _json_contains_pg(element: json_contains, compiler: Any, **kw: Any) -> str:
    column, doc, _path = element._args(compiler, **kw)
    return f"({column} @> CAST({doc} AS JSONB))"


class json_array_has(_JsonFn):  # noqa: N801
    """The JSON array under the key holds the string item."""

    inherit_cache = True

    type = Boolean()
    name = "crm_json_array_has"


@compiles(json_array_has)
def _json_array_has_sqlite(element: json_array_has, compiler: Any, **kw: Any) -> str:
    column, _doc, path, item = element._args(compiler, **kw)
    return (f"EXISTS (SELECT 1 FROM json_each({column}, {path}) AS crm_je "
            f"WHERE crm_je.type = 'text' AND crm_je.value = {item})")


@compiles(json_array_has, "postgresql")
def _json_array_has_pg(element: json_array_has, compiler: Any, **kw: Any) -> str:
    column, doc, _path, _item = element._args(compiler, **kw)
    return f"({column} @> CAST({doc} AS JSONB))"


class json_array_length(_JsonFn):  # noqa: N801
    """Length of the JSON array under the key (NULL when missing or not an array)."""

    inherit_cache = True

    type = Integer()
    name = "crm_json_array_length"


@compiles(json_array_length)
def _json_array_length_sqlite(element: json_array_length, compiler: Any, **kw: Any) -> str:
    column, path, _key = element._args(compiler, **kw)
    return f"(CASE WHEN json_type({column}, {path}) = 'array' THEN json_array_length({column}, {path}) END)"


@compiles(json_array_length, "postgresql")
def _json_array_length_pg(element: json_array_length, compiler: Any, **kw: Any) -> str:
    column, _path, key = element._args(compiler, **kw)
    item = f"({column} -> CAST({key} AS TEXT))"
    return f"(CASE WHEN jsonb_typeof({item}) = 'array' THEN jsonb_array_length({item}) END)"


# -- the conditions field types build from those blocks --------------------------------------


def json_eq(column: Any, key: str, stored: Any) -> ColumnElement[bool]:
    """The stored value under ``key`` equals ``stored`` (already in its stored form)."""
    return json_contains(column, bindparam(None, _doc(key, stored), String()), bindparam(None, _path(key), String()))


def json_isnull(column: Any, key: str, isnull: bool = True) -> ColumnElement[bool]:
    """No value under ``key`` (missing or JSON null), or, with ``isnull=False``, a value."""
    text = _text(column, key)
    return text.is_(None) if isnull else text.is_not(None)


def json_text_contains(column: Any, key: str, needle: str) -> ColumnElement[bool]:
    """Case-insensitive substring (``%`` and ``_`` in the needle match themselves).
    SQLite folds ASCII letters only (its ``lower``); PostgreSQL folds all (``ILIKE``)."""
    return _text(column, key).icontains(needle, autoescape=True)


def json_compare(column: Any, key: str, op: str, value: Any, kind: str) -> ColumnElement[bool]:
    """``lt``/``gt``/``le``/``ge``/``eq`` on a number (``kind="number"``), a date or a datetime."""
    args = (column, bindparam(None, _path(key), String()), bindparam(None, key, String()))
    expr: Any = {"number": json_number, "date": json_date, "datetime": json_datetime}[kind](*args)
    if op == "eq":
        return expr == value
    if op == "lt":
        return expr < value
    if op == "gt":
        return expr > value
    if op == "le":
        return expr <= value
    if op == "ge":
        return expr >= value
    raise ValueError(f"no comparison {op!r}")


def json_has_item(column: Any, key: str, item: str) -> ColumnElement[bool]:
    """The array under ``key`` contains the string ``item``."""
    return json_array_has(column, bindparam(None, _doc(key, [item]), String()),
                          bindparam(None, _path(key), String()), bindparam(None, item, String()))


def json_same_items(column: Any, key: str, items: list[str]) -> ColumnElement[bool]:
    """The array under ``key`` holds exactly ``items`` (as a set; items are unique)."""
    length = json_array_length(column, bindparam(None, _path(key), String()), bindparam(None, key, String()))
    return and_(*(json_has_item(column, key, item) for item in items), length == len(items))


def json_is_not_true(column: Any, key: str) -> ColumnElement[bool]:
    """Unset, null or false: what "unticked" means for a checkbox."""
    return or_(json_isnull(column, key), not_(json_eq(column, key, True)))


def to_json(value: Any) -> Any:
    """Round-trip through the stored JSON encoding (Decimal -> str, dates -> ISO)."""
    from crmcore.db import dumps

    return json.loads(dumps(value))
