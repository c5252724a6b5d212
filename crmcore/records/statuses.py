"""The status a record shows: the core's ``open``/``won``/``lost``, or its plugin's own word.

A record of a type without a pipeline (a quote, an invoice, an order) stays ``open`` to the core
for its whole life; the plugin that provides the type knows it as "sent", "partly paid" or
"fulfilled" (hook ``crm_record_statuses``, contract 1.2). Pages ask once per page for all the
records they show, one hook call per plugin type present, so a list of 100 invoices costs one
query of the invoicing plugin, not 100. A plugin that fails or answers badly leaves the core's
status in place: a status badge is never worth a broken page.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from crmcore.plugins.drivers import available
from crmcore.records.types import GROUP, RecordType

if TYPE_CHECKING:
    from crmcore.context import Context
    from crmcore.records.models import Record

log = logging.getLogger("crmcore.records")

#: a status longer than this is cut (it is a badge, not a sentence)
MAX_STATUS_LENGTH = 40


def _owners(ctx: Context) -> dict[str, str]:
    """Record type key -> the plugin that provides it, for the plugins' types without a pipeline."""
    owners: dict[str, str] = {}
    for driver in available(ctx, GROUP).values():
        obj = driver.obj
        if isinstance(obj, RecordType) and driver.plugin is not None and not obj.has_pipeline:
            owners[obj.key] = driver.plugin
    return owners


def _clean(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())[:MAX_STATUS_LENGTH]
    return text or None


def record_statuses(ctx: Context, records: Iterable[Record]) -> dict[int, str]:
    """``{record_id: status}`` for the given records whose plugin answered; the others show the
    core's ``record.status``. Only the answer of the plugin providing a type counts, and only
    for the ids asked."""
    by_type: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_type[record.type].append(record)
    if not by_type:
        return {}
    owners = _owners(ctx)
    out: dict[int, str] = {}
    for record_type, rows in by_type.items():
        owner = owners.get(record_type)
        if owner is None:
            continue
        asked = {r.id for r in rows}
        for plugin, answer in ctx.collect("crm_record_statuses", record_type=record_type, records=rows):
            if plugin != owner:
                continue
            if not isinstance(answer, dict):
                log.warning("plugin %s answered crm_record_statuses with a %s, not a dict; ignored",
                            plugin, type(answer).__name__)
                continue
            for record_id, status in answer.items():
                text = _clean(status)
                if record_id in asked and text is not None:
                    out[record_id] = text
    return out


def shown_status(record: Record, statuses: dict[int, str]) -> str:
    """What a page shows as ``record``'s status."""
    return statuses.get(record.id, record.status)
