"""The bulk import path for parties: rows of a spreadsheet (one party per row, with its emails,
phones, one address, one contact, tags, sales reps and custom values) validated cell by cell and
written in batches with Core ``INSERT`` statements.

Why not call :func:`~crmcore.parties.service.create_party` per row: a form's path costs about ten
statements and a full marshmallow schema load per party; an import of 100,000 rows would take
minutes. Here every lookup (list options, members, tags, custom field definitions, existing
emails) is done once per import or once per batch, each cell goes through the marshmallow field
that checks it (no schema machinery per row), and each table gets one executemany per batch.

All or nothing: the import is one transaction. Every row is checked even after an error, so the
user gets every problem (row number and column) at once; if any row is refused, nothing is
written. ``dry_run=True`` checks without writing.

What a row may hold is :data:`COLUMNS` plus ``custom.<key>`` for each custom field of parties;
several values in one cell (tags, emails, phones, sales reps) are separated by ``;``.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import itertools
import multiprocessing
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import func, insert, select, text

from crmcore.audit import service as audit
from crmcore.auth.models import User
from crmcore.context import use_case
from crmcore.db import utcnow
from crmcore.errors import ValidationFailed, Veto
from crmcore.fields.base import using_env
from crmcore.fields.service import REQUIRED_MESSAGE, field_env, get_field_type, list_fields
from crmcore.lists import service as lists
from crmcore.lists.models import POTENTIAL_LEVEL, PROSPECT_STATUS
from crmcore.lists.schemas import Text
from crmcore.numbering.service import reserve_references
from crmcore.parties import search
from crmcore.parties.models import (
    ADDRESS_PURPOSES,
    PARTY_KINDS,
    Address,
    Contact,
    ContactMechanism,
    Party,
    PartySalesRep,
    PartyTag,
    Tag,
)
from crmcore.parties.normalize import NormalizeError, clean_name, normalize_mechanism, person_name
from crmcore.parties.schemas import PURPOSE_ALIASES, Country, Currency, Language
from crmcore.tenancy.models import Membership, Role

if TYPE_CHECKING:
    from crmcore.context import Context

#: rows written per statement batch: big enough to amortise a round trip, small enough that a
#: batch's lookups (``IN (...)`` lists) stay cheap
BATCH_SIZE = 2000
#: rows with errors reported in full (the count is always exact)
MAX_REPORTED_ROWS = 500
#: separator of several values in one cell
SEPARATOR = ";"
#: mechanism columns: column -> mechanism kind (same name)
MECHANISM_COLUMNS = ("email", "phone", "mobile", "fax", "website")
ON_DUPLICATE = ("error", "skip")


class PartyImportRow(Schema):
    """One spreadsheet row. Every cell is a string (or empty); the fields parse and check it."""

    kind = fields.String(validate=validate.OneOf(PARTY_KINDS))
    name = Text(300)
    first_name = Text(150)
    last_name = Text(150)
    reference = Text(40)
    is_prospect = fields.Boolean()
    is_customer = fields.Boolean()
    is_supplier = fields.Boolean()
    prospect_status = Text(64)
    potential = Text(64)
    tags = Text(4000)
    sales_reps = Text(4000)
    language = Language()
    currency = Currency()
    tax_id = Text(40)
    email = Text(2000)
    phone = Text(2000)
    mobile = Text(2000)
    fax = Text(2000)
    website = Text(2000)
    address_purpose = Text(16)
    address_label = Text(100)
    address_line1 = Text(200)
    address_line2 = Text(200)
    postal_code = Text(20)
    city = Text(100)
    region = Text(100)
    country = Country()
    contact_first_name = Text(150)
    contact_last_name = Text(150)
    contact_job_title = Text(150)
    contact_email = Text(300)
    contact_phone = Text(300)


COLUMNS = tuple(PartyImportRow().fields)
_ADDRESS_COLUMNS = ("address_label", "address_line1", "address_line2", "postal_code", "city", "region", "country")
_CONTACT_COLUMNS = ("contact_first_name", "contact_last_name", "contact_job_title", "contact_email", "contact_phone")


@dataclass
class ImportReport:
    """What an import did (or, with ``dry_run``, would do)."""

    rows: int = 0
    created: int = 0
    skipped: int = 0
    contacts: int = 0
    dry_run: bool = False
    #: the first created party ids, in row order (all of them up to 10,000)
    party_ids: list[int] = field(default_factory=list)


@dataclass
class _Row:
    """A checked row, ready to write."""

    line: int
    party: dict[str, Any]
    tag_keys: dict[str, str]
    rep_ids: list[int]
    mechanisms: list[tuple[str, str, str]]
    address: dict[str, Any] | None
    contact: dict[str, Any] | None
    contact_mechanisms: list[tuple[str, str, str]]


# --------------------------------------------------------------------------------------------
# the business's vocabulary, loaded once per import


class _Lookups:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.statuses = self._options(PROSPECT_STATUS)
        self.potentials = self._options(POTENTIAL_LEVEL)
        active = lists.list_options(ctx, PROSPECT_STATUS)
        self.default_status = active[0].id if active else None
        self.members: dict[str, int] = {}
        for user_id, email in ctx.session.execute(
                select(Membership.user_id, User.email).join(User, User.id == Membership.user_id)):
            self.members[str(user_id)] = user_id
            self.members[email.casefold()] = user_id
        self.tags = {key: tag_id for key, tag_id in ctx.session.execute(select(Tag.name_key, Tag.id))}
        self.new_tags: dict[str, str] = {}
        self.custom = _CustomColumns(ctx)

    def _options(self, list_key: str) -> dict[str, int]:
        """value key, label and id (as text) of every active option -> option id."""
        out: dict[str, int] = {}
        for option in lists.list_options(self.ctx, list_key):
            out[str(option.id)] = option.id
            out[option.label.casefold()] = option.id
            out[option.value.casefold()] = option.id
        return out


class _CustomColumns:
    """The party custom fields, each with its marshmallow field built once."""

    def __init__(self, ctx: Context) -> None:
        self.columns: dict[str, tuple[Any, Any, Any]] = {}
        self.blocked: dict[str, str] = {}
        self.required: list[str] = []
        for definition in list_fields(ctx, "party", include_archived=True):
            if definition.archived_at is not None:
                self.blocked[definition.key] = f"the field {definition.key!r} is archived"
                continue
            try:
                driver = get_field_type(ctx, definition.type)
            except ValidationFailed as exc:
                self.blocked[definition.key] = exc.message
                continue
            self.columns[definition.key] = (definition, driver, driver.marshmallow_field(definition))
            if definition.required:
                self.required.append(definition.key)
        self.multi = {key for key, (d, driver, _f) in self.columns.items() if driver.key == "multi_choice"}
        self.party_refs = {key for key, (d, driver, _f) in self.columns.items() if driver.references == "party"}

    def check(self, cells: Mapping[str, Any], errors: dict[str, list[str]]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key, raw in cells.items():
            column = f"custom.{key}"
            if key in self.blocked:
                errors[column] = [self.blocked[key]]
                continue
            _definition, driver, mm_field = self.columns[key]
            if key in self.multi and isinstance(raw, str):
                raw = [part.strip() for part in raw.split(SEPARATOR) if part.strip()]
            try:
                values[key] = driver.to_storage(mm_field.deserialize(raw))
            except ValidationError as exc:
                errors[column] = _messages(exc)
        for key in self.required:
            if key not in values and f"custom.{key}" not in errors:
                errors[f"custom.{key}"] = [REQUIRED_MESSAGE]
        return values


def _messages(exc: ValidationError) -> list[str]:
    messages = exc.messages
    if isinstance(messages, dict):
        return [str(m) for value in messages.values() for m in (value if isinstance(value, list) else [value])]
    return [str(m) for m in messages]


# --------------------------------------------------------------------------------------------
# checking one row


class _RowChecker:
    def __init__(self, ctx: Context, lookups: _Lookups, header: Iterable[str]) -> None:
        self.ctx = ctx
        self.lookups = lookups
        self.fields = PartyImportRow().fields
        self.currency = ctx.business.currency
        self.vetoable = ctx.wants("crm_before_party_save")
        unknown = [c for c in header if c not in self.fields and not (
            c.startswith("custom.") and (c[7:] in lookups.custom.columns or c[7:] in lookups.custom.blocked))]
        if unknown:
            known = ", ".join([*COLUMNS, *(f"custom.{k}" for k in lookups.custom.columns)])
            raise ValidationFailed(
                f"unknown column{'s' if len(unknown) > 1 else ''}: {', '.join(map(repr, unknown))}",
                {"columns": {c: [f"unknown column; known columns: {known}"] for c in unknown}})

    def check(self, line: int, raw: Mapping[str, Any]) -> tuple[_Row | None, dict[str, list[str]]]:
        errors: dict[str, list[str]] = {}
        cells: dict[str, Any] = {}
        custom_cells: dict[str, Any] = {}
        for column, value in raw.items():
            if value is None or value == "":
                continue
            if not isinstance(column, str):  # csv.DictReader puts surplus cells under None
                errors["_row"] = ["this row has more cells than the header has columns"]
                continue
            if column.startswith("custom."):
                custom_cells[column[7:]] = value
                continue
            fld = self.fields.get(column)
            if fld is None:  # a row with more keys than the header (a ragged CSV line)
                errors[str(column)] = ["unknown column"]
                continue
            try:
                parsed = fld.deserialize(value, column, raw)
            except ValidationError as exc:
                errors[column] = _messages(exc)
                continue
            if parsed is not None:
                cells[column] = parsed
        party = self._party(cells, errors)
        tag_keys = self._tags(cells.get("tags"))
        rep_ids = self._reps(cells.get("sales_reps"), errors)
        address = self._address(cells, errors)
        region = address["country"] if address else None
        mechanisms = self._mechanisms(
            [(kind, cells.get(kind)) for kind in MECHANISM_COLUMNS], region, errors)
        contact, contact_mechanisms = self._contact(cells, region, errors)
        party["custom"] = self.lookups.custom.check(custom_cells, errors) if (
            custom_cells or self.lookups.custom.required) else {}
        if not errors and self.vetoable:
            self._ask_plugins(party, tag_keys, errors)
        if errors:
            return None, errors
        return _Row(line, party, tag_keys, rep_ids, mechanisms, address, contact, contact_mechanisms), errors

    def _ask_plugins(self, party: dict[str, Any], tag_keys: dict[str, str], errors: dict[str, list[str]]) -> None:
        """``crm_before_party_save`` sees an imported party as it sees one from a form (only
        when an enabled plugin implements it: the row object costs time)."""
        changes = {k: [None, v] for k, v in party.items() if v not in (None, False, {}) and k != "name_key"}
        if tag_keys:
            changes["tags"] = [None, list(tag_keys.values())]
        try:
            self.ctx.validate("crm_before_party_save", party=Party(**party), changes=changes, created=True)
        except Veto as exc:
            errors["_row"] = [str(exc)]

    def _party(self, cells: dict[str, Any], errors: dict[str, list[str]]) -> dict[str, Any]:
        kind = cells.get("kind") or ("person" if ("first_name" in cells or "last_name" in cells)
                                     and "name" not in cells else "organisation")
        if kind == "person":
            name = person_name(cells.get("first_name"), cells.get("last_name")) or clean_name(cells.get("name"))
            if not name:
                errors["first_name"] = ["a person needs a first or a last name"]
        else:
            name = clean_name(cells.get("name"))
            if not name:
                errors["name"] = ["an organisation needs a name"]
        is_customer = cells.get("is_customer", False)
        is_supplier = cells.get("is_supplier", False)
        is_prospect = cells.get("is_prospect", not (is_customer or is_supplier))
        status = self._option(self.lookups.statuses, cells.get("prospect_status"), "prospect_status", errors)
        if status is None and "prospect_status" not in cells and is_prospect:
            status = self.lookups.default_status
        return {
            "kind": kind, "name": name, "name_key": name.casefold(),
            "first_name": cells.get("first_name") if kind == "person" else None,
            "last_name": cells.get("last_name") if kind == "person" else None,
            "reference": cells.get("reference"),
            "is_prospect": is_prospect, "is_customer": is_customer, "is_supplier": is_supplier,
            "prospect_status_id": status,
            "potential_id": self._option(self.lookups.potentials, cells.get("potential"), "potential", errors),
            "language": cells.get("language"), "currency": cells.get("currency") or self.currency,
            "tax_id": cells.get("tax_id"),
        }

    @staticmethod
    def _option(options: Mapping[str, int], value: str | None, column: str, errors: dict[str, list[str]]) -> int | None:
        if value is None:
            return None
        found = options.get(value.casefold())
        if found is None:
            errors[column] = [f"{value!r} is not in the list"]
        return found

    @staticmethod
    def _tags(cell: str | None) -> dict[str, str]:
        out: dict[str, str] = {}
        for raw in (cell or "").split(SEPARATOR):
            name = clean_name(raw)
            if name:
                out.setdefault(name.casefold(), name[:80])
        return out

    def _reps(self, cell: str | None, errors: dict[str, list[str]]) -> list[int]:
        out: list[int] = []
        for raw in (cell or "").split(SEPARATOR):
            key = raw.strip().casefold()
            if not key:
                continue
            user_id = self.lookups.members.get(key)
            if user_id is None:
                errors.setdefault("sales_reps", []).append(f"{raw.strip()!r} is not a user of this business")
            elif user_id not in out:
                out.append(user_id)
        return out

    @staticmethod
    def _mechanisms(cells: list[tuple[str, str | None]], region: str | None,
                    errors: dict[str, list[str]]) -> list[tuple[str, str, str]]:
        out: list[tuple[str, str, str]] = []
        seen: set[tuple[str, str]] = set()
        for kind, cell in cells:
            if not cell:
                continue
            for raw in cell.split(SEPARATOR):
                raw = raw.strip()
                if not raw:
                    continue
                try:
                    norm = normalize_mechanism(kind, raw, region)
                except NormalizeError as exc:
                    errors.setdefault(kind, []).append(str(exc))
                    continue
                if (kind, norm.normalized) not in seen and len(norm.value) <= 300 and len(norm.normalized) <= 300:
                    seen.add((kind, norm.normalized))
                    out.append((kind, norm.value, norm.normalized))
        return out

    @staticmethod
    def _address(cells: dict[str, Any], errors: dict[str, list[str]]) -> dict[str, Any] | None:
        if not any(c in cells for c in (*_ADDRESS_COLUMNS, "address_purpose")):
            return None
        purpose = (cells.get("address_purpose") or "billing").strip().lower()
        purpose = PURPOSE_ALIASES.get(purpose, purpose)
        if purpose not in ADDRESS_PURPOSES:
            errors["address_purpose"] = [f"use one of: {', '.join(ADDRESS_PURPOSES)}"]
        if "address_line1" not in cells:
            errors["address_line1"] = ["an address needs its first line"]
        return {"purpose": purpose, "label": cells.get("address_label"), "line1": cells.get("address_line1"),
                "line2": cells.get("address_line2"), "postal_code": cells.get("postal_code"),
                "city": cells.get("city"), "region": cells.get("region"), "country": cells.get("country")}

    def _contact(self, cells: dict[str, Any], region: str | None,
                 errors: dict[str, list[str]]) -> tuple[dict[str, Any] | None, list[tuple[str, str, str]]]:
        if not any(c in cells for c in _CONTACT_COLUMNS):
            return None, []
        name = person_name(cells.get("contact_first_name"), cells.get("contact_last_name"))
        if not name:
            errors["contact_first_name"] = ["a contact needs a first or a last name"]
        found: dict[str, list[str]] = {}
        mechanisms = self._mechanisms([("email", cells.get("contact_email")), ("phone", cells.get("contact_phone"))],
                                      region, found)
        for kind, messages in found.items():
            errors[f"contact_{kind}"] = messages
        return ({"first_name": cells.get("contact_first_name"), "last_name": cells.get("contact_last_name"),
                 "name": name, "name_key": name.casefold(), "job_title": cells.get("contact_job_title")},
                mechanisms)


# --------------------------------------------------------------------------------------------
# the use case


@use_case(Role.ADMIN)
def import_parties(ctx: Context, rows: Iterable[Mapping[str, Any]], *, on_duplicate: str = "error",
                   dry_run: bool = False, batch_size: int = BATCH_SIZE,
                   processes: int | None = None) -> ImportReport:
    """Import parties from ``rows`` (dicts keyed by column, as :class:`csv.DictReader` gives them).

    A party whose email (or reference) is already used by another party, or by an earlier row, is
    a duplicate: ``on_duplicate="error"`` refuses the import naming the row, ``"skip"`` leaves the
    row out and counts it. Raises :class:`ValidationFailed` with ``{"rows": {line: {column:
    [messages]}}}`` (line 2 is the first data row of a file with a header) and writes nothing when
    any row is refused.

    ``processes``: how many worker processes check rows while this one writes (None: one per
    CPU once the file has more than one batch; 0: check here). See :func:`_checked_batches`.
    """
    if on_duplicate not in ON_DUPLICATE:
        raise ValidationFailed(f"unknown on_duplicate {on_duplicate!r}",
                               {"on_duplicate": [f"use one of: {', '.join(ON_DUPLICATE)}"]})
    batch_size = max(1, min(int(batch_size), 10_000))
    report = ImportReport(dry_run=dry_run)
    lookups = _Lookups(ctx)
    writer = _Writer(ctx, lookups)
    errors: dict[int, dict[str, list[str]]] = {}
    bad_rows = 0
    seen_emails: set[str] = set()
    seen_refs: set[str] = set()
    # the search index is filled once at the end (one statement per index) instead of by a
    # trigger per inserted row, which made the import about 3x slower on SQLite
    indexing = contextlib.nullcontext() if dry_run else search.bulk_insert(writer.conn)
    with using_env(field_env(ctx)), indexing:
        for batch in _checked_batches(ctx, lookups, rows, batch_size, processes):
            good: list[_Row] = []
            for line, row, row_errors in batch:
                report.rows += 1
                if row is not None:
                    good.append(row)
                elif row_errors:
                    bad_rows += 1
                    if len(errors) < MAX_REPORTED_ROWS:
                        errors[line] = row_errors
            checked = _drop_duplicates(ctx, good, seen_emails, seen_refs, on_duplicate, errors, report)
            bad_rows += sum(1 for row in checked if row is None)
            kept = [row for row in checked if row is not None]
            if kept and not bad_rows and not dry_run:
                writer.write(kept, report)
            elif not bad_rows:
                report.created += len(kept)
                report.contacts += sum(1 for row in kept if row.contact)
    if bad_rows:
        shown = "" if bad_rows <= len(errors) else f" (the first {len(errors)} are listed)"
        raise ValidationFailed(f"{bad_rows} of {report.rows} rows have errors{shown}; nothing was imported",
                               {"rows": errors})
    if not dry_run and report.created:
        audit.record(ctx, "parties.imported", entity_type="party", changes={
            "rows": report.rows, "created": report.created, "skipped": report.skipped,
            "contacts": report.contacts})
    return report


#: the checker the worker processes use: set before they fork, so it is never pickled
_worker_checker: _RowChecker | None = None
#: batches handed to the workers ahead of the writer (bounds memory: a file is never read whole)
_IN_FLIGHT = 4

Checked = list[tuple[int, "_Row | None", dict[str, list[str]]]]


def _check_batch(batch: list[tuple[int, Any]], checker: _RowChecker | None = None) -> Checked:
    checker = checker or _worker_checker
    assert checker is not None
    out: Checked = []
    for line, raw in batch:
        if not isinstance(raw, Mapping):
            out.append((line, None, {"_row": ["expected a row of named cells"]}))
        else:
            out.append((line, *checker.check(line, raw)))
    return out


def _checked_batches(ctx: Context, lookups: _Lookups, rows: Iterable[Mapping[str, Any]], batch_size: int,
                     processes: int | None) -> Iterator[Checked]:
    """Check rows batch by batch, in worker processes when that pays.

    Checking a cell (marshmallow field, email and phone normalisers) is pure Python and costs
    more than writing it; with workers forked from this process (they inherit the checker and
    the business's vocabulary, nothing is pickled but rows and results) the checks of the next
    batches run on the other cores while this process writes. Not used when a plugin's
    ``crm_before_party_save`` must see each row (it needs this process's transaction), where
    ``fork`` is unavailable, or, unless asked for, from a threaded process (a web server: a
    fork copies locks other threads may hold)."""
    global _worker_checker
    batches = _batches(rows, batch_size)
    first = next(batches, None)
    if first is None:
        return
    header = next((raw.keys() for _line, raw in first if isinstance(raw, Mapping)), ())
    checker = _RowChecker(ctx, lookups, [c for c in header if isinstance(c, str)])
    if processes is None:
        processes = (os.cpu_count() or 1) if (len(first) == batch_size and threading.active_count() == 1) else 0
    if processes < 1 or checker.vetoable or "fork" not in multiprocessing.get_all_start_methods():
        yield _check_batch(first, checker)
        for batch in batches:
            yield _check_batch(batch, checker)
        return
    _worker_checker = checker
    pool = multiprocessing.get_context("fork").Pool(processes)
    try:
        pending: collections.deque[Any] = collections.deque()
        for batch in itertools.chain([first], batches):
            pending.append(pool.apply_async(_check_batch, (batch,)))
            if len(pending) > _IN_FLIGHT:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
    finally:
        pool.terminate()
        pool.join()
        _worker_checker = None


def _batches(rows: Iterable[Mapping[str, Any]], size: int) -> Iterator[list[tuple[int, Mapping[str, Any]]]]:
    batch: list[tuple[int, Mapping[str, Any]]] = []
    for line, row in enumerate(rows, start=2):
        batch.append((line, row))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _drop_duplicates(ctx: Context, rows: list[_Row], seen_emails: set[str], seen_refs: set[str],
                     on_duplicate: str, errors: dict[int, dict[str, list[str]]],
                     report: ImportReport) -> list[_Row | None]:
    """Rows whose party email or reference exists (in the database or an earlier row): skipped
    or refused (None in the result, with the error recorded)."""
    emails = {m[2] for row in rows for m in row.mechanisms if m[0] == "email"}
    refs = {row.party["reference"] for row in rows if row.party["reference"]}
    taken_emails: dict[str, str] = {}
    if emails:
        for normalized, name in ctx.session.execute(
                select(ContactMechanism.normalized, Party.name).join(Party, Party.id == ContactMechanism.party_id)
                .where(ContactMechanism.kind == "email", ContactMechanism.normalized.in_(emails),
                       Party.merged_into_id.is_(None))):
            taken_emails[normalized] = name
    taken_refs = set(ctx.session.scalars(select(Party.reference).where(Party.reference.in_(refs)))) if refs else set()
    out: list[_Row | None] = []
    for row in rows:
        problems: dict[str, list[str]] = {}
        for kind, value, normalized in row.mechanisms:
            if kind != "email":
                continue
            if normalized in taken_emails:
                problems.setdefault("email", []).append(
                    f"{value} is already the email of party {taken_emails[normalized]!r}")
            elif normalized in seen_emails:
                problems.setdefault("email", []).append(f"{value} is also the email of an earlier row")
        ref = row.party["reference"]
        if ref and (ref in taken_refs or ref in seen_refs):
            problems["reference"] = [f"reference {ref!r} is already used"]
        if problems and on_duplicate == "skip":
            report.skipped += 1
            continue
        if problems:
            if len(errors) < MAX_REPORTED_ROWS:
                errors[row.line] = problems
            out.append(None)
            continue
        seen_emails.update(m[2] for m in row.mechanisms if m[0] == "email")
        if ref:
            seen_refs.add(ref)
        out.append(row)
    return out


# --------------------------------------------------------------------------------------------
# writing a batch


class _Writer:
    """One executemany per table per batch. Core statements are not seen by the tenant scope
    layer (it filters ORM statements): every row gets ``business_id`` here explicitly."""

    def __init__(self, ctx: Context, lookups: _Lookups) -> None:
        self.ctx = ctx
        self.lookups = lookups
        self.conn = ctx.session.connection()
        self.business_id = ctx.business_id
        self.dialect = self.conn.dialect.name
        self.written = 0
        self.analyzed_at = 0

    def refresh_statistics(self) -> None:
        """PostgreSQL plans with the table statistics of the import's start: to it a table that
        grew from nothing to 100,000 rows inside this transaction is still empty, and the
        per-batch duplicate lookup turned into a sequential scan (quadratic: an hour for a
        million rows). ANALYZE inside the transaction sees the new rows; run it each time the
        written rows double."""
        if self.dialect != "postgresql" or self.written < max(10_000, 2 * self.analyzed_at):
            return
        self.conn.exec_driver_sql("ANALYZE parties, contact_mechanisms, contacts")
        self.analyzed_at = self.written

    def _ids(self, table: Any, count: int) -> list[int]:
        """Primary keys for ``count`` new rows, taken up front so child rows can point at them
        without a RETURNING round trip per row."""
        if self.dialect == "postgresql":
            return list(self.conn.execute(
                text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
                {"t": table.name, "n": count}).scalars())
        # SQLite: the writing use case holds the database write lock (BEGIN IMMEDIATE), so no
        # other writer can take these ids before the batch is inserted
        top = self.conn.execute(select(func.max(table.c.id))).scalar() or 0
        return list(range(top + 1, top + count + 1))

    def _tag_ids(self, rows: list[_Row], now: dt.datetime) -> None:
        missing = {key: name for row in rows for key, name in row.tag_keys.items() if key not in self.lookups.tags}
        if not missing:
            return
        table = Tag.__table__
        ids = self._ids(table, len(missing))
        self.conn.execute(insert(table), [
            {"id": tag_id, "business_id": self.business_id, "name": name, "name_key": key,
             "created_at": now, "updated_at": now}
            for tag_id, (key, name) in zip(ids, missing.items(), strict=True)])
        self.lookups.tags.update(zip(missing, ids, strict=True))

    def _insert(self, table: Any, rows: list[dict[str, Any]], constant: Mapping[str, Any]) -> None:
        """One executemany of ``rows`` (dicts with the same keys) straight to the driver. The
        column types' bind processors (UTC datetimes, JSON documents) are applied here, and
        only once for the ``constant`` columns every row shares: SQLAlchemy's own executemany
        runs them per row and cell, a third of the write time of an import."""
        dialect = self.conn.dialect
        columns = list(rows[0])
        processors = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns]
        fixed = {name: (proc(constant[name]) if proc else constant[name])
                 for name, proc in zip(columns, processors, strict=True) if name in constant}
        plan = [(name, None if name in fixed else proc) for name, proc in zip(columns, processors, strict=True)]
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        quote = dialect.identifier_preparer.quote
        sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
               f"VALUES ({', '.join([mark] * len(columns))})")
        values = [tuple(fixed[name] if name in fixed else (proc(row[name]) if proc else row[name])
                        for name, proc in plan) for row in rows]
        self.conn.exec_driver_sql(sql, values)

    def write(self, rows: list[_Row], report: ImportReport) -> None:
        ctx, now, business_id = self.ctx, utcnow(), self.business_id
        party_ids = self._ids(Party.__table__, len(rows))
        needed = sum(1 for row in rows if not row.party["reference"])
        references = iter(reserve_references(ctx, "party", needed) or []) if needed else iter(())
        self._tag_ids(rows, now)
        parties, tags, reps, mechanisms, addresses, contacts = [], [], [], [], [], []
        with_contact = [row for row in rows if row.contact is not None]
        contact_ids = iter(self._ids(Contact.__table__, len(with_contact)) if with_contact else [])
        stamp = {"business_id": business_id, "created_at": now, "updated_at": now}
        for party_id, row in zip(party_ids, rows, strict=True):
            party = row.party
            if not party["reference"]:
                party["reference"] = next(references, None)
            parties.append({**party, **stamp, "id": party_id, "created_by_id": ctx.user_id,
                            "archived_at": None, "merged_into_id": None})
            tags.extend({"business_id": business_id, "party_id": party_id, "tag_id": self.lookups.tags[key]}
                        for key in row.tag_keys)
            reps.extend({"business_id": business_id, "party_id": party_id, "user_id": uid} for uid in row.rep_ids)
            mechanisms.extend(_mechanism_rows(row.mechanisms, stamp, party_id=party_id))
            if row.address is not None:
                addresses.append({**row.address, **stamp, "party_id": party_id, "is_default": True})
            if row.contact is not None:
                contact_id = next(contact_ids)
                contacts.append({**row.contact, **stamp, "id": contact_id, "party_id": party_id,
                                 "department": None, "language": None, "notes": None, "custom": {},
                                 "archived_at": None})
                mechanisms.extend(_mechanism_rows(row.contact_mechanisms, stamp, contact_id=contact_id))
        for model, values in ((Party, parties), (PartyTag, tags), (PartySalesRep, reps), (Contact, contacts),
                              (ContactMechanism, mechanisms), (Address, addresses)):
            if values:
                self._insert(model.__table__, values, constant=stamp)
        if ctx.wants("crm_after_party_created"):
            for values in parties:
                ctx.emit("crm_after_party_created", party=Party(**values))
        report.created += len(rows)
        report.contacts += len(contacts)
        self.written += len(rows)
        self.refresh_statistics()
        if len(report.party_ids) < 10_000:
            report.party_ids.extend(party_ids[:10_000 - len(report.party_ids)])


def _mechanism_rows(items: list[tuple[str, str, str]], stamp: Mapping[str, Any], *,
                    party_id: int | None = None, contact_id: int | None = None) -> list[dict[str, Any]]:
    """The first of each kind is the primary one."""
    out = []
    primary: set[str] = set()
    for position, (kind, value, normalized) in enumerate(items):
        out.append({**stamp, "party_id": party_id, "contact_id": contact_id, "kind": kind, "value": value,
                    "normalized": normalized, "label": None, "is_primary": kind not in primary,
                    "position": position})
        primary.add(kind)
    return out
