"""Reference-code patterns such as ``CU{yy}{mm}-{0000}``: parsing and rendering (pure functions).

Tokens: ``{yyyy}``, ``{yy}``, ``{mm}``, ``{dd}`` and exactly one counter ``{0000}`` (its width is the
number of zeros, 1 to 12; a larger number is written in full, never cut). Literal text may use
letters, digits, spaces and ``/ _ . -``. The counter restarts each period named by the smallest
date token present: none -> never, ``{yy}``/``{yyyy}`` -> every year, ``{mm}`` -> every month,
``{dd}`` -> every day. :func:`period_key` gives the key a counter row is stored under.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from crmcore.errors import ValidationFailed

MAX_PATTERN_LENGTH = 100
#: reference columns hold 40 characters
MAX_CODE_LENGTH = 40
MAX_WIDTH = 12
LITERAL_RE = re.compile(r"^[A-Za-z0-9/_. -]*$")
DATE_TOKENS = {"yyyy": "year", "yy": "year", "mm": "month", "dd": "day"}
_PERIOD_RANK = {"": 0, "year": 1, "month": 2, "day": 3}


@dataclass(frozen=True)
class ParsedPattern:
    """A checked pattern: ``parts`` are ``("text", literal)``, ``("date", token)`` or
    ``("counter", width)``; ``period`` is ``""``, ``"year"``, ``"month"`` or ``"day"``."""

    pattern: str
    parts: tuple[tuple[str, str | int], ...]
    width: int
    period: str


def _fail(problem: str) -> ValidationFailed:
    return ValidationFailed(f"invalid numbering pattern: {problem}", {"pattern": [problem]})


def parse(pattern: str) -> ParsedPattern:
    """Check and split a pattern; ValidationFailed naming the problem."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise _fail("give a pattern, e.g. CU{yy}{mm}-{0000}")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise _fail(f"a pattern has at most {MAX_PATTERN_LENGTH} characters (this one has {len(pattern)})")
    parts: list[tuple[str, str | int]] = []
    widths: list[int] = []
    period = ""
    position = 0
    while position < len(pattern):
        opening = pattern.find("{", position)
        closing = pattern.find("}", position)
        if closing != -1 and (opening == -1 or closing < opening):
            raise _fail(f"unbalanced braces: '}}' at position {closing + 1} closes nothing")
        literal = pattern[position:] if opening == -1 else pattern[position:opening]
        if literal:
            if not LITERAL_RE.match(literal):
                bad = next(ch for ch in literal if not LITERAL_RE.match(ch))
                raise _fail(f"the character {bad!r} is not allowed; use letters, digits, spaces and / _ . -")
            parts.append(("text", literal))
        if opening == -1:
            break
        end = pattern.find("}", opening + 1)
        nested = pattern.find("{", opening + 1)
        if end == -1 or (nested != -1 and nested < end):
            raise _fail(f"unbalanced braces: '{{' at position {opening + 1} is not closed")
        token = pattern[opening + 1:end]
        if token in DATE_TOKENS:
            parts.append(("date", token))
            if _PERIOD_RANK[DATE_TOKENS[token]] > _PERIOD_RANK[period]:
                period = DATE_TOKENS[token]
        elif token and set(token) == {"0"}:
            if len(token) > MAX_WIDTH:
                raise _fail(f"the counter {{{token}}} is {len(token)} digits wide; use 1 to {MAX_WIDTH} zeros")
            widths.append(len(token))
            parts.append(("counter", len(token)))
        else:
            raise _fail(f"unknown token {{{token}}}; use {{yyyy}}, {{yy}}, {{mm}}, {{dd}} and one counter "
                        "such as {0000}")
        position = end + 1
    if not widths:
        raise _fail("the pattern has no counter; add one such as {0000}")
    if len(widths) > 1:
        raise _fail(f"the pattern has {len(widths)} counters; use exactly one")
    parsed = ParsedPattern(pattern=pattern, parts=tuple(parts), width=widths[0], period=period)
    shortest = len(render(parsed, dt.date(2000, 1, 1), 1))
    if shortest > MAX_CODE_LENGTH:
        raise _fail(f"its codes would have {shortest} characters; reference codes hold {MAX_CODE_LENGTH}")
    return parsed


def period_key(parsed: ParsedPattern, when: dt.date) -> str:
    """The counter's period for ``when``: ``""``, ``"2024"``, ``"2024-05"`` or ``"2024-05-31"``."""
    if parsed.period == "year":
        return f"{when.year:04d}"
    if parsed.period == "month":
        return f"{when.year:04d}-{when.month:02d}"
    if parsed.period == "day":
        return f"{when.year:04d}-{when.month:02d}-{when.day:02d}"
    return ""


def render(parsed: ParsedPattern, when: dt.date, n: int) -> str:
    """The code with counter value ``n`` (zero-padded to the width, never truncated)."""
    if n < 0:
        raise ValueError("a counter value is never negative")
    out = []
    for kind, value in parsed.parts:
        if kind == "text":
            out.append(str(value))
        elif kind == "counter":
            out.append(str(n).zfill(int(value)))
        elif value == "yyyy":
            out.append(f"{when.year:04d}")
        elif value == "yy":
            out.append(f"{when.year % 100:02d}")
        elif value == "mm":
            out.append(f"{when.month:02d}")
        else:
            out.append(f"{when.day:02d}")
    return "".join(out)
