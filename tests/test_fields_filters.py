"""SQL filters of every built-in type and operator, run on the test database (SQLite, or
PostgreSQL when CRM_TEST_DATABASE_URL is set): each returns exactly the matching parties."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql

from crmcore.errors import ValidationFailed
from crmcore.fields import service as fields
from crmcore.fields.types import BUILTIN_TYPES
from crmcore.parties.models import Party

CHOICES = {"choices": [{"value": v, "label": v.title()} for v in ("red", "green", "blue")]}
LETTERS = {"choices": [{"value": v, "label": v.upper()} for v in ("a", "b", "c")]}

FIELDS = [
    ("t", "text", {}), ("lt", "long_text", {}), ("n", "integer", {}), ("d", "decimal", {}),
    ("a", "amount", {}), ("day", "date", {}), ("at", "datetime", {}), ("ok", "checkbox", {}),
    ("c", "choice", CHOICES), ("m", "multi_choice", LETTERS), ("p", "party_ref", {}),
]


@pytest.fixture
def parties(ctx, other_ctx):
    """P1..P5 in acme (stored as the service stores values), and a copy of P1 in globex."""
    for key, type_key, options in FIELDS:
        fields.define_field(ctx, "party", {"key": key, "label": key.upper(), "type": type_key, "options": options})
    p2 = {"t": "100% sure_thing", "lt": "line one\nline two", "n": -3, "d": "10.25", "a": "99.99",
          "day": "2023-12-31", "at": "2024-01-15T09:59:59+00:00", "ok": False, "c": "green", "m": ["b"]}
    rows = {"P2": p2}
    ids = {}
    session = ctx.session
    party = Party(kind="organisation", name="P2", name_key="p2", custom=p2)
    session.add(party)
    session.flush()
    ids["P2"] = party.id
    rows["P1"] = {"t": "Hello World", "lt": "Big HELLO", "n": 5, "d": "9.5", "a": "100", "day": "2024-01-15",
                  "at": "2024-01-15T10:00:00+00:00", "ok": True, "c": "red", "m": ["a", "b"], "p": ids["P2"]}
    rows["P3"] = {"t": "hello", "n": 10, "d": "100", "a": "1000.5", "day": "2024-02-01",
                  "at": "2025-06-01T00:00:00+00:00", "c": "blue", "m": ["a", "c"]}
    rows["P4"] = {}
    rows["P5"] = {"t": "x", "n": None, "d": "-0.5", "m": []}
    for name in ("P1", "P3", "P4", "P5"):
        party = Party(kind="organisation", name=name, name_key=name.lower(), custom=rows[name])
        session.add(party)
        session.flush()
        ids[name] = party.id
    session.commit()
    for key, type_key, options in FIELDS:
        fields.define_field(other_ctx, "party", {"key": key, "label": key, "type": type_key, "options": options})
    other_ctx.session.add(Party(kind="organisation", name="G1", name_key="g1", custom=rows["P1"]))
    other_ctx.session.commit()
    return ids


def names(ctx, key, value, op):
    condition = fields.custom_filter(ctx, "party", Party.custom, key, value, op)
    found = ctx.session.scalars(select(Party.name).where(condition).order_by(Party.name)).all()
    ctx.session.rollback()
    return found


CASES = [
    # text
    ("t", "eq", "hello", ["P3"]),
    ("t", "eq", "Hello", []),
    ("t", "contains", "HELLO", ["P1", "P3"]),
    ("t", "contains", "%", ["P2"]),
    ("t", "contains", "_", ["P2"]),
    ("t", "contains", "o w", ["P1"]),
    ("t", "isnull", True, ["P4"]),
    ("t", "isnull", False, ["P1", "P2", "P3", "P5"]),
    ("lt", "contains", "hello", ["P1"]),
    ("lt", "contains", "line two", ["P2"]),
    # integer
    ("n", "eq", "5", ["P1"]),
    ("n", "eq", 5.0, ["P1"]),
    ("n", "lt", 5, ["P2"]),
    ("n", "le", 5, ["P1", "P2"]),
    ("n", "gt", "5", ["P3"]),
    ("n", "ge", "-3", ["P1", "P2", "P3"]),
    ("n", "gt", 9, ["P3"]),
    ("n", "isnull", True, ["P4", "P5"]),
    # decimal: numeric, not text, comparison ("9.5" < "10.25" < "100")
    ("d", "eq", "9.50", ["P1"]),
    ("d", "gt", "10", ["P2", "P3"]),
    ("d", "lt", "0", ["P5"]),
    ("d", "le", "10.25", ["P1", "P2", "P5"]),
    ("d", "ge", "100", ["P3"]),
    ("d", "isnull", "true", ["P4"]),
    # amount
    ("a", "ge", "100", ["P1", "P3"]),
    ("a", "lt", "100", ["P2"]),
    ("a", "eq", "100.00", ["P1"]),
    ("a", "gt", "999.999", ["P3"]),  # operands are not held to the currency's places
    ("a", "le", "99.99", ["P2"]),
    ("a", "isnull", True, ["P4", "P5"]),
    # date
    ("day", "lt", "2024-01-01", ["P2"]),
    ("day", "ge", "2024-01-15", ["P1", "P3"]),
    ("day", "eq", "2024-02-01", ["P3"]),
    ("day", "le", "2024-01-15", ["P1", "P2"]),
    ("day", "gt", "2024-01-15", ["P3"]),
    ("day", "isnull", False, ["P1", "P2", "P3"]),
    # datetime: operands in any zone compare as instants
    ("at", "gt", "2024-01-15T09:59:59Z", ["P1", "P3"]),
    ("at", "eq", "2024-01-15T11:00:00+01:00", ["P1"]),
    ("at", "le", "2024-01-15T10:00:00+00:00", ["P1", "P2"]),
    ("at", "lt", "2024-01-15T10:00:00", ["P2"]),
    ("at", "ge", "2025-01-01T00:00:00-05:00", ["P3"]),
    ("at", "isnull", True, ["P4", "P5"]),
    # checkbox: false also matches never-ticked rows
    ("ok", "eq", True, ["P1"]),
    ("ok", "eq", "no", ["P2", "P3", "P4", "P5"]),
    ("ok", "isnull", True, ["P3", "P4", "P5"]),
    # choice
    ("c", "eq", "red", ["P1"]),
    ("c", "isnull", False, ["P1", "P2", "P3"]),
    # multi choice
    ("m", "contains", "a", ["P1", "P3"]),
    ("m", "contains", "b", ["P1", "P2"]),
    ("m", "contains", "c", ["P3"]),
    ("m", "eq", ["b", "a"], ["P1"]),
    ("m", "eq", ["b"], ["P2"]),
    ("m", "eq", "c", []),
    ("m", "isnull", True, ["P4"]),
    # party reference
    ("p", "isnull", True, ["P2", "P3", "P4", "P5"]),
]


def test_filters_return_exactly_the_matching_parties(ctx, other_ctx, parties):
    """All cases in one test (the data set is built once): every mismatch is reported."""
    wrong = [(key, op, value, found, expected) for key, op, value, expected in CASES
             if (found := names(ctx, key, value, op)) != expected]
    assert wrong == []
    assert names(ctx, "p", parties["P2"], "eq") == ["P1"]
    assert names(ctx, "p", str(parties["P2"]), "eq") == ["P1"]
    assert names(ctx, "p", parties["P3"], "eq") == []
    # the copy of P1 in the other business matches only there
    assert names(other_ctx, "t", "hello", "contains") == ["G1"]
    assert names(other_ctx, "m", "a", "contains") == ["G1"]

    bad = [(key, op, value, problem) for key, op, value, problem in BAD_FILTERS
           if not _refused(ctx, key, op, value, problem)]
    assert bad == []

    definition = next(f for f in fields.list_fields(ctx, "party") if f.key == "c")
    fields.archive_field(ctx, definition.id)
    assert names(ctx, "c", "green", "eq") == ["P2"]  # archived fields stay filterable


BAD_FILTERS = [
    ("nope", "eq", "x", "unknown field 'nope' for party"),
    ("t", "lt", "x", "the operator 'lt' does not apply to text fields; use one of eq, contains, isnull"),
    ("c", "contains", "r", "the operator 'contains' does not apply to choice fields"),
    ("n", "gt", "abc", "Not a valid integer."),
    ("d", "gt", "", "give a value to compare with"),
    ("c", "eq", "purple", "Choose one of: red, green, blue."),
    ("m", "contains", "z", "Choose one of: a, b, c."),
    ("day", "lt", "2024-02-30", "Not a valid date."),
    ("ok", "isnull", "perhaps", "Not a valid boolean."),
]


def _refused(ctx, key, op, value, problem) -> bool:
    try:
        fields.custom_filter(ctx, "party", Party.custom, key, value, op)
    except ValidationFailed as exc:
        return any(m.startswith(problem) for m in exc.errors["custom"][key])
    return False


def test_every_op_of_every_type_is_exercised():
    exercised = {(key, op) for key, op, _, _ in CASES} | {("p", "eq")}
    by_type = {type_key: key for key, type_key, _ in FIELDS}
    for cls in BUILTIN_TYPES:
        key = by_type[cls.key]
        for op in cls.ops:
            if cls.key == "long_text" and op in ("eq", "isnull"):
                continue  # same code as text
            assert (key, op) in exercised, (cls.key, op)


def test_equality_uses_the_gin_index_on_postgresql(ctx, parties):
    if ctx.session.get_bind().dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    condition = fields.custom_filter(ctx, "party", Party.custom, "c", "red", "eq")
    sql = select(Party.id).where(condition).compile(dialect=postgresql.dialect(),
                                                    compile_kwargs={"literal_binds": True})
    assert "@>" in str(sql)
    ctx.session.execute(text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(ctx.session.execute(text(f"EXPLAIN {sql}")).scalars())
    ctx.session.rollback()
    assert "ix_parties_custom_gin" in plan
