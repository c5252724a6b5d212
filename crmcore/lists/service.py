"""Use cases for the lists each business defines (prospect statuses, potential levels, ...).

An option's ``value`` is its stable key (plugins and imports refer to it); its label, colour and
position may change, and an option that is no longer wanted is deactivated rather than deleted,
so rows that still point at it keep their meaning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from marshmallow import ValidationError
from sqlalchemy import func, select

from crmcore.audit import service as audit
from crmcore.context import get_or_404, use_case
from crmcore.errors import Conflict, ValidationFailed
from crmcore.lists.models import (
    COMPETITOR,
    LOST_REASON,
    POTENTIAL_LEVEL,
    PROSPECT_STATUS,
    STAKEHOLDER_ROLE,
    TEAM_ROLE,
    ChoiceOption,
)
from crmcore.lists.schemas import LIST_KEY_RE, OptionSchema, OptionUpdateSchema
from crmcore.tenancy.config import cached
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.context import Context

#: the options every new business starts with: list key -> [(value, label)]
LIST_DEFAULTS: dict[str, list[tuple[str, str]]] = {
    PROSPECT_STATUS: [
        ("new", "New"), ("contacted", "Contacted"), ("qualified", "Qualified"),
        ("proposal", "Proposal"), ("negotiation", "Negotiation"), ("dormant", "Dormant"),
    ],
    POTENTIAL_LEVEL: [("low", "Low"), ("medium", "Medium"), ("high", "High"), ("strategic", "Strategic")],
    LOST_REASON: [
        ("price", "Price"), ("competitor", "Went with a competitor"), ("no_budget", "No budget"),
        ("no_decision", "No decision"), ("timing", "Timing"), ("product_fit", "Product fit"),
        ("other", "Other"),
    ],
    COMPETITOR: [],
    STAKEHOLDER_ROLE: [
        ("decision_maker", "Decision maker"), ("economic_buyer", "Economic buyer"),
        ("influencer", "Influencer"), ("champion", "Champion"), ("user", "User"), ("blocker", "Blocker"),
    ],
    TEAM_ROLE: [
        ("account_executive", "Account executive"), ("sales_engineer", "Sales engineer"),
        ("manager", "Manager"), ("support", "Support"),
    ],
}


def seed_defaults(ctx: Context) -> None:
    """Give the business its starting lists (inside the business creation's transaction).
    Options that already exist are left alone, so seeding twice adds nothing."""
    existing = {(k, v) for k, v in ctx.session.execute(select(ChoiceOption.list_key, ChoiceOption.value))}
    for list_key, options in LIST_DEFAULTS.items():
        for position, (value, label) in enumerate(options):
            if (list_key, value) not in existing:
                ctx.session.add(ChoiceOption(list_key=list_key, value=value, label=label, position=position))
    ctx.session.flush()


def _list_label(list_key: str) -> str:
    return list_key.rsplit(".", 1)[-1].replace("_", " ")


@dataclass(frozen=True)
class OptionInfo:
    """A list option as the configuration cache keeps it (the columns of :class:`ChoiceOption`
    that lookups and messages use)."""

    id: int
    list_key: str
    value: str
    label: str
    position: int
    color: str | None
    is_active: bool


@dataclass(frozen=True)
class _Lists:
    by_list: dict[str, tuple[OptionInfo, ...]]
    by_id: dict[int, OptionInfo]
    by_value: dict[tuple[str, str], OptionInfo]


def _load_lists(ctx: Context) -> _Lists:
    rows = ctx.session.scalars(select(ChoiceOption).order_by(ChoiceOption.list_key, ChoiceOption.position,
                                                             ChoiceOption.id))
    by_list: dict[str, list[OptionInfo]] = {}
    for row in rows:
        by_list.setdefault(row.list_key, []).append(OptionInfo(
            row.id, row.list_key, row.value, row.label, row.position, row.color, row.is_active))
    options = [o for items in by_list.values() for o in items]
    return _Lists({k: tuple(v) for k, v in by_list.items()}, {o.id: o for o in options},
                  {(o.list_key, o.value): o for o in options})


def _lists(ctx: Context) -> _Lists:
    return cached(ctx, "lists", _load_lists)


def active_options(ctx: Context, list_key: str) -> list[OptionInfo]:
    """The active options of a list in display order, from the business's configuration cache
    (no statement while the lists are unchanged; :mod:`crmcore.tenancy.config`)."""
    return [o for o in _lists(ctx).by_list.get(list_key, ()) if o.is_active]


def cached_options(ctx: Context, list_key: str, *, include_inactive: bool = False) -> list[OptionInfo]:
    """The options of a list in display order (inactive ones too on request), from the
    configuration cache: what pages need to label rows and fill filter controls."""
    options = _lists(ctx).by_list.get(list_key, ())
    return list(options) if include_inactive else [o for o in options if o.is_active]


def option_by_id(ctx: Context, option_id: int) -> OptionInfo | None:
    """Any option of the business (inactive too) by id, from the configuration cache."""
    return _lists(ctx).by_id.get(option_id)


def resolve_option(ctx: Context, list_key: str, value: str | int | ChoiceOption | OptionInfo | None, *,
                   field: str, keep: int | None = None) -> OptionInfo | None:
    """The option of ``list_key`` given by its value key or its id (None for None or "").

    Unknown and inactive options are a :class:`ValidationFailed` under ``field``; an inactive
    option whose id is ``keep`` (the value the edited row already has) is accepted, so saving a
    form does not fail because an admin retired the option since. Answers from the business's
    configuration cache.
    """
    if isinstance(value, ChoiceOption | OptionInfo):
        value = value.id
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    lists = _lists(ctx)
    option = None
    if isinstance(value, bool):
        option = None
    elif isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        option = lists.by_id.get(int(value))
        if option is not None and option.list_key != list_key:
            option = None
    elif isinstance(value, str):
        option = lists.by_value.get((list_key, value.strip().lower()))
    label = _list_label(list_key)
    if option is None:
        choices = [o.value for o in active_options(ctx, list_key)]
        hint = f"; use one of: {', '.join(choices)}" if choices else f"; the {label} list is empty"
        raise ValidationFailed(f"unknown {label} {value!r}", {field: [f"{value!r} is not in the {label} list{hint}"]})
    if not option.is_active and option.id != keep:
        raise ValidationFailed(f"{label} {option.label!r} is no longer in use",
                               {field: [f"{option.label!r} has been deactivated; pick another {label}"]})
    return option


def _check_list_key(list_key: str) -> str:
    key = (list_key or "").strip()
    if len(key) > 64 or not LIST_KEY_RE.match(key):
        raise ValidationFailed("invalid list name", {"list_key": [
            "use lowercase letters, digits and _ (plugins prefix theirs with '<plugin>.'), at most 64"]})
    return key


def _load(schema: Any, data: Mapping[str, Any], what: str, **kwargs: Any) -> dict[str, Any]:
    try:
        return schema.load(dict(data or {}), **kwargs)
    except ValidationError as exc:
        raise ValidationFailed(f"invalid {what}", exc.messages) from exc


@use_case(Role.READ_ONLY, write=False)
def list_options(ctx: Context, list_key: str, include_inactive: bool = False) -> list[ChoiceOption]:
    """The options of a list in display order."""
    stmt = select(ChoiceOption).where(ChoiceOption.list_key == list_key)
    if not include_inactive:
        stmt = stmt.where(ChoiceOption.is_active)
    return list(ctx.session.scalars(stmt.order_by(ChoiceOption.position, ChoiceOption.id)))


@use_case(Role.ADMIN)
def add_option(ctx: Context, list_key: str, data: Mapping[str, Any]) -> ChoiceOption:
    """Add an option at the end of the list (or at ``position``)."""
    list_key = _check_list_key(list_key)
    values = _load(OptionSchema(), data, "list option")
    clash = ctx.session.scalar(select(ChoiceOption).where(ChoiceOption.list_key == list_key,
                                                          ChoiceOption.value == values["value"]))
    if clash is not None:
        state = "" if clash.is_active else " (deactivated: activate it again instead)"
        raise Conflict(f"the {_list_label(list_key)} list already has an option {values['value']!r}{state}",
                       {"value": ["already used in this list"]})
    if "position" not in values:
        last = ctx.session.scalar(select(func.max(ChoiceOption.position)).where(ChoiceOption.list_key == list_key))
        values["position"] = 0 if last is None else last + 1
    option = ChoiceOption(list_key=list_key, **values)
    ctx.session.add(option)
    ctx.session.flush()
    audit.record(ctx, "list_option.added", option, entity_type="choice_option",
                 changes={"list_key": list_key, **values})
    return option


@use_case(Role.ADMIN)
def update_option(ctx: Context, option_id: int, data: Mapping[str, Any]) -> ChoiceOption:
    """Change an option's label, colour, position or active flag (never its value key)."""
    option = get_or_404(ctx, ChoiceOption, option_id, "list option")
    values = _load(OptionUpdateSchema(), data, "list option", partial=True)
    changes = {}
    for key, new in values.items():
        old = getattr(option, key)
        if old != new:
            setattr(option, key, new)
            changes[key] = [old, new]
    if changes:
        audit.record(ctx, "list_option.updated", option, entity_type="choice_option", changes=changes)
    return option


@use_case(Role.ADMIN)
def deactivate_option(ctx: Context, option_id: int) -> ChoiceOption:
    """Hide an option from pickers; rows that use it keep it."""
    return update_option(ctx, option_id, {"is_active": False})


@use_case(Role.ADMIN)
def reorder_options(ctx: Context, list_key: str, option_ids: list[int]) -> list[ChoiceOption]:
    """Put ``option_ids`` first, in that order; options not named follow in their current order."""
    options = list_options(ctx, list_key, include_inactive=True)
    by_id = {o.id: o for o in options}
    try:
        wanted = [int(i) for i in option_ids]
    except (TypeError, ValueError) as exc:
        raise ValidationFailed("invalid order", {"option_ids": ["give a list of option ids"]}) from exc
    unknown = [i for i in wanted if i not in by_id]
    if unknown:
        raise ValidationFailed(f"options {unknown} are not in the {_list_label(list_key)} list",
                               {"option_ids": [f"{i} is not an option of this list" for i in unknown]})
    if len(set(wanted)) != len(wanted):
        raise ValidationFailed("invalid order", {"option_ids": ["an option is named twice"]})
    ordered = [by_id[i] for i in wanted] + [o for o in options if o.id not in set(wanted)]
    changes = {}
    for position, option in enumerate(ordered):
        if option.position != position:
            changes[str(option.id)] = [option.position, position]
            option.position = position
    if changes:
        audit.record(ctx, "list_option.reordered", entity_type="choice_list", changes={"list_key": list_key,
                                                                                       "positions": changes})
    return ordered
