"""Figures both sides of the comparison report, and the table that puts them side by side.

Standard library only: the peer's driver (in the peer's virtualenv) writes its figures as JSON
with :meth:`Figure.as_dict`, the project's side reads them back with :meth:`Figure.from_dict`.
Percentiles are taken as ``benchmarks.run.Table.timings`` takes them, so both columns mean the
same thing.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
from collections.abc import Iterable
from typing import Any

#: the rows of the comparison, in print order: key, label (what both sides measure)
ROWS: tuple[tuple[str, str], ...] = (
    ("bulk", "bulk load of N parties (crmcore: import_parties; peer: ORM bulk_create)"),
    ("create_orm", "one-by-one create, service / ORM save (organisation + 1 tag)"),
    ("create_orm_statements", "statements per one-by-one create"),
    ("create_api", "one-by-one create through the API (name, email, address, 1 tag)"),
    ("list_first", "API list, tag + segment filter, limit 10, first page"),
    ("list_deep", "API list, same filter, limit 10, deep page (3/4 in)"),
    ("list_50", "API list, same filter, limit 50, first page"),
    ("statements_10", "statements per API list request, limit 10"),
    ("statements_100", "statements per API list request, limit 100"),
    ("count", "the count query in one list request"),
    ("search_name_prefix", "API name search, prefix terms (40)"),
    ("search_name_substring", "API name search, substring terms"),
    ("search_email_prefix", "API email search, prefix terms (40)"),
    ("search_email_substring", "API email search, substring terms (40)"),
)


@dataclasses.dataclass
class Figure:
    key: str
    median_ms: float | None = None
    p95_ms: float | None = None
    rate: str = ""
    note: str = ""
    #: the 1-minute load average when the figure was taken (the machine is shared)
    load: float | None = None
    count: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Figure:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def p95(samples: Iterable[float]) -> float:
    ordered = sorted(samples)
    if not ordered:
        raise ValueError("no samples")
    return ordered[max(0, int(len(ordered) * 0.95 + 0.5) - 1)]


def timings(key: str, samples: list[float], note: str = "") -> Figure:
    """A figure of ``samples`` in seconds: median and p95 in ms, the load average now."""
    if not samples:
        raise ValueError(f"{key}: no samples")
    return Figure(key, statistics.median(samples) * 1000, p95(samples) * 1000, note=note,
                  load=load_average(), count=len(samples))


def _ms(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def cell(figure: Figure | None) -> str:
    """One side's cell: ``median / p95 ms`` or the rate or the note, and the load average."""
    if figure is None:
        return "n/a"
    if figure.median_ms is not None and figure.p95_ms is not None:
        text = f"{_ms(figure.median_ms)} / {_ms(figure.p95_ms)} ms"
    elif figure.median_ms is not None:  # one observation (a statement's time in one request)
        text = f"{_ms(figure.median_ms)} ms"
    else:
        text = figure.rate or figure.note
    if figure.load is not None:
        text += f" (load {figure.load:.1f})"
    return text


def ratio(core: Figure | None, peer: Figure | None) -> str:
    """peer / crmcore: of medians (time: higher is slower for the peer), of rates for the bulk
    load (inverted, so that here too a higher number means the peer is slower)."""
    if core is None or peer is None:
        return ""
    if core.median_ms and peer.median_ms is not None:
        return f"{peer.median_ms / core.median_ms:.1f}x"
    core_rate, peer_rate = _number(core.rate), _number(peer.rate)
    if core_rate and peer_rate:
        return f"{core_rate / peer_rate:.1f}x"
    core_n, peer_n = _number(core.note), _number(peer.note)
    if core_n and peer_n is not None:
        return f"{peer_n / core_n:.1f}x"
    return ""


def _number(text: str) -> float | None:
    """The first number in ``text`` (``"4,301 parties/s"`` → 4301.0)."""
    digits = ""
    for ch in text:
        if ch.isdigit() or (ch in ",." and digits):
            digits += ch
        elif digits:
            break
    digits = digits.replace(",", "").rstrip(".")
    return float(digits) if digits else None


def side_by_side(core: dict[str, Figure], peer: dict[str, Figure]) -> str:
    """The comparison as a markdown table, one row per :data:`ROWS` key either side has; the
    notes of both sides follow in the last column."""
    out = ["| measurement | crmcore median / p95 | peer median / p95 | peer / crmcore | notes |",
           "| --- | --- | --- | ---: | --- |"]
    for key, label in ROWS:
        c, p = core.get(key), peer.get(key)
        if c is None and p is None:
            continue
        notes = "; ".join(f"{who}: {f.note}" for who, f in (("crmcore", c), ("peer", p)) if _noted(f))
        out.append(f"| {label} | {cell(c)} | {cell(p)} | {ratio(c, p)} | {notes} |")
    return "\n".join(out)


def _noted(figure: Figure | None) -> bool:
    """Whether the figure's note goes to the notes column (else the cell shows it already)."""
    return figure is not None and bool(figure.note) and (figure.median_ms is not None or bool(figure.rate))
