"""The record types this plugin adds: an invoice and a credit note are core records (list pages,
timeline, notes, attachments, custom fields and search come from the core), numbered when issued
(``deferred_reference``): drafts have no number, issued documents have gap-free ones."""

from __future__ import annotations

from crmcore.records.types import RecordType

INVOICE = RecordType("invoice", "Invoice", "Invoices", has_pipeline=False, reference_target="record:invoice",
                     default_pattern="INV{yy}-{0000}", icon="receipt", deferred_reference=True)
CREDIT_NOTE = RecordType("credit_note", "Credit note", "Credit notes", has_pipeline=False,
                         reference_target="record:credit_note", default_pattern="CN{yy}-{0000}",
                         icon="receipt", deferred_reference=True)

TYPES = (INVOICE.key, CREDIT_NOTE.key)
