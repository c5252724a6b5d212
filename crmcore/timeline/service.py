"""Timeline use cases: notes, attachments, reminders and the activity feed.

:func:`log_event` is the plain function every feature calls inside its own use case to add a line
to the feed of a party and/or a record, in the same transaction as the change it reports.

Deleting a note, attachment or reminder also removes the feed lines that point at it (a deleted
note's text must not live on in the feed); the audit log keeps who deleted what.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, select, update

from crmcore import journal
from crmcore.audit import service as audit
from crmcore.context import Context, get_or_404, use_case
from crmcore.db import utcnow
from crmcore.errors import NotFound, PermissionDenied, ValidationFailed
from crmcore.messaging.models import Message
from crmcore.paging import Page, keyset_page
from crmcore.parties.models import Party
from crmcore.records.models import Record
from crmcore.tenancy.models import Membership, Role
from crmcore.timeline import schemas, storage
from crmcore.timeline.models import Attachment, Note, Reminder, TimelineEvent

SUMMARY_MAX = 500
EXCERPT = 80
ACTIONS_CAP = 200
UPCOMING_DAYS = 7

#: feed ``ref_type`` -> model, for :func:`feed`'s ``extra["refs"]``
REF_MODELS: dict[str, type] = {"note": Note, "attachment": Attachment, "reminder": Reminder,
                               "message": Message}  # emails and SMS (crmcore.messaging), live status


# --------------------------------------------------------------------------------------------
# events


_EVENTS = TimelineEvent.__table__
_RECORD_PARTY = select(Record.party_id)


def log_event(ctx: Context, kind: str, summary: str, *, party_id: int | None = None,
              record_id: int | None = None, ref_type: str | None = None, ref_id: int | None = None,
              data: dict[str, Any] | None = None) -> TimelineEvent:
    """Add a feed event to the current transaction; returns a detached copy of the row, without
    its id.

    An event about a record also carries the record's party (looked up when not given), so the
    party's feed shows its records' history without a join. The row is written at commit with the
    transaction's other append-only rows, in one statement (:mod:`crmcore.journal`; every write
    use case logs one, and a round trip of its own cost more than the row); Core statements
    bypass the tenant scope, so ``business_id`` is set here from the context. The rows it points
    at must be flushed already (their ids are what the caller passes).
    """
    if record_id is not None and party_id is None:
        party_id = ctx.session.scalar(_RECORD_PARTY.where(Record.id == record_id))
    values = {
        "business_id": ctx.business_id,  # explicit: Core INSERT, outside the tenant scope
        "party_id": party_id,
        "record_id": record_id,
        "kind": kind[:40],
        "summary": _clip(summary, SUMMARY_MAX),
        "ref_type": ref_type,
        "ref_id": ref_id,
        "actor_id": ctx.user_id,
        "occurred_at": utcnow(),
        "data": dict(data or {}),
    }
    journal.append(ctx.session, _EVENTS, [values])
    return TimelineEvent(**values)


def _clip(text: str, size: int) -> str:
    text = " ".join(text.split()) if size <= EXCERPT else text
    return text if len(text) <= size else text[: size - 1].rstrip() + "…"


def _actor(ctx: Context) -> str:
    if ctx.user is None:
        return "System"
    return ctx.user.name or ctx.user.email.split("@", 1)[0]


def _drop_events(ctx: Context, ref_type: str, ref_id: int) -> None:
    ctx.session.execute(
        delete(TimelineEvent).where(TimelineEvent.ref_type == ref_type, TimelineEvent.ref_id == ref_id)
        .execution_options(synchronize_session=False)
    )


# --------------------------------------------------------------------------------------------
# targets and permissions


def _targets(ctx: Context, party_id: int | None, record_id: int | None) -> tuple[Party | None, Record | None]:
    """Load the party and/or record a timeline item is about; the record's party fills in the
    party when only the record is given."""
    party = get_or_404(ctx, Party, party_id, "party") if party_id is not None else None
    record = get_or_404(ctx, Record, record_id, "record") if record_id is not None else None
    if record is not None and party is not None and record.party_id != party.id:
        message = f"record {record.id} ({record.title!r}) does not belong to party {party.id} ({party.name!r})"
        raise ValidationFailed(message, {"record_id": [message]})
    if record is not None and party is None and record.party_id is not None:
        party = get_or_404(ctx, Party, record.party_id, "party")
    return party, record


def _ids(party: Party | None, record: Record | None) -> dict[str, int | None]:
    return {"party_id": party.id if party else None, "record_id": record.id if record else None}


def _author_or_admin(ctx: Context, owner_id: int | None, what: str, *others: int | None) -> None:
    if ctx.role.allows(Role.ADMIN) or (ctx.user_id is not None and ctx.user_id in (owner_id, *others)):
        return
    raise PermissionDenied(f"only the author of this {what} or an admin may change it")


# --------------------------------------------------------------------------------------------
# notes


@use_case(Role.MEMBER)
def add_note(ctx: Context, *, body: str, party_id: int | None = None, record_id: int | None = None,
             pinned: bool = False) -> Note:
    """A note on a party and/or a record (a record's note also shows on its party)."""
    data = schemas.load(schemas.NoteCreate, {"body": body, "party_id": party_id, "record_id": record_id,
                                             "pinned": pinned}, "note")
    party, record = _targets(ctx, data["party_id"], data["record_id"])
    note = Note(body=data["body"], pinned=data["pinned"], author_id=ctx.user_id, **_ids(party, record))
    ctx.session.add(note)
    ctx.session.flush()
    log_event(ctx, "note", _note_summary(ctx, note), ref_type="note", ref_id=note.id, **_ids(party, record))
    audit.record(ctx, "note.created", note, changes={"party_id": [None, note.party_id],
                                                     "record_id": [None, note.record_id]})
    return note


def _note_summary(ctx: Context, note: Note) -> str:
    return f"Note by {_actor(ctx)}: {_clip(note.body, EXCERPT)}"


@use_case(Role.MEMBER)
def update_note(ctx: Context, note_id: int, *, body: str | None = None, pinned: bool | None = None) -> Note:
    """Edit or (un)pin a note: its author or an admin."""
    given = {k: v for k, v in {"body": body, "pinned": pinned}.items() if v is not None}
    data = schemas.load(schemas.NoteUpdate, given, "note")
    note = get_or_404(ctx, Note, note_id, "note")
    _author_or_admin(ctx, note.author_id, "note")
    changes = {k: [getattr(note, k), v] for k, v in data.items() if getattr(note, k) != v}
    if not changes:
        return note
    for key, value in data.items():
        setattr(note, key, value)
    if "body" in changes:
        ctx.session.execute(
            update(TimelineEvent).where(TimelineEvent.ref_type == "note", TimelineEvent.ref_id == note.id)
            .values(summary=_note_summary(ctx, note)).execution_options(synchronize_session=False)
        )
    audit.record(ctx, "note.updated", note, changes=changes)
    return note


@use_case(Role.MEMBER)
def delete_note(ctx: Context, note_id: int) -> None:
    """Delete a note and its feed line: its author or an admin."""
    note = get_or_404(ctx, Note, note_id, "note")
    _author_or_admin(ctx, note.author_id, "note")
    _drop_events(ctx, "note", note.id)
    audit.record(ctx, "note.deleted", note, changes={"body": [_clip(note.body, EXCERPT), None]})
    ctx.session.delete(note)


# --------------------------------------------------------------------------------------------
# attachments


def _folder(ctx: Context) -> Path:
    return storage.business_dir(ctx.crm.config.attachments_path, ctx.business_id)


@use_case(Role.MEMBER)
def add_attachment(ctx: Context, *, filename: str, content_type: str | None, stream: BinaryIO,
                   party_id: int | None = None, record_id: int | None = None) -> Attachment:
    """Store an uploaded file for a party and/or a record.

    The stream is copied to a temporary file in chunks (stopped past the size limit), its type
    is taken from its bytes and must agree with the declared type and the name's extension. The
    file gets its final name only after its row is flushed, and is removed again if the
    transaction rolls back: a file on disk always has its row, and a failed upload leaves none.
    """
    data = schemas.load(schemas.AttachmentCreate, {"filename": filename, "content_type": content_type,
                                                   "party_id": party_id, "record_id": record_id}, "attachment")
    party, record = _targets(ctx, data["party_id"], data["record_id"])
    name = storage.safe_filename(data["filename"])
    config = ctx.crm.config
    folder = _folder(ctx)
    key = storage.new_storage_key()
    received = storage.receive(stream, folder / f".{key}.part", config.attachments_max_bytes)
    try:
        if received.size == 0:
            raise ValidationFailed("the file is empty", {"file": ["the file is empty"]})
        sniffed = storage.sniff(received.head, received.temp_path, received.is_utf8_text)
        kind = storage.resolve_type(sniffed, storage.normalize_type(data["content_type"]), name,
                                    config.attachments_allowed_types)
        attachment = Attachment(filename=name, content_type=kind, size_bytes=received.size,
                                sha256=received.sha256, storage_key=key, uploaded_by_id=ctx.user_id,
                                **_ids(party, record))
        ctx.session.add(attachment)
        ctx.session.flush()
        final = storage.path_inside(folder, key)
        storage.on_rollback(ctx.session, lambda: storage.remove_quietly(final))
        received.temp_path.replace(final)
    finally:
        received.discard()
    log_event(ctx, "attachment", f"{_actor(ctx)} attached {name} ({_size(received.size)})",
              ref_type="attachment", ref_id=attachment.id, data={"content_type": kind, "size": received.size},
              **_ids(party, record))
    audit.record(ctx, "attachment.created", attachment,
                 changes={"filename": [None, name], "content_type": [None, kind], "size_bytes": [None, received.size]})
    return attachment


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


@use_case(Role.READ_ONLY, write=False)
def open_attachment(ctx: Context, attachment_id: int) -> tuple[Attachment, Path]:
    """The attachment row and the path of its file (checked to lie inside the business folder)."""
    attachment = get_or_404(ctx, Attachment, attachment_id, "attachment")
    try:
        path = storage.path_inside(_folder(ctx), attachment.storage_key)
    except PermissionError as exc:
        raise NotFound(f"the file of attachment {attachment.id} is not available") from exc
    if not path.is_file():
        raise NotFound(f"the file of attachment {attachment.id} ({attachment.filename}) is missing")
    return attachment, path


@use_case(Role.MEMBER)
def delete_attachment(ctx: Context, attachment_id: int) -> None:
    """Delete an attachment (its uploader or an admin); the file goes once the delete commits."""
    attachment = get_or_404(ctx, Attachment, attachment_id, "attachment")
    _author_or_admin(ctx, attachment.uploaded_by_id, "attachment")
    try:
        path: Path | None = storage.path_inside(_folder(ctx), attachment.storage_key)
    except PermissionError:
        path = None
    _drop_events(ctx, "attachment", attachment.id)
    audit.record(ctx, "attachment.deleted", attachment, changes={"filename": [attachment.filename, None]})
    ctx.session.delete(attachment)
    ctx.session.flush()
    if path is not None:
        storage.on_commit(ctx.session, lambda: storage.remove_quietly(path))


# --------------------------------------------------------------------------------------------
# reminders


def _assignee(ctx: Context, user_id: int | None) -> int:
    if user_id is None:
        if ctx.user_id is None:
            raise ValidationFailed("a reminder needs an assignee", {"assigned_to_id": ["required"]})
        return ctx.user_id
    from crmcore.auth.models import User

    found = ctx.session.execute(
        select(Membership.role, User.is_active).join(User, User.id == Membership.user_id)
        .where(Membership.user_id == user_id)
    ).first()
    if found is None:
        raise NotFound(f"user {user_id} is not a member of this business")
    role, active = found
    if not active:
        message = f"user {user_id} is deactivated"
        raise ValidationFailed(message, {"assigned_to_id": [message]})
    if role == Role.READ_ONLY.value:
        message = f"user {user_id} is read-only in this business and cannot act on reminders"
        raise ValidationFailed(message, {"assigned_to_id": [message]})
    return user_id


def _due_text(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _user_name(ctx: Context, user_id: int | None) -> str:
    from crmcore.auth.models import User

    if user_id is not None and user_id == ctx.user_id:
        return _actor(ctx)
    user = ctx.session.get(User, user_id) if user_id is not None else None
    return (user.name or user.email.split("@", 1)[0]) if user is not None else "nobody"


@use_case(Role.MEMBER)
def add_reminder(ctx: Context, *, title: str, due_at: dt.datetime, assigned_to_id: int | None = None,
                 party_id: int | None = None, record_id: int | None = None,
                 description: str | None = None) -> Reminder:
    """A due action for a member (default: the acting user), optionally about a party/record."""
    data = schemas.load(schemas.ReminderCreate, {
        "title": title, "due_at": due_at, "assigned_to_id": assigned_to_id, "party_id": party_id,
        "record_id": record_id, "description": description}, "reminder")
    party, record = _targets(ctx, data["party_id"], data["record_id"])
    assignee = _assignee(ctx, data["assigned_to_id"])
    reminder = Reminder(title=data["title"], description=data["description"] or None,
                        due_at=data["due_at"].astimezone(dt.UTC), assigned_to_id=assignee,
                        created_by_id=ctx.user_id, **_ids(party, record))
    ctx.session.add(reminder)
    ctx.session.flush()
    log_event(ctx, "reminder",
              f"Reminder for {_user_name(ctx, assignee)}: {_clip(reminder.title, EXCERPT)} "
              f"(due {_due_text(reminder.due_at)})",
              ref_type="reminder", ref_id=reminder.id, data={"due_at": reminder.due_at}, **_ids(party, record))
    audit.record(ctx, "reminder.created", reminder,
                 changes={"title": [None, reminder.title], "due_at": [None, reminder.due_at],
                          "assigned_to_id": [None, assignee]})
    return reminder


@use_case(Role.MEMBER)
def complete_reminder(ctx: Context, reminder_id: int) -> Reminder:
    """Mark a reminder done (any member: work is shared). Completing a done one changes nothing."""
    reminder = get_or_404(ctx, Reminder, reminder_id, "reminder")
    if reminder.done_at is not None:
        return reminder
    reminder.done_at = utcnow()
    reminder.done_by_id = ctx.user_id
    log_event(ctx, "reminder_completed", f"{_actor(ctx)} completed: {_clip(reminder.title, EXCERPT)}",
              party_id=reminder.party_id, record_id=reminder.record_id, ref_type="reminder", ref_id=reminder.id)
    audit.record(ctx, "reminder.completed", reminder, changes={"done_at": [None, reminder.done_at]})
    return reminder


@use_case(Role.MEMBER)
def reopen_reminder(ctx: Context, reminder_id: int) -> Reminder:
    """Make a done reminder open again. Reopening an open one changes nothing."""
    reminder = get_or_404(ctx, Reminder, reminder_id, "reminder")
    if reminder.done_at is None:
        return reminder
    audit.record(ctx, "reminder.reopened", reminder, changes={"done_at": [reminder.done_at, None]})
    reminder.done_at = None
    reminder.done_by_id = None
    log_event(ctx, "reminder_reopened", f"{_actor(ctx)} reopened: {_clip(reminder.title, EXCERPT)}",
              party_id=reminder.party_id, record_id=reminder.record_id, ref_type="reminder", ref_id=reminder.id)
    return reminder


@use_case(Role.MEMBER)
def update_reminder(ctx: Context, reminder_id: int, **changes: Any) -> Reminder:
    """Change ``title``, ``due_at``, ``assigned_to_id`` or ``description`` (its creator, its
    assignee or an admin). Only the given fields change; ``description=None`` clears it."""
    data = schemas.load(schemas.ReminderUpdate, changes, "reminder")
    reminder = get_or_404(ctx, Reminder, reminder_id, "reminder")
    _author_or_admin(ctx, reminder.created_by_id, "reminder", reminder.assigned_to_id)
    if "assigned_to_id" in data:
        data["assigned_to_id"] = _assignee(ctx, data["assigned_to_id"])
    if "due_at" in data:
        data["due_at"] = data["due_at"].astimezone(dt.UTC)
    if "description" in data:
        data["description"] = data["description"] or None
    diff = {k: [getattr(reminder, k), v] for k, v in data.items() if getattr(reminder, k) != v}
    for key, value in data.items():
        setattr(reminder, key, value)
    if "due_at" in diff:
        reminder.notified_at = None  # a new due time is announced when it comes
    if diff:
        audit.record(ctx, "reminder.updated", reminder, changes=diff)
    return reminder


@use_case(Role.MEMBER)
def delete_reminder(ctx: Context, reminder_id: int) -> None:
    """Delete a reminder and its feed lines (its creator, its assignee or an admin)."""
    reminder = get_or_404(ctx, Reminder, reminder_id, "reminder")
    _author_or_admin(ctx, reminder.created_by_id, "reminder", reminder.assigned_to_id)
    _drop_events(ctx, "reminder", reminder.id)
    audit.record(ctx, "reminder.deleted", reminder, changes={"title": [reminder.title, None]})
    ctx.session.delete(reminder)


def _zone(tz: str | None, ctx: Context) -> ZoneInfo:
    name = tz or getattr(ctx.business, "timezone", None) or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationFailed(f"unknown time zone {name!r}", {"tz": ["not an IANA time zone name"]}) from exc


@use_case(Role.READ_ONLY, write=False)
def my_actions(ctx: Context, *, user_id: int | None = None, now: dt.datetime | None = None,
               tz: str | None = None) -> dict[str, Any]:
    """Open reminders of a user (default: the acting one) in three lists, earliest due first:
    ``overdue`` (due before today), ``today`` and ``upcoming`` (the next 7 days). "Today" is the
    calendar day in ``tz`` (an IANA name; default: the business's time zone). Each list holds at
    most 200; ``more[<list>]`` says when there are more. ``parties`` and ``records`` map the ids
    the reminders are about to their rows (one query each), so a page can link them by name."""
    zone = _zone(tz, ctx)
    now = now or utcnow()
    if now.tzinfo is None:
        raise ValidationFailed("now must carry a time zone", {"now": ["naive datetime"]})
    if user_id is None:
        if ctx.user_id is None:
            raise ValidationFailed("say whose actions to list", {"user_id": ["required without a user"]})
        user_id = ctx.user_id
    elif user_id != ctx.user_id and ctx.session.scalar(
            select(Membership.id).where(Membership.user_id == user_id)) is None:
        raise NotFound(f"user {user_id} is not a member of this business")
    today = now.astimezone(zone).date()
    start = _local_midnight(today, zone)
    tomorrow = _local_midnight(today + dt.timedelta(days=1), zone)
    horizon = _local_midnight(today + dt.timedelta(days=1 + UPCOMING_DAYS), zone)
    out: dict[str, Any] = {"more": {}, "today_date": today, "timezone": zone.key}
    for name, low, high in (("overdue", None, start), ("today", start, tomorrow), ("upcoming", tomorrow, horizon)):
        stmt = select(Reminder).where(Reminder.assigned_to_id == user_id, Reminder.done_at.is_(None),
                                      Reminder.due_at < high)
        if low is not None:
            stmt = stmt.where(Reminder.due_at >= low)
        rows = list(ctx.session.scalars(stmt.order_by(Reminder.due_at, Reminder.id).limit(ACTIONS_CAP + 1)))
        out[name] = rows[:ACTIONS_CAP]
        out["more"][name] = len(rows) > ACTIONS_CAP
    out["parties"], out["records"] = _subjects(ctx, [r for name in ("overdue", "today", "upcoming")
                                                     for r in out[name]])
    return out


def _subjects(ctx: Context, reminders: list[Reminder]) -> tuple[dict[int, Party], dict[int, Record]]:
    """The parties and records ``reminders`` are about, one IN query per table (no N+1)."""
    party_ids = {r.party_id for r in reminders if r.party_id is not None}
    record_ids = {r.record_id for r in reminders if r.record_id is not None}
    parties = {p.id: p for p in ctx.session.scalars(select(Party).where(Party.id.in_(party_ids)))} if party_ids else {}
    records = {r.id: r for r in ctx.session.scalars(select(Record).where(Record.id.in_(record_ids)))} \
        if record_ids else {}
    return parties, records


def _local_midnight(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=zone).astimezone(dt.UTC)


# --------------------------------------------------------------------------------------------
# the feed


@use_case(Role.READ_ONLY, write=False)
def feed(ctx: Context, *, party_id: int | None = None, record_id: int | None = None,
         kinds: Iterable[str] | None = None, cursor: str | None = None, limit: int | None = 50) -> Page[TimelineEvent]:
    """One page of the feed of a party (including its records' events) or of a record, newest
    first. ``extra["refs"]`` maps ref type -> id -> the note/attachment/reminder shown, and
    ``extra["actors"]`` id -> user, each loaded with one query."""
    if isinstance(kinds, str):
        kinds = [kinds]
    data = schemas.load(schemas.FeedQuery, {"party_id": party_id, "record_id": record_id,
                                            "kinds": list(kinds) if kinds is not None else None}, "feed")
    stmt = select(TimelineEvent)
    if data["party_id"] is not None:
        get_or_404(ctx, Party, data["party_id"], "party")
        stmt = stmt.where(TimelineEvent.party_id == data["party_id"])
    else:
        get_or_404(ctx, Record, data["record_id"], "record")
        stmt = stmt.where(TimelineEvent.record_id == data["record_id"])
    if data["kinds"]:
        stmt = stmt.where(TimelineEvent.kind.in_(sorted(set(data["kinds"]))))
    page = keyset_page(ctx.session, stmt, [TimelineEvent.occurred_at, TimelineEvent.id],
                       cursor=cursor, limit=limit, descending=True)
    page.extra["refs"] = _load_refs(ctx, page.items)
    page.extra["actors"] = _load_actors(ctx, page.items)
    return page


def _load_refs(ctx: Context, events: list[TimelineEvent]) -> dict[str, dict[int, Any]]:
    wanted: dict[str, set[int]] = defaultdict(set)
    for event in events:
        if event.ref_type in REF_MODELS and event.ref_id is not None:
            wanted[event.ref_type].add(event.ref_id)
    refs: dict[str, dict[int, Any]] = {name: {} for name in REF_MODELS}
    for name, ids in wanted.items():
        model: Any = REF_MODELS[name]
        refs[name] = {row.id: row for row in ctx.session.scalars(select(model).where(model.id.in_(ids)))}
    return refs


def _load_actors(ctx: Context, events: list[TimelineEvent]) -> dict[int, Any]:
    from crmcore.auth.models import User

    ids = {e.actor_id for e in events if e.actor_id is not None}
    if not ids:
        return {}
    return {u.id: u for u in ctx.session.scalars(select(User).where(User.id.in_(ids)))}
