"""Reference-code patterns: parsing, period keys and rendering (pure functions)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from crmcore.errors import ValidationFailed
from crmcore.numbering.pattern import MAX_WIDTH, parse, period_key, render
from crmcore.numbering.service import preview

literals = st.text(alphabet="ABCXYZabc019/_.- ", min_size=0, max_size=4)
date_tokens = st.lists(st.sampled_from(["{yyyy}", "{yy}", "{mm}", "{dd}"]), max_size=3)


@st.composite
def patterns(draw, max_width: int = 6):
    """A valid pattern: literals and date tokens around exactly one counter."""
    width = draw(st.integers(1, max_width))
    pieces = draw(date_tokens) + ["{" + "0" * width + "}"]
    pieces = draw(st.permutations(pieces))
    out = []
    for piece in pieces:
        out.append(draw(literals))
        out.append(piece)
    out.append(draw(literals))
    return "".join(out), width


@settings(deadline=None)
@given(patterns(), st.dates(), st.integers(1, 200))
def test_codes_are_distinct_and_sort_in_order_when_the_width_suffices(pattern_width, day, k):
    pattern, width = pattern_width
    parsed = parse(pattern)
    assert parsed.width == width
    codes = [render(parsed, day, n) for n in range(1, k + 1)]
    assert len(set(codes)) == k
    if k < 10**width:
        assert codes == sorted(codes)
        assert len({len(code) for code in codes}) == 1


@settings(deadline=None)
@given(patterns(), st.dates())
def test_a_wider_number_is_not_truncated(pattern_width, day):
    pattern, width = pattern_width
    parsed = parse(pattern)
    big = 10 ** (width + 2) + 7
    assert str(big) in render(parsed, day, big)


@settings(deadline=None)
@given(patterns(), st.dates(), st.dates())
def test_period_key_follows_the_smallest_date_token(pattern_width, a, b):
    parsed = parse(pattern_width[0])
    same = {
        "": True,
        "year": a.year == b.year,
        "month": (a.year, a.month) == (b.year, b.month),
        "day": a == b,
    }[parsed.period]
    assert (period_key(parsed, a) == period_key(parsed, b)) is same
    assert len(period_key(parsed, a)) <= 16


@settings(deadline=None)
@given(patterns(), st.dates(), st.dates(), st.integers(1, 9999))
def test_codes_of_one_period_differ_only_by_the_counter(pattern_width, a, b, n):
    """Within a period the date parts agree, so one counter keeps codes unique."""
    parsed = parse(pattern_width[0])
    assume(period_key(parsed, a) == period_key(parsed, b))
    assert render(parsed, a, n) == render(parsed, b, n)


@pytest.mark.parametrize("pattern, period, key", [
    ("INV-{0000}", "", ""),
    ("CU{yy}{mm}-{0000}", "month", "2024-05"),
    ("DL{yy}-{0000}", "year", "2024"),
    ("{yyyy}/{0}", "year", "2024"),
    ("{dd}.{0000}", "day", "2024-05-07"),
    ("{mm}{yy}{dd}{000}", "day", "2024-05-07"),
])
def test_periods(pattern, period, key):
    parsed = parse(pattern)
    assert parsed.period == period
    assert period_key(parsed, dt.date(2024, 5, 7)) == key


def test_render_examples():
    day = dt.date(2024, 5, 7)
    assert render(parse("CU{yy}{mm}-{0000}"), day, 42) == "CU2405-0042"
    assert render(parse("{yyyy}/{dd} No {00}"), day, 3) == "2024/07 No 03"
    assert render(parse("X{0}"), day, 12345) == "X12345"
    with pytest.raises(ValueError):
        render(parse("X{0}"), day, -1)


@pytest.mark.parametrize("pattern, problem", [
    ("INV-", "the pattern has no counter; add one such as {0000}"),
    ("{yy}{mm}", "the pattern has no counter"),
    ("{000}-{00}", "the pattern has 2 counters; use exactly one"),
    ("{yy}{week}{000}", "unknown token {week}"),
    ("{}{000}", "unknown token {}"),
    ("{0a0}", "unknown token {0a0}"),
    ("A{000", "unbalanced braces: '{' at position 2 is not closed"),
    ("A{0{00}}", "unbalanced braces: '{' at position 2 is not closed"),
    ("A}{000}", "unbalanced braces: '}' at position 2 closes nothing"),
    ("{000}}", "unbalanced braces: '}' at position 6 closes nothing"),
    ("A#{000}", "the character '#' is not allowed"),
    ("Ä{000}", "the character 'Ä' is not allowed"),
    ("{" + "0" * 13 + "}", "the counter {0000000000000} is 13 digits wide; use 1 to 12 zeros"),
    ("A" * 95 + "{0000}", "a pattern has at most 100 characters (this one has 101)"),
    ("A" * 35 + "{000000}", "its codes would have 41 characters; reference codes hold 40"),
    ("", "give a pattern"),
    ("   ", "give a pattern"),
])
def test_bad_patterns_name_the_problem(pattern, problem):
    with pytest.raises(ValidationFailed) as info:
        parse(pattern)
    assert info.value.errors["pattern"][0].startswith(problem)
    assert problem in info.value.message


@settings(deadline=None)
@given(patterns(), st.sampled_from(["{x}", "{0000}", "{", "}", "{yyy}", "{0 0}", "#", "{{0}}"]), st.data())
def test_breaking_a_valid_pattern_is_refused(pattern_width, breaker, data):
    pattern, _ = pattern_width
    spot = data.draw(st.integers(0, len(pattern)))
    # insert between tokens only, so the breaker is not swallowed into a literal-looking token
    assume(pattern[:spot].count("{") == pattern[:spot].count("}"))
    with pytest.raises(ValidationFailed):
        parse(pattern[:spot] + breaker + pattern[spot:])


def test_max_width_is_accepted():
    assert parse("{" + "0" * MAX_WIDTH + "}").width == MAX_WIDTH


def test_preview():
    assert preview("CU{yy}{mm}-{0000}", dt.date(2024, 5, 7)) == ["CU2405-0001", "CU2405-0002", "CU2405-0003"]
    assert preview("N{0}", dt.datetime(2024, 1, 1, tzinfo=dt.UTC), count=2) == ["N1", "N2"]
    assert len(preview("N{yyyy}{0}")) == 3
    with pytest.raises(ValidationFailed) as info:
        preview("N{0}", count=0)
    assert "count" in info.value.errors
    with pytest.raises(ValidationFailed) as info:
        preview("N-")
    assert "pattern" in info.value.errors
