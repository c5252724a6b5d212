"""The answer of a list page's count endpoint (``/parties/count``, ``/records/<type>/count``).

List pages render their rows without counting (the capped count is most of a filtered page's
cost at a million rows) and crm.js fills ``[data-count-url]`` from this answer afterwards; one
shape for every list, so one piece of JavaScript serves them all.
"""

from __future__ import annotations

from typing import Any

from crmcore.paging import CappedCount


def count_answer(total: CappedCount) -> dict[str, Any]:
    """``{"count": 1000, "capped": true, "text": "1,000+ found"}``: ``text`` is what the page shows."""
    return {"count": total.value, "capped": total.capped, "text": f"{total} found"}
