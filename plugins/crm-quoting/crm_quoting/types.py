"""The record type this plugin adds: a quote is a core record (its page, timeline, notes,
attachments, custom fields, lists and search come from the core), with the plugin's details
and lines beside it. Each quote, each version included, takes its own number from the
``record:quote`` numbering rule."""

from __future__ import annotations

from crmcore.records.types import RecordType

QUOTE = RecordType("quote", "Quote", "Quotes", has_pipeline=False, reference_target="record:quote",
                   default_pattern="QT{yy}-{0000}", icon="file-text")
