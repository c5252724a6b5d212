"""Keyset pagination and capped counts: list pages that stay fast at a million rows.

A page is fetched with ``WHERE (sort_key, id) > (:last_key, :last_id) ORDER BY sort_key, id
LIMIT n+1`` (never OFFSET), so page 10,000 costs what page 1 costs when an index ends in the
sort columns. Counts stop at a cap ("1,000+"): an exact count of a million filtered rows would
cost more than the page itself.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.types import TypeDecorator

from crmcore.errors import ValidationFailed

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
#: counting stops here. Measured at a million parties (benchmarks, docs/performance.md): a
#: filter the index cannot answer alone (a tag, a custom value) costs ~5 µs per row it visits,
#: so a cap of 10,000 cost 530 ms per list page; 1,000 keeps the count under the page's budget
COUNT_CAP = 1_000


@dataclass(frozen=True)
class CappedCount:
    value: int
    capped: bool

    def __str__(self) -> str:
        return f"{self.value:,}+" if self.capped else f"{self.value:,}"


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None = None
    total: CappedCount | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None


def _encode_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"d": value.isoformat()}
    if isinstance(value, Decimal):
        return {"dec": str(value)}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        if "dt" in value:
            return dt.datetime.fromisoformat(str(value["dt"]))
        if "d" in value:
            return dt.date.fromisoformat(str(value["d"]))
        if "dec" in value:
            return Decimal(str(value["dec"]))
    return value


def encode_cursor(values: Sequence[Any]) -> str:
    raw = json.dumps([_encode_value(v) for v in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[Any]:
    """Decode a cursor made by :func:`encode_cursor`; a tampered one is a clear 422, not a 500."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != size:
            raise ValueError("wrong size")
        return [_decode_value(v) for v in values]
    except (ValueError, binascii.Error, TypeError, UnicodeDecodeError, ArithmeticError) as exc:
        raise ValidationFailed("invalid page cursor", {"cursor": ["not a cursor from this list"]}) from exc


_INT64 = 2**63 - 1


def check_cursor_values(order: Sequence[Any], values: Sequence[Any]) -> None:
    """Each value of a decoded cursor must fit its sort column's type: a cursor is user input
    (it travels in URLs), and a wrong type would otherwise fail in the driver as a 500."""
    invalid = ValidationFailed("invalid page cursor", {"cursor": ["not a cursor from this list"]})
    for column, value in zip(order, values, strict=True):
        column_type = getattr(column, "type", None)
        if isinstance(column_type, TypeDecorator):
            column_type = column_type.impl_instance
        try:
            expected = column_type.python_type
        except (NotImplementedError, AttributeError):
            continue
        if value is None:
            raise invalid
        if expected is bool:
            ok = isinstance(value, bool)
        elif expected is int:
            ok = isinstance(value, int) and not isinstance(value, bool) and -_INT64 <= value <= _INT64
        elif expected is Decimal:
            ok = isinstance(value, Decimal | int) and not isinstance(value, bool)
        elif expected is dt.datetime:
            ok = isinstance(value, dt.datetime) and value.tzinfo is not None
        elif expected is dt.date:
            ok = isinstance(value, dt.date) and not isinstance(value, dt.datetime)
        elif expected is str:
            ok = isinstance(value, str) and len(value) <= 1000 and "\x00" not in value and _encodable(value)
        else:
            ok = isinstance(value, expected)
        if not ok:
            raise invalid


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")  # a lone surrogate cannot reach a database
    except UnicodeEncodeError:
        return False
    return True


def clamp_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    try:
        limit = int(limit)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed("invalid page size", {"limit": ["must be a whole number"]}) from exc
    if limit < 1:
        raise ValidationFailed("invalid page size", {"limit": ["must be at least 1"]})
    return min(limit, MAX_LIMIT)


def keyset_page(session: Any, stmt: Select, order: Sequence[Any], *, cursor: str | None,
                limit: int | None, descending: bool = False,
                key: Any = None, count_small: bool = False) -> Page[Any]:
    """Run ``stmt`` as one keyset page ordered by ``order`` (columns; the last must be unique,
    e.g. the id). ``key(row)`` gives the sort values of a row (default: the ORM attributes
    named like the columns).

    ``count_small``: ``stmt`` is known to match few rows (a search's capped id list), so the
    first page also counts them all, in its own statement (``count(*) OVER ()``) rather than
    in a second one that finds the same rows again; ``page.total`` is set (uncapped). Ignored
    for later pages (their statement sees only the rows after the cursor) and for ``key`` rows.
    """
    limit = clamp_limit(limit)
    if cursor:
        values = decode_cursor(cursor, len(order))
        check_cursor_values(order, values)
        stmt = stmt.where(after(order, values, descending))
    counted = count_small and not cursor and (key is None or callable(key))
    if counted:
        stmt = stmt.add_columns(func.count().over().label("crm_total"))
    stmt = stmt.order_by(*[c.desc() if descending else c.asc() for c in order]).limit(limit + 1)
    total = None
    if counted:
        result = list(session.execute(stmt))
        rows = [r[0] for r in result]
        total = CappedCount(result[0][1] if result else 0, False)
    else:
        rows = list(session.scalars(stmt)) if key is None or callable(key) else list(session.execute(stmt))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        if key is None:
            vals = [getattr(last, c.key) for c in order]
        else:
            vals = list(key(last))
        next_cursor = encode_cursor(vals)
    page = Page(items=rows, next_cursor=next_cursor)
    if total is not None:
        page.total = total
    return page


def after(order: Sequence[Any], values: Sequence[Any], descending: bool = False) -> Any:
    """``(a, b, c) > (x, y, z)``, written ``a >= x AND (a > x OR (a = x AND b > y) OR ...)``.

    The leading bound alone is what a planner turns into an index range (it starts the scan at
    the cursor); the OR-of-ANDs after it only drops the few rows equal on ``a``. Without the
    bound, PostgreSQL read a deep page by filtering the index from its start. Row-value
    comparison would say the same, but not every planner ranges on it.
    """
    clauses = []
    for i, column in enumerate(order):
        equal = [order[j] == values[j] for j in range(i)]
        cmp = column < values[i] if descending else column > values[i]
        clauses.append(and_(*equal, cmp))
    bound = order[0] <= values[0] if descending else order[0] >= values[0]
    return and_(bound, or_(*clauses))


def capped_count(session: Any, stmt: Select, cap: int = COUNT_CAP) -> CappedCount:
    """Count the rows of ``stmt`` but stop at ``cap`` (shown as "1,000+")."""
    inner = stmt.order_by(None).limit(cap + 1).subquery()
    n = session.scalar(select(func.count()).select_from(inner)) or 0
    return CappedCount(min(n, cap), n > cap)
