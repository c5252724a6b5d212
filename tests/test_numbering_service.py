"""Numbering rules and gap-free reference codes, including concurrent writers."""

from __future__ import annotations

import datetime as dt
import re
import threading

import pytest
from sqlalchemy import func, select

from crmcore.audit.models import AuditEntry
from crmcore.context import use_case
from crmcore.errors import PermissionDenied, ValidationFailed
from crmcore.numbering import service as numbering
from crmcore.numbering.models import NumberingCounter, NumberingRule
from crmcore.tenancy.models import Role

MAY = dt.datetime(2024, 5, 7, 12, 0, tzinfo=dt.UTC)


class Rollback(Exception):
    """Raised after taking a number, to roll the transaction back."""


@use_case(Role.MEMBER)
def take(ctx, target, when=MAY, fail=False):
    code = numbering.assign_reference(ctx, target, when)
    if fail:
        raise Rollback(code)
    return code


def counters(ctx) -> dict[tuple[str, str], int]:
    ctx.session.rollback()
    rows = ctx.session.execute(select(NumberingRule.target, NumberingCounter.period, NumberingCounter.last_value)
                               .join(NumberingRule, NumberingRule.id == NumberingCounter.rule_id))
    return {(target, period): value for target, period, value in rows}


def test_a_new_business_gets_the_default_rules(ctx):
    rules = {r.target: (r.pattern, r.is_active) for r in numbering.list_rules(ctx)}
    assert rules == {
        "party": ("CU{yy}{mm}-{0000}", True),
        "record:deal": ("DL{yy}-{0000}", True),
        "record:lead": ("LD{yy}-{0000}", True),
        "record:incident": ("IN{yy}-{0000}", True),
    }


def test_seed_defaults_is_idempotent(ctx):
    @use_case(Role.ADMIN)
    def seed_again(ctx):
        numbering.seed_defaults(ctx)

    seed_again(ctx)
    assert len(numbering.list_rules(ctx)) == 4


def test_assign_counts_per_target_and_period(ctx):
    assert [take(ctx, "party") for _ in range(3)] == ["CU2405-0001", "CU2405-0002", "CU2405-0003"]
    assert take(ctx, "record:deal") == "DL24-0001"
    assert take(ctx, "party", dt.datetime(2024, 6, 1, tzinfo=dt.UTC)) == "CU2406-0001"  # a new month
    assert take(ctx, "party") == "CU2405-0004"
    assert take(ctx, "record:deal", dt.datetime(2024, 12, 31, tzinfo=dt.UTC)) == "DL24-0002"  # same year
    assert take(ctx, "record:deal", dt.datetime(2025, 1, 1, tzinfo=dt.UTC)) == "DL25-0001"
    assert counters(ctx) == {("party", "2024-05"): 4, ("party", "2024-06"): 1,
                             ("record:deal", "2024"): 2, ("record:deal", "2025"): 1}


def test_no_rule_or_an_inactive_rule_gives_none(ctx):
    assert take(ctx, "record:action") is None
    numbering.set_rule(ctx, "record:lead", "LD{yy}-{0000}", is_active=False)
    assert take(ctx, "record:lead") is None
    assert counters(ctx) == {}


def test_the_period_is_the_business_calendar_day(ctx):
    numbering.set_rule(ctx, "party", "C{yyyy}{mm}{dd}-{00}")
    late = dt.datetime(2024, 5, 31, 23, 30, tzinfo=dt.UTC)
    assert take(ctx, "party", late) == "C20240531-01"
    ctx.business.timezone = "Europe/Berlin"  # 01:30 on June 1st there
    assert take(ctx, "party", late) == "C20240601-01"
    assert take(ctx, "party", dt.date(2024, 6, 1)) == "C20240601-02"


def test_a_rolled_back_transaction_gives_its_number_back(ctx):
    assert take(ctx, "party") == "CU2405-0001"
    with pytest.raises(Rollback):
        take(ctx, "party", fail=True)
    assert take(ctx, "party") == "CU2405-0002"


def test_businesses_count_separately(ctx, other_ctx):
    assert take(ctx, "party") == "CU2405-0001"
    assert take(ctx, "party") == "CU2405-0002"
    assert take(other_ctx, "party") == "CU2405-0001"
    assert counters(ctx) == {("party", "2024-05"): 2}
    assert counters(other_ctx) == {("party", "2024-05"): 1}


def test_set_rule_creates_changes_and_keeps_counters(ctx):
    assert take(ctx, "party") == "CU2405-0001"
    rule = numbering.set_rule(ctx, "party", " K-{yy}{mm}/{000000} ")
    assert rule.pattern == "K-{yy}{mm}/{000000}"
    assert take(ctx, "party") == "K-2405/000002"  # same period key: the count goes on
    numbering.set_rule(ctx, "contact", "P{0000}")
    assert take(ctx, "contact") == "P0001"
    actions = ctx.session.scalars(select(AuditEntry.action).where(AuditEntry.action.like("numbering.%"))).all()
    assert sorted(actions) == ["numbering.rule_changed", "numbering.rule_created"]


def test_a_bad_pattern_writes_nothing(ctx):
    before = [(r.target, r.pattern) for r in numbering.list_rules(ctx)]
    audits = ctx.session.scalar(select(func.count()).select_from(AuditEntry))
    for pattern, problem in [("CU-", "no counter"), ("{0}{0}", "2 counters"), ("{q}{0}", "unknown token {q}"),
                             ("{0", "unbalanced braces")]:
        with pytest.raises(ValidationFailed) as info:
            numbering.set_rule(ctx, "party", pattern)
        assert problem in info.value.errors["pattern"][0]
    with pytest.raises(ValidationFailed) as info:
        numbering.set_rule(ctx, "party", "x" * 101 + "{0}")
    assert "pattern" in info.value.errors
    with pytest.raises(ValidationFailed) as info:
        numbering.set_rule(ctx, "record:spaceship", "S{0}")
    assert "target" in info.value.errors
    ctx.session.rollback()
    assert [(r.target, r.pattern) for r in numbering.list_rules(ctx)] == before
    assert ctx.session.scalar(select(func.count()).select_from(AuditEntry)) == audits


def test_roles(ctx, business, make_user):
    member = make_user(business, "member")
    reader = make_user(business, "read_only")
    with pytest.raises(PermissionDenied):
        numbering.set_rule(member, "party", "X{0}")
    assert len(numbering.list_rules(reader)) == 4


# --------------------------------------------------------------------------------------------
# concurrency: threads, each with its own context and transactions, some rolled back


THREADS = 8
PER_THREAD = 25


def _hammer(crm, slug: str, index: int, codes: list[str], errors: list[BaseException]) -> None:
    try:
        with crm.context(slug, f"owner@{slug}.example") as ctx:
            for i in range(PER_THREAD):
                fail = (index + i) % 4 == 0
                try:
                    code = take(ctx, "party", fail=fail)
                except Rollback:
                    continue
                codes.append(code)
    except BaseException as exc:  # reported by the test
        errors.append(exc)


def test_concurrent_writers_get_consecutive_numbers_without_gaps(crm, ctx, other_ctx):
    codes: list[str] = []
    other_codes: list[str] = []
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_hammer, args=(crm, "acme", i, codes, errors)) for i in range(THREADS)]
    threads.append(threading.Thread(target=_hammer, args=(crm, "globex", 1, other_codes, errors)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert not any(thread.is_alive() for thread in threads)

    committed = sum(1 for t in range(THREADS) for i in range(PER_THREAD) if (t + i) % 4 != 0)
    assert len(codes) == committed
    numbers = sorted(int(re.fullmatch(r"CU2405-(\d{4})", code).group(1)) for code in codes)
    assert numbers == list(range(1, committed + 1))  # no gaps, no duplicates
    assert counters(ctx) == {("party", "2024-05"): committed}
    other_committed = sum(1 for i in range(PER_THREAD) if (1 + i) % 4 != 0)
    assert sorted(other_codes) == [f"CU2405-{n:04d}" for n in range(1, other_committed + 1)]
