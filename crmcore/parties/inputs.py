"""Checking and normalising input: what the party and contact use cases share.

:class:`Errors` collects field errors from several checks so a form shows all of them at once;
the mechanism and address helpers apply the "one primary per kind" and "one default per
purpose" rules to a batch of inputs before anything is written.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from marshmallow import ValidationError
from sqlalchemy import select

from crmcore.context import get_or_404
from crmcore.errors import Conflict, ValidationFailed
from crmcore.paging import decode_cursor
from crmcore.parties.models import Address, ContactMechanism, Party
from crmcore.parties.normalize import NormalizeError, clean_name, normalize_mechanism

if TYPE_CHECKING:
    from crmcore.context import Context


class Errors:
    """Collects field errors from several checks so the user sees them all at once."""

    def __init__(self) -> None:
        self.errors: dict[Any, Any] = {}

    def add(self, path: Iterable[Any], message: str) -> None:
        *parents, last = list(path)
        node = self.errors
        for key in parents:
            node = node.setdefault(key, {})
        node.setdefault(last, []).append(message)

    def call(self, fn: Callable[..., Any], *args: Any, default: Any = None, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ValidationFailed as exc:
            merge_errors(self.errors, exc.errors or {"_schema": [exc.message]})
            return default

    def raise_if_any(self, message: str) -> None:
        if self.errors:
            raise ValidationFailed(message, self.errors)


def merge_errors(into: dict[Any, Any], errors: Mapping[Any, Any]) -> None:
    for key, value in errors.items():
        if isinstance(value, Mapping):
            merge_errors(into.setdefault(key, {}), value)
        else:
            into.setdefault(key, []).extend(value if isinstance(value, list) else [value])


def load_input(schema: Any, data: Mapping[str, Any] | None, what: str, *, partial: bool = False) -> dict[str, Any]:
    if data is not None and not isinstance(data, Mapping):
        raise ValidationFailed(f"invalid {what}", {"_schema": ["expected an object of fields"]})
    try:
        return schema.load(dict(data or {}), partial=partial)
    except ValidationError as exc:
        raise ValidationFailed(f"invalid {what}", exc.messages) from exc




def writable_party(ctx: Context, party_id: Any) -> Party:
    party = get_or_404(ctx, Party, party_id, "party")
    if party.merged_into_id is not None:
        raise Conflict(f"party {party.name!r} was merged into party {party.merged_into_id}; change that one instead")
    return party


# --------------------------------------------------------------------------------------------
# mechanisms and addresses: normalising and the one-primary / one-default rules


def clean_mechanisms(items: list[dict[str, Any]], region: str | None, errs: Errors, path: str,
                      taken: Mapping[tuple[str, str], Any] | None = None,
                      primary_kinds: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Normalise mechanism inputs; one primary per kind (the first of a kind becomes primary
    unless ``primary_kinds`` already has one); a value twice on the same owner is an error."""
    out: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], int] = {}
    taken = taken or {}
    for i, item in enumerate(items):
        try:
            norm = normalize_mechanism(item["kind"], item["value"], region)
        except NormalizeError as exc:
            errs.add([path, i, "value"], str(exc))
            continue
        if len(norm.value) > 300 or len(norm.normalized) > 300:
            errs.add([path, i, "value"], "at most 300 characters")
            continue
        key = (item["kind"], norm.normalized)
        if key in seen or key in taken:
            errs.add([path, i, "value"], f"{norm.value} is given twice")
            continue
        seen[key] = i
        out.append({**item, "value": norm.value, "normalized": norm.normalized, "index": i})
    have_primary = set(primary_kinds)
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in out:
        by_kind[item["kind"]].append(item)
    for kind, group in by_kind.items():
        flagged = [m for m in group if m.get("is_primary")]
        if len(flagged) > 1:
            for m in flagged[1:]:
                errs.add([path, m["index"], "is_primary"], f"only one {kind} can be the primary one")
        if not flagged and kind not in have_primary:
            group[0]["is_primary"] = True
    return out


def mechanism_rows(cleaned: list[dict[str, Any]], *, party_id: int | None = None,
                    contact_id: int | None = None, start: int = 0) -> list[ContactMechanism]:
    return [
        ContactMechanism(party_id=party_id, contact_id=contact_id, kind=m["kind"], value=m["value"],
                         normalized=m["normalized"], label=m.get("label"), is_primary=bool(m.get("is_primary")),
                         position=start + n)
        for n, m in enumerate(cleaned)
    ]


def clean_addresses(items: list[dict[str, Any]], errs: Errors, path: str = "addresses",
                     default_purposes: Iterable[str] = ()) -> list[dict[str, Any]]:
    """One default per purpose: the first address of a purpose is its default unless one is."""
    out = [{"purpose": "billing", **item, "index": i} for i, item in enumerate(items)]
    have_default = set(default_purposes)
    by_purpose: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in out:
        by_purpose[item["purpose"]].append(item)
    for purpose, group in by_purpose.items():
        flagged = [a for a in group if a.get("is_default")]
        for a in flagged[1:]:
            errs.add([path, a["index"], "is_default"], f"only one {purpose} address can be the default")
        if not flagged and purpose not in have_default:
            group[0]["is_default"] = True
    return out


def address_row(item: Mapping[str, Any], party_id: int | None = None) -> Address:
    values = {k: v for k, v in item.items() if k != "index"}
    values.setdefault("is_default", False)
    return Address(party_id=party_id, **values)


def region_of(addresses: Iterable[Mapping[str, Any] | Address]) -> str | None:
    """The country to read national phone numbers in: default billing address first."""
    def get(a: Any, key: str) -> Any:
        return a.get(key) if isinstance(a, Mapping) else getattr(a, key)

    ranked = sorted((a for a in addresses if get(a, "country")),
                    key=lambda a: (not get(a, "is_default"), get(a, "purpose") != "billing"))
    return get(ranked[0], "country") if ranked else None


def party_region(ctx: Context, party_id: int | None) -> str | None:
    if party_id is None:
        return None
    rows = ctx.session.scalars(select(Address).where(Address.party_id == party_id, Address.country.is_not(None)))
    return region_of(rows)


def tag_names(names: Iterable[str]) -> dict[str, str]:
    """name_key -> cleaned name, first spelling wins."""
    out: dict[str, str] = {}
    for raw in names:
        name = clean_name(raw)
        if name:
            out.setdefault(name.casefold(), name)
    return out




def check_cursor(cursor: str | None, first_type: type) -> None:
    """A cursor of another sort order decodes fine but compares a name with a date: refuse it."""
    if not cursor:
        return
    first, last = decode_cursor(cursor, 2)
    if not isinstance(first, first_type) or not isinstance(last, int) or isinstance(last, bool):
        raise ValidationFailed("invalid page cursor", {"cursor": ["this cursor belongs to another sort order"]})
