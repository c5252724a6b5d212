"""``count_records`` and ``list_records(with_count=False)``: a record list can show its rows
without counting and ask for the capped count afterwards, with the same filters, the same
answer, for its own business only."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, update

from crmcore.db import utcnow
from crmcore.errors import ValidationFailed
from crmcore.fields.service import define_field
from crmcore.paging import CappedCount
from crmcore.records import service as records
from crmcore.records.models import Record


def create(ctx, title: str, record_type: str = "deal", **data) -> int:
    return records.create_record(ctx, record_type, {"title": title, **data}).id


@pytest.fixture
def units(ctx):
    define_field(ctx, "record:deal", {"key": "units", "label": "Units", "type": "integer"})


def statements_of(crm, fn) -> list[str]:
    seen: list[str] = []

    def before(_conn, _cursor, statement, *_args):
        seen.append(statement)

    event.listen(crm.db.engine, "before_cursor_execute", before)
    try:
        fn()
    finally:
        event.remove(crm.db.engine, "before_cursor_execute", before)
    return seen


def counting(statements: list[str]) -> list[str]:
    return [s for s in statements if "count(*)" in s.lower() and "records" in s.lower()]


def test_a_page_without_its_count_runs_no_count_query(crm, ctx):
    for i in range(3):
        create(ctx, f"Deal {i}")
    found: list = []
    statements = statements_of(crm, lambda: found.append(records.list_records(ctx, record_type="deal",
                                                                               with_count=False)))
    assert found[0].total is None and len(found[0].items) == 3
    assert counting(statements) == []
    statements = statements_of(crm, lambda: found.append(records.list_records(ctx, record_type="deal")))
    assert found[1].total == CappedCount(3, False)  # the API's behaviour is unchanged
    assert len(counting(statements)) == 1


def test_the_count_answers_what_the_counted_list_answers(ctx, other_ctx, units, make_user, business):
    member = make_user(business, "member")
    create(ctx, "Alpha", custom={"units": 5})
    beta = create(ctx, "Beta", owner_id=member.user_id, custom={"units": 5})
    records.close_won(ctx, create(ctx, "Gamma", custom={"units": 7}))
    records.archive_record(ctx, create(ctx, "Archived", custom={"units": 5}))
    create(ctx, "A lead", "lead")
    for i in range(4):
        create(other_ctx, f"Alpha {i}")  # another business's records are never counted

    cases = [{}, {"status": "open"}, {"status": "won"}, {"q": "al"}, {"custom": {"units": "5"}},
             {"owner_id": member.user_id}, {"include_archived": True}, {"status": "lost"}]
    expected = [3, 2, 1, 1, 2, 1, 4, 0]
    for filters, want in zip(cases, expected, strict=True):
        counted = records.count_records(ctx, record_type="deal", filters=filters)
        listed = records.list_records(ctx, record_type="deal", filters=filters)
        assert counted == listed.total == CappedCount(want, False), filters
    assert records.count_records(other_ctx, record_type="deal").value == 4
    assert records.count_records(ctx, filters={"owner_id": member.user_id}) == CappedCount(1, False)
    assert records.list_records(ctx, record_type="deal", filters={"owner_id": member.user_id}).items[0].id == beta


def test_the_count_stops_at_the_cap(ctx, other_ctx):
    # 1,001 rows straight through the scoped session: the count's cap is what is tested here
    ctx.session.add_all([Record(type="action", title=f"Call {i}") for i in range(1_001)])
    ctx.session.commit()
    counted = records.count_records(ctx, record_type="action")
    assert counted == CappedCount(1_000, True) and str(counted) == "1,000+"
    assert records.count_records(ctx, record_type="action", filters={"q": "call 100"}) == CappedCount(2, False)
    assert records.count_records(other_ctx, record_type="action") == CappedCount(0, False)


def test_bad_filters_and_types_are_refused_naming_the_field(ctx, units, make_user, business):
    with pytest.raises(ValidationFailed) as exc:
        records.count_records(ctx, record_type="deal", filters={"custom": {"units": "many"}})
    assert "units" in exc.value.errors["custom"]
    with pytest.raises(ValidationFailed) as exc:
        records.count_records(ctx, record_type="deal", filters={"status": "maybe"})
    assert "status" in exc.value.errors
    with pytest.raises(ValidationFailed) as exc:
        records.count_records(ctx, filters={"custom": {"units": "1"}})
    assert "custom" in exc.value.errors
    with pytest.raises(ValidationFailed) as exc:
        records.count_records(ctx, record_type="spaceship")
    assert "type" in exc.value.errors
    reader = make_user(business, "read_only")
    assert records.count_records(reader, record_type="deal") == CappedCount(0, False)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["Apple", "Apricot", "Banana", "apple pie"]),
                          st.sampled_from(["open", "won"])), max_size=8),
       st.sampled_from([{}, {"status": "open"}, {"status": "won"}, {"q": "ap"}, {"q": "APPLE"}]))
def test_the_count_is_the_number_of_rows_the_pages_walk(ctx, rows, filters):
    ctx.session.execute(update(Record).values(archived_at=utcnow()))  # earlier examples' rows
    ctx.session.commit()
    for title, status in rows:
        record_id = create(ctx, title)
        if status == "won":
            records.close_won(ctx, record_id)
    walked, cursor = 0, None
    while True:
        page = records.list_records(ctx, record_type="deal", filters=filters, cursor=cursor, limit=3,
                                    with_count=False)
        walked += len(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert records.count_records(ctx, record_type="deal", filters=filters) == CappedCount(walked, False)
