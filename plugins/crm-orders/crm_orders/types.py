"""The record types this plugin adds. An order is a core record (its page, timeline, notes,
attachments, custom fields, lists and search come from the core) with the plugin's details and
lines beside it. Each type numbers from its own rule (``record:sales_order``,
``record:loaner_order``), seeded with the patterns below the first time a code is taken."""

from __future__ import annotations

from crmcore.records.types import RecordType

SALES_ORDER = RecordType("sales_order", "Sales order", "Sales orders", has_pipeline=False,
                         reference_target="record:sales_order", default_pattern="SO{yy}-{0000}", icon="package")
LOANER_ORDER = RecordType("loaner_order", "Loaner order", "Loaner orders", has_pipeline=False,
                          reference_target="record:loaner_order", default_pattern="LO{yy}-{0000}", icon="repeat")

#: record type key -> the order kind it holds
KIND_OF = {SALES_ORDER.key: "sales", LOANER_ORDER.key: "loaner"}
#: order kind -> its record type
TYPE_OF = {kind: key for key, kind in KIND_OF.items()}
TYPES = tuple(KIND_OF)
