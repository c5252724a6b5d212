"""The pure pipeline rules, checked with hypothesis (no database)."""

import datetime as dt
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmcore.errors import Conflict, ValidationFailed
from crmcore.pipelines import rules

kinds = st.sampled_from(rules.STAGE_KINDS)
statuses = st.sampled_from(("open", "won", "lost"))


@dataclass
class FakeStage:
    id: int
    pipeline_id: int
    name: str
    kind: str


@given(st.lists(kinds, max_size=12))
def test_kind_problems_iff_a_kind_is_missing(values):
    problems = rules.kind_problems(values)
    assert (not problems) == {"open", "won", "lost"}.issubset(values)
    if problems:
        with pytest.raises(ValidationFailed):
            rules.check_kinds(values)
    else:
        rules.check_kinds(values)


def test_unknown_kind_is_a_problem():
    assert any("unknown" in p for p in rules.kind_problems(["open", "won", "lost", "maybe"]))


@given(st.lists(st.integers(1, 10_000), unique=True, max_size=20), st.randoms())
def test_any_permutation_is_accepted_and_positions_are_0_to_n(ids, rnd):
    wanted = list(ids)
    rnd.shuffle(wanted)
    rules.check_permutation(ids, wanted)
    assert sorted(rules.positions(wanted).values()) == list(range(len(ids)))
    assert [rules.positions(wanted)[i] for i in wanted] == list(range(len(ids)))


@given(st.lists(st.integers(1, 50), unique=True, min_size=1, max_size=10), st.lists(st.integers(1, 60), max_size=12))
def test_anything_but_a_permutation_is_refused(ids, wanted):
    is_permutation = sorted(wanted) == sorted(ids)
    if is_permutation:
        rules.check_permutation(ids, wanted)
    else:
        with pytest.raises(ValidationFailed) as exc:
            rules.check_permutation(ids, wanted)
        assert exc.value.errors["stage_ids"]


@given(st.lists(st.integers(1, 10_000), unique=True, max_size=15), st.one_of(st.none(), st.integers(-3, 20)))
def test_insert_keeps_a_permutation(ids, position):
    new_id = 10_001
    order = rules.insert_at(ids, new_id, position)
    assert sorted(order) == sorted([*ids, new_id])
    assert sorted(rules.positions(order).values()) == list(range(len(ids) + 1))
    if position is not None and 0 <= position < len(ids):
        assert order.index(new_id) == position


@given(st.lists(st.just("open"), min_size=1, max_size=6), st.lists(st.sampled_from(("won", "lost")), max_size=4))
def test_a_new_open_stage_goes_before_the_closing_stages(opens, closings):
    existing = [*opens, *closings]
    assert rules.default_insert_position(existing, "open") == len(opens)
    assert rules.default_insert_position(existing, "won") == len(existing)


@given(statuses, kinds)
def test_move_rules(status, to_kind):
    if status != "open":
        with pytest.raises(Conflict):
            rules.check_move(status, to_kind)
    elif to_kind == "lost":
        with pytest.raises(ValidationFailed) as exc:
            rules.check_move(status, to_kind)
        assert "lost_reason" in exc.value.errors
    else:
        rules.check_move(status, to_kind)


@given(statuses, kinds, st.sampled_from(("won", "lost")))
def test_close_rules(status, to_kind, wanted):
    ok = status == "open" and to_kind == wanted
    if ok:
        rules.check_close(status, to_kind, wanted)
        assert rules.status_for(to_kind) == wanted
    else:
        with pytest.raises((Conflict, ValidationFailed)):
            rules.check_close(status, to_kind, wanted)


@given(statuses, kinds)
def test_reopen_rules(status, to_kind):
    if status != "open" and to_kind == "open":
        rules.check_reopen(status, to_kind)
        assert rules.status_for(to_kind) == "open"
    else:
        with pytest.raises((Conflict, ValidationFailed)):
            rules.check_reopen(status, to_kind)


@given(st.integers(1, 5), st.integers(1, 5))
def test_moves_stay_in_the_pipeline(record_pipeline, stage_pipeline):
    stage = FakeStage(id=7, pipeline_id=stage_pipeline, name="Proposal", kind="open")
    if record_pipeline == stage_pipeline:
        rules.check_same_pipeline((record_pipeline, "Sales"), stage, "Sales")
    else:
        with pytest.raises(ValidationFailed) as exc:
            rules.check_same_pipeline((record_pipeline, "Sales"), stage, "Service")
        assert exc.value.message == "stage 7 belongs to pipeline 'Service', not 'Sales'"


@given(st.datetimes(timezones=st.just(dt.UTC)), st.timedeltas(min_value=dt.timedelta(days=-2),
                                                              max_value=dt.timedelta(days=400)))
def test_durations_are_never_negative(start, delta):
    try:
        end = start + delta
    except OverflowError:
        return
    seconds = rules.seconds_between(start, end)
    assert seconds >= 0
    assert seconds == max(0, int(delta.total_seconds()))
    assert rules.seconds_between(None, end) is None


def test_duplicate_names_ignore_case():
    assert rules.duplicate_names(["Won", "won", "Lost", "New", "NEW", "new"]) == ["Won", "New"]
