"""Record types: what kinds of records a business can hold.

The core's four types are declared in the ``crmcore.record_types`` entry-point group of the
core distribution (always available); a plugin adds its own (quote, order, invoice, ...) in the
same group of its distribution, and its types exist in a business only while the plugin is
enabled there (see :mod:`crmcore.plugins.drivers`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crmcore.errors import ValidationFailed
from crmcore.plugins.drivers import available

if TYPE_CHECKING:
    from crmcore.context import Context

log = logging.getLogger("crmcore.records")

GROUP = "crmcore.record_types"


@dataclass(frozen=True)
class RecordType:
    """A kind of record.

    ``reference_target`` is the numbering target (``record:<key>``) its reference codes come
    from; ``default_pattern`` is the numbering pattern seeded for it (None: no reference codes
    unless an admin adds a rule): the core's types get theirs when a business is created, a
    plugin's type when its first code is taken while the business has no rule at all for the
    target (an admin's rule, active or not, is never replaced). A type without a pipeline has no
    stages and cannot be moved, won or lost.

    ``deferred_reference``: a new record gets no code; its plugin gives it one later with
    :func:`crmcore.records.service.assign_reference` (an invoice is numbered when it is issued,
    so issued invoices have gap-free numbers and drafts take none).
    """

    key: str
    label: str
    plural: str
    has_pipeline: bool = True
    reference_target: str = ""
    default_pattern: str | None = None
    icon: str = ""
    deferred_reference: bool = False


LEAD = RecordType("lead", "Lead", "Leads", reference_target="record:lead",
                  default_pattern="LD{yy}-{0000}", icon="funnel")
DEAL = RecordType("deal", "Deal", "Deals", reference_target="record:deal",
                  default_pattern="DL{yy}-{0000}", icon="handshake")
INCIDENT = RecordType("incident", "Incident", "Incidents", reference_target="record:incident",
                      default_pattern="IN{yy}-{0000}", icon="lifebuoy")
ACTION = RecordType("action", "Action", "Actions", reference_target="record:action",
                    default_pattern=None, icon="check")

#: the core's own types, in the order pages list them
CORE_TYPES: tuple[RecordType, ...] = (LEAD, DEAL, INCIDENT, ACTION)


def record_types(ctx: Context) -> dict[str, RecordType]:
    """The record types usable in ctx's business: the core's, and those of enabled plugins."""
    out: dict[str, RecordType] = {}
    for name, driver in available(ctx, GROUP).items():
        obj = driver.obj
        if not isinstance(obj, RecordType):
            log.error("record type %s of %s is a %s, not a RecordType; ignored", name,
                      driver.distribution or driver.plugin, type(obj).__name__)
            continue
        out[obj.key] = obj
    return out


def get_record_type(ctx: Context, key: str) -> RecordType:
    """The record type ``key``; ValidationFailed (on ``type``) when unknown or not enabled here."""
    types = record_types(ctx)
    found = types.get(key) if isinstance(key, str) else None
    if found is None:
        known = ", ".join(sorted(types))
        raise ValidationFailed(f"unknown record type {key!r}",
                               {"type": [f"{key!r} is not a record type of this business; use one of {known}"]})
    return found
