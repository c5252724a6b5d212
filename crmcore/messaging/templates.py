"""Message templates: sandboxed Jinja that renders one source into an email and an SMS.

Admins write templates, so they are untrusted code running in every business's sends: they are
rendered by :class:`jinja2.sandbox.ImmutableSandboxedEnvironment` (no attribute starting with
``_``, no method that changes a value, ``range`` capped), with ``*`` and ``**`` capped so a
template cannot build a gigabyte string, and they see plain dicts of values, never ORM objects
(no lazy loads, no session, no way to reach another business's rows).

Undefined names are errors (:class:`StrictUndefined`, with a message listing what exists): a
typo must fail when the template is saved (every part is rendered against a sample context),
not leave a blank in a customer's email. The HTML part autoescapes; subject, text and SMS do
not (they are not HTML), and the subject is folded to one line.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, UndefinedError, pass_context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import missing

#: the most characters one part of a rendered message may have
MAX_OUTPUT = 200_000
#: ``x * n`` and ``x ** n`` beyond these are refused (a template is someone else's code)
MAX_REPEAT = 10_000
MAX_POWER = 64

#: the variables every template may use; events add their own (see ``rules.EVENTS``)
BASE_VARIABLES = ("business", "party", "contact", "record", "user", "recipient", "unsubscribe_url")


class TemplateProblem(ValueError):
    """A part that does not render; ``field`` names the part (subject, body_text, ...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class _Undefined(StrictUndefined):
    """StrictUndefined whose message says what exists instead of "'dict object' has no ..."."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:  # type: ignore[override]
        name = self._undefined_name
        obj = self._undefined_obj
        if obj is missing:
            return f"unknown variable {name!r}"
        if isinstance(obj, Mapping):
            keys = ", ".join(sorted(str(k) for k in obj))
            return f"no field {name!r} here; it has: {keys}"
        if obj is None:
            return f"the value before .{name} is empty for this message: guard it with {{% if ... %}}"
        return f"{type(obj).__name__} value has no field {name!r}"


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(count, int) and count > MAX_REPEAT:
                    raise SecurityError(f"repeating a value more than {MAX_REPEAT:,} times is not allowed")
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_POWER:
            raise SecurityError(f"powers above {MAX_POWER} are not allowed")
        return super().call_binop(context, operator, left, right)


def _money(value: Any, currency: str | None = None, language: str = "en") -> str:
    from babel.numbers import format_currency

    if value in (None, ""):
        return ""
    try:
        return format_currency(Decimal(str(value)), currency or "EUR", locale=language.replace("-", "_"))
    except Exception:  # an odd locale or currency must not break a send: plain figures
        return f"{value} {currency or ''}".strip()


def _date(value: Any, language: str = "en") -> str:
    from babel.dates import format_date

    if value in (None, ""):
        return ""
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value[:10])
        except ValueError:
            return value
    try:
        return format_date(value, "long", locale=language.replace("-", "_"))
    except Exception:
        return str(value)


def _language(context: Any) -> str:
    business = context.get("business")
    return (business.get("language") if isinstance(business, Mapping) else None) or "en"


@pass_context
def _money_filter(context: Any, value: Any, currency: str | None = None) -> str:
    return _money(value, currency, _language(context))


@pass_context
def _date_filter(context: Any, value: Any) -> str:
    return _date(value, _language(context))


def _environment(autoescape: bool) -> _Sandbox:
    env = _Sandbox(autoescape=autoescape, undefined=_Undefined, keep_trailing_newline=True)
    env.filters["money"] = _money_filter
    env.filters["date"] = _date_filter
    return env


_TEXT = _environment(autoescape=False)
_HTML = _environment(autoescape=True)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None
    sms: str


@dataclass(frozen=True)
class Parts:
    """The source of a template (a ``MessageTemplate`` row, or typed into the edit form)."""

    subject: str = ""
    body_text: str = ""
    body_html: str | None = None
    sms_text: str | None = None

    @classmethod
    def of(cls, template: Any) -> Parts:
        return cls(template.subject or "", template.body_text or "", template.body_html or None,
                   template.sms_text or None)


def _render_one(env: _Sandbox, field: str, source: str, context: Mapping[str, Any]) -> str:
    try:
        out = env.from_string(source).render(**context)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(field, f"line {exc.lineno}: {exc.message}") from None
    except UndefinedError as exc:
        message = str(exc)
        if message.startswith("unknown variable"):
            message += f" (this template may use: {', '.join(sorted(context))})"
        raise TemplateProblem(field, message) from None
    except SecurityError as exc:
        raise TemplateProblem(field, f"not allowed in a template: {exc}") from None
    except TemplateError as exc:
        raise TemplateProblem(field, str(exc) or type(exc).__name__) from None
    except (ArithmeticError, TypeError, ValueError, LookupError, AttributeError) as exc:
        raise TemplateProblem(field, f"{type(exc).__name__}: {exc}") from None
    if len(out) > MAX_OUTPUT:
        raise TemplateProblem(field, f"renders to more than {MAX_OUTPUT:,} characters")
    return out


def render(parts: Parts, context: Mapping[str, Any], *, channels: tuple[str, ...] = ("email", "sms")) -> Rendered:
    """Render every part needed for ``channels``; :class:`TemplateProblem` names the first part
    that fails. SMS uses ``sms_text``, or the text body when there is none."""
    subject = text = sms = ""
    html = None
    if "email" in channels:
        subject = " ".join(_render_one(_TEXT, "subject", parts.subject, context).split())
        text = _render_one(_TEXT, "body_text", parts.body_text, context)
        if parts.body_html:
            html = _render_one(_HTML, "body_html", parts.body_html, context)
    if "sms" in channels:
        source, field = (parts.sms_text, "sms_text") if parts.sms_text else (parts.body_text, "body_text")
        sms = _render_one(_TEXT, field, source, context).strip()
    return Rendered(subject=subject, text=text, html=html, sms=sms)


def check(parts: Parts, context: Mapping[str, Any], channels: tuple[str, ...] = ("email", "sms")) -> dict[str, list[str]]:
    """Every part's problem against ``context`` (empty when all render): field-level errors."""
    errors: dict[str, list[str]] = {}
    fields = []
    if "email" in channels:
        fields += [("subject", parts.subject, _TEXT), ("body_text", parts.body_text, _TEXT)]
        if parts.body_html:
            fields.append(("body_html", parts.body_html, _HTML))
    if "sms" in channels and parts.sms_text:
        fields.append(("sms_text", parts.sms_text, _TEXT))
    for field, source, env in fields:
        try:
            _render_one(env, field, source or "", context)
        except TemplateProblem as exc:
            errors[field] = [exc.message]
    return errors


# --------------------------------------------------------------------------------------------
# the values a template sees


SAMPLE_CONTEXT: dict[str, Any] = {
    "business": {"name": "Acme Equipment", "slug": "acme", "currency": "EUR", "language": "en",
                 "timezone": "Europe/Brussels"},
    "party": {"id": 1, "name": "Meadow Farms", "reference": "CU2611-0001", "kind": "organisation",
              "first_name": None, "last_name": None, "email": "info@meadow.example", "phone": "+32 2 123 45 67",
              "mobile": None, "language": "en", "custom": {}},
    "contact": {"id": 1, "name": "Maria Schmidt", "first_name": "Maria", "last_name": "Schmidt",
                "job_title": "Fleet manager", "email": "maria@meadow.example", "phone": None,
                "mobile": "+32 470 12 34 56", "custom": {}},
    "record": {"id": 1, "type": "deal", "reference": "DE2611-0001", "title": "Excavator EX-140",
               "amount": "84500.00", "currency": "EUR", "status": "open", "stage": "Proposal",
               "expected_close_date": "2026-12-15", "owner": {"name": "Anna Berg", "email": "anna@acme.example"},
               "custom": {}},
    "user": {"name": "Anna Berg", "email": "anna@acme.example"},
    "recipient": {"name": "Maria Schmidt", "address": "maria@meadow.example"},
    "unsubscribe_url": "https://crm.example.com/unsubscribe/sample",
}


def sample_context(extra: Mapping[str, Any] | None = None, *, absent: tuple[str, ...] = ()) -> dict[str, Any]:
    """The sample every template is checked against: every base variable filled, plus ``extra``
    (an event's own variables); names in ``absent`` are None (an event without a record)."""
    out = {k: v for k, v in SAMPLE_CONTEXT.items()}
    out.update(extra or {})
    for name in absent:
        out[name] = None
    return out


def _mechanisms(mechanisms: list[Any]) -> dict[str, str | None]:
    out: dict[str, str | None] = {"email": None, "phone": None, "mobile": None}
    for kind in out:
        of_kind = [m for m in mechanisms if m.kind == kind]
        chosen = next((m for m in of_kind if m.is_primary), of_kind[0] if of_kind else None)
        out[kind] = chosen.value if chosen is not None else None
    return out


def business_vars(business: Any) -> dict[str, Any]:
    return {"name": business.name, "slug": business.slug, "currency": business.currency,
            "language": business.language, "timezone": business.timezone}


def party_vars(party: Any, mechanisms: list[Any]) -> dict[str, Any]:
    return {"id": party.id, "name": party.name, "reference": party.reference, "kind": party.kind,
            "first_name": party.first_name, "last_name": party.last_name, "language": party.language,
            "custom": dict(party.custom or {}), **_mechanisms(mechanisms)}


def contact_vars(contact: Any, mechanisms: list[Any]) -> dict[str, Any]:
    return {"id": contact.id, "name": contact.name, "first_name": contact.first_name,
            "last_name": contact.last_name, "job_title": contact.job_title, "custom": dict(contact.custom or {}),
            **_mechanisms(mechanisms)}


def user_vars(user: Any) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"name": user.name or user.email.split("@", 1)[0], "email": user.email}


def record_vars(record: Any, stage_name: str | None, owner: Any) -> dict[str, Any]:
    return {"id": record.id, "type": record.type, "reference": record.reference, "title": record.title,
            "amount": str(record.amount) if record.amount is not None else None, "currency": record.currency,
            "status": record.status, "stage": stage_name,
            "expected_close_date": record.expected_close_date.isoformat() if record.expected_close_date else None,
            "owner": user_vars(owner), "custom": dict(record.custom or {})}


def stage_vars(stage: Any) -> dict[str, Any] | None:
    if stage is None:
        return None
    return {"id": stage.id, "name": stage.name, "kind": stage.kind}


def plain(value: Any) -> Any:
    """An event's extra value as a template sees it: JSON-like values only."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return str(value)
