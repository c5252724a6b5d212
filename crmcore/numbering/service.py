"""Numbering rules and gap-free reference codes.

:func:`assign_reference` runs inside the caller's transaction and takes the next number with ONE
atomic ``UPDATE numbering_counters SET last_value = last_value + 1 ... RETURNING last_value``
(the active rules themselves come from the business's configuration cache).
Concurrent writers are serialised by that row's lock (PostgreSQL) or by the database write lock
that every writing use case takes up front (SQLite: ``BEGIN IMMEDIATE``). The counter moves in the
caller's transaction, so when the caller rolls back the number is given back: no gaps, no
duplicates. Call it from a *writing* use case only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import marshmallow as ma
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from crmcore.audit import service as audit
from crmcore.context import use_case
from crmcore.db import utcnow
from crmcore.errors import ValidationFailed
from crmcore.fields.service import check_target, field_env
from crmcore.numbering.models import NumberingCounter, NumberingRule
from crmcore.numbering.pattern import ParsedPattern, parse, period_key, render
from crmcore.numbering.schemas import PreviewSchema, RuleSchema
from crmcore.tenancy.config import cached
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.context import Context

#: the party rule a new business starts with; record rules come from each core RecordType's
#: ``default_pattern`` (one source of truth for a type's codes)
PARTY_PATTERN = "CU{yy}{mm}-{0000}"


def default_rules() -> tuple[tuple[str, str], ...]:
    from crmcore.records.types import CORE_TYPES

    return (("party", PARTY_PATTERN),
            *((t.reference_target, t.default_pattern) for t in CORE_TYPES if t.default_pattern))


def seed_defaults(ctx: Context) -> None:
    """Give a new business its starting rules (called inside business creation)."""
    present = set(ctx.session.scalars(select(NumberingRule.target)))
    for target, pattern in default_rules():
        if target not in present:
            ctx.session.add(NumberingRule(target=target, pattern=pattern, is_active=True))
    ctx.session.flush()


def _local_date(ctx: Context, when: dt.datetime | dt.date | None) -> dt.date:
    """The business's calendar day of ``when`` (a naive datetime counts as UTC)."""
    if when is None:
        when = utcnow()
    if isinstance(when, dt.datetime):
        aware = when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
        return aware.astimezone(field_env(ctx).tzinfo).date()
    return when


@dataclass(frozen=True)
class ActiveRule:
    """An active rule as the configuration cache keeps it (pattern parsed once)."""

    id: int
    target: str
    parsed: ParsedPattern


def _load_active_rules(ctx: Context) -> dict[str, ActiveRule]:
    rows = ctx.session.scalars(select(NumberingRule).where(NumberingRule.is_active.is_(True)))
    return {r.target: ActiveRule(r.id, r.target, parse(r.pattern)) for r in rows}


def active_rule(ctx: Context, target: str) -> ActiveRule | None:
    """``target``'s active rule, from the business's configuration cache (no statement while
    the rules are unchanged; :mod:`crmcore.tenancy.config`)."""
    return cached(ctx, "numbering_rules", _load_active_rules).get(target)


def assign_reference(ctx: Context, target: str, when: dt.datetime | dt.date | None = None) -> str | None:
    """The next code of ``target``'s active rule, taken in the current transaction; None when
    the target has no active rule."""
    rule = active_rule(ctx, target)
    if rule is None:
        return None
    day = _local_date(ctx, when)
    number = _next_number(ctx, rule.id, period_key(rule.parsed, day))
    return render(rule.parsed, day, number)


def reserve_references(ctx: Context, target: str, count: int,
                       when: dt.datetime | dt.date | None = None) -> list[str] | None:
    """The next ``count`` codes of ``target``'s active rule, taken with ONE counter update (the
    bulk import path); None when the target has no active rule. Gap-free like
    :func:`assign_reference`: the block is given back when the caller rolls back."""
    if count < 1:
        return []
    rule = active_rule(ctx, target)
    if rule is None:
        return None
    day = _local_date(ctx, when)
    last = _next_number(ctx, rule.id, period_key(rule.parsed, day), step=count)
    return [render(rule.parsed, day, n) for n in range(last - count + 1, last + 1)]


_counters = NumberingCounter.__table__
# A Core UPDATE (this runs on every numbered create): it bypasses the tenant scope, so it filters
# ``business_id`` explicitly. Bind names differ from the column names (SQLAlchemy reserves those).
_BUMP = (
    update(_counters)
    .where(_counters.c.business_id == bindparam("scope_business_id"),
           _counters.c.rule_id == bindparam("counter_rule_id"),
           _counters.c.period == bindparam("counter_period"))
    .values(last_value=_counters.c.last_value + bindparam("counter_step"))
    .returning(_counters.c.last_value)
)


def _next_number(ctx: Context, rule_id: int, period: str, step: int = 1) -> int:
    params = {"scope_business_id": ctx.business_id, "counter_rule_id": rule_id, "counter_period": period,
              "counter_step": step}
    connection = ctx.session.connection()
    number = connection.execute(_BUMP, params).scalar_one_or_none()
    if number is None:  # first number of the period: create the row (a racing writer may too)
        _insert_counter(ctx, rule_id, period)
        number = connection.execute(_BUMP, params).scalar_one()
    return number


def _insert_counter(ctx: Context, rule_id: int, period: str) -> None:
    # INSERTs are not filtered by the tenant scope (it adds WHERE criteria); business_id is
    # set here from the context explicitly, and the conflict target includes it.
    values = {"business_id": ctx.business_id, "rule_id": rule_id, "period": period, "last_value": 0}
    dialect = ctx.session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        module = postgresql if dialect == "postgresql" else sqlite
        stmt = module.insert(NumberingCounter).values(**values).on_conflict_do_nothing(
            index_elements=["business_id", "rule_id", "period"])
        ctx.session.execute(stmt)
        return
    try:
        with ctx.session.begin_nested():
            ctx.session.execute(insert(NumberingCounter).values(**values))
    except IntegrityError:
        pass  # another writer created it; the UPDATE that follows waits for its lock


# --------------------------------------------------------------------------------------------
# rules


@use_case(Role.ADMIN)
def set_rule(ctx: Context, target: str, pattern: str, *, is_active: bool = True) -> NumberingRule:
    """Create or change the rule of ``target``. Counters stay per period key, so a new pattern
    with the same period continues the numbering where the old one stopped."""
    try:
        values = RuleSchema().load({"target": target, "pattern": pattern, "is_active": is_active})
    except ma.ValidationError as exc:
        raise ValidationFailed("invalid numbering rule", exc.messages) from exc
    target = check_target(ctx, values["target"])
    parse(values["pattern"])
    rule = ctx.session.scalar(select(NumberingRule).where(NumberingRule.target == target))
    if rule is None:
        rule = NumberingRule(target=target, pattern=values["pattern"], is_active=values["is_active"])
        ctx.session.add(rule)
        ctx.session.flush()
        audit.record(ctx, "numbering.rule_created", rule,
                     changes={"target": target, "pattern": rule.pattern, "is_active": rule.is_active})
        return rule
    changes = {attr: [getattr(rule, attr), values[attr]] for attr in ("pattern", "is_active")
               if getattr(rule, attr) != values[attr]}
    if changes:
        rule.pattern = values["pattern"]
        rule.is_active = values["is_active"]
        audit.record(ctx, "numbering.rule_changed", rule, changes={"target": target, **changes})
    return rule


@use_case(Role.READ_ONLY, write=False)
def list_rules(ctx: Context) -> list[NumberingRule]:
    return list(ctx.session.scalars(select(NumberingRule).order_by(NumberingRule.target)))


def preview(pattern: str, when: dt.datetime | dt.date | None = None, count: int = 3) -> list[str]:
    """The first ``count`` codes ``pattern`` gives on ``when`` (default today, UTC)."""
    try:
        values: dict[str, Any] = PreviewSchema().load({"pattern": pattern, "count": count})
    except ma.ValidationError as exc:
        raise ValidationFailed("invalid preview", exc.messages) from exc
    parsed = parse(values["pattern"])
    if when is None:
        when = utcnow()
    day = when.astimezone(dt.UTC).date() if isinstance(when, dt.datetime) and when.tzinfo else (
        when.date() if isinstance(when, dt.datetime) else when)
    return [render(parsed, day, n) for n in range(1, values["count"] + 1)]
