"""The rules of pipelines and stage moves, as pure functions over plain values.

They touch no database, so the service calls them with rows and the tests (hypothesis among
them) call them with simple objects. Each raises a :mod:`crmcore.errors` type whose message names
what is wrong; nothing else has side effects.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Protocol

from crmcore.errors import Conflict, ValidationFailed

OPEN, WON, LOST = "open", "won", "lost"
STAGE_KINDS = (OPEN, WON, LOST)
CLOSING_KINDS = (WON, LOST)


class StageLike(Protocol):
    """What the rules need to know about a stage (a ``Stage`` row or any simple object)."""

    id: int
    pipeline_id: int
    name: str
    kind: str


# ---------------------------------------------------------------------------------------------
# shape of a pipeline


def kind_problems(kinds: Iterable[str]) -> list[str]:
    """What the active stages of a pipeline lack: at least one open, one won and one lost stage."""
    seen = Counter(kinds)
    problems = []
    unknown = sorted(k for k in seen if k not in STAGE_KINDS)
    if unknown:
        problems.append(f"unknown stage kind {', '.join(map(repr, unknown))}; use open, won or lost")
    if not seen[OPEN]:
        problems.append("a pipeline needs at least one open stage")
    if not seen[WON]:
        problems.append("a pipeline needs at least one won stage")
    if not seen[LOST]:
        problems.append("a pipeline needs at least one lost stage")
    return problems


def check_kinds(kinds: Iterable[str], *, field: str = "stages") -> None:
    """Raise ValidationFailed on ``field`` unless :func:`kind_problems` finds nothing."""
    problems = kind_problems(kinds)
    if problems:
        raise ValidationFailed("the pipeline's stages are incomplete", {field: problems})


def duplicate_names(names: Iterable[str]) -> list[str]:
    """Names used more than once (compared case-insensitively), in first-seen order."""
    seen: dict[str, int] = {}
    firsts: dict[str, str] = {}
    for name in names:
        key = name.casefold()
        seen[key] = seen.get(key, 0) + 1
        firsts.setdefault(key, name)
    return [firsts[k] for k, n in seen.items() if n > 1]


# ---------------------------------------------------------------------------------------------
# positions


def check_permutation(current: Sequence[int], wanted: Sequence[int], *, field: str = "stage_ids") -> None:
    """``wanted`` must list every id of ``current`` exactly once and nothing else."""
    errors = []
    counts = Counter(wanted)
    twice = sorted(i for i, n in counts.items() if n > 1)
    missing = sorted(set(current) - set(wanted))
    extra = sorted(set(wanted) - set(current))
    if twice:
        errors.append(f"listed more than once: {', '.join(map(str, twice))}")
    if missing:
        errors.append(f"missing: {', '.join(map(str, missing))}")
    if extra:
        errors.append(f"not active stages of this pipeline: {', '.join(map(str, extra))}")
    if errors:
        raise ValidationFailed("give every active stage of the pipeline exactly once", {field: errors})


def positions(ordered_ids: Sequence[int]) -> dict[int, int]:
    """Positions 0..n-1 for ids in the given order."""
    return {stage_id: index for index, stage_id in enumerate(ordered_ids)}


def insert_at(ordered_ids: Sequence[int], new_id: int, position: int | None) -> list[int]:
    """``ordered_ids`` with ``new_id`` inserted at ``position`` (clamped; None: at the end)."""
    out = list(ordered_ids)
    if position is None or position >= len(out):
        out.append(new_id)
    else:
        out.insert(max(position, 0), new_id)
    return out


def default_insert_position(kinds: Sequence[str], new_kind: str) -> int:
    """Where a new stage goes when the admin gives no position: an open stage right after the
    last open stage (so before the closing stages), a closing stage at the end."""
    if new_kind != OPEN:
        return len(kinds)
    last_open = max((i for i, kind in enumerate(kinds) if kind == OPEN), default=-1)
    return last_open + 1


# ---------------------------------------------------------------------------------------------
# moves


def status_for(kind: str) -> str:
    """The record status a stage kind means: open, won or lost."""
    if kind not in STAGE_KINDS:
        raise ValueError(f"unknown stage kind {kind!r}")
    return kind


def check_same_pipeline(record_pipeline: tuple[int, str], stage: StageLike, stage_pipeline_name: str,
                        *, field: str = "stage_id") -> None:
    """A record moves only between stages of its own pipeline.

    ``record_pipeline`` is (id, name) of the record's pipeline.
    """
    pipeline_id, pipeline_name = record_pipeline
    if stage.pipeline_id != pipeline_id:
        raise ValidationFailed(
            f"stage {stage.id} belongs to pipeline {stage_pipeline_name!r}, not {pipeline_name!r}",
            {field: [f"stage {stage.name!r} belongs to pipeline {stage_pipeline_name!r}, "
                     f"not to the record's pipeline {pipeline_name!r}"]},
        )


def check_move(status: str, to_kind: str, *, what: str = "record") -> None:
    """A plain move: an open record into another open stage (closing has its own rules)."""
    if status != OPEN:
        raise Conflict(f"{what} is {status}; reopen it before moving it")
    if to_kind == LOST:
        raise ValidationFailed(f"moving {what} into a lost stage needs a lost reason",
                               {"lost_reason": ["required to close as lost"]})


def check_close(status: str, to_kind: str, wanted: str, *, what: str = "record",
                field: str = "stage_id") -> None:
    """Closing: an open record into a stage of the wanted closing kind (won or lost)."""
    if wanted not in CLOSING_KINDS:
        raise ValueError(f"cannot close as {wanted!r}")
    if status != OPEN:
        raise Conflict(f"{what} is already {status}")
    if to_kind != wanted:
        raise ValidationFailed(f"closing as {wanted} needs a {wanted} stage",
                               {field: [f"this is a {to_kind} stage, not a {wanted} stage"]})


def check_reopen(status: str, to_kind: str, *, what: str = "record", field: str = "stage_id") -> None:
    """Reopening: a won or lost record into an open stage."""
    if status == OPEN:
        raise Conflict(f"{what} is open; only a won or lost record can be reopened")
    if to_kind != OPEN:
        raise ValidationFailed("a record is reopened into an open stage",
                               {field: [f"this is a {to_kind} stage, not an open stage"]})


def seconds_between(start: dt.datetime | None, end: dt.datetime) -> int | None:
    """Whole seconds from ``start`` to ``end``, never negative (clocks of several machines may
    disagree by a little); None when ``start`` is unknown."""
    if start is None:
        return None
    return max(0, int((end - start).total_seconds()))
