"""The timeline pages: notes, attachments and reminders posted from party and record pages, the
feed page by page, downloads, and My actions."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import re
import struct
import zlib

import pytest
from flask import g, render_template_string
from sqlalchemy import event, func, select, update

from crmcore.db import utcnow
from crmcore.parties.service import create_party
from crmcore.records.service import create_record
from crmcore.tenancy.models import Business
from crmcore.testing import CrmClient
from crmcore.timeline import service as timeline
from crmcore.timeline import storage
from crmcore.timeline.models import Attachment, Note, Reminder, TimelineEvent

XSS = "<script>alert(1)</script>"
PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"


def png_bytes(width: int = 2, height: int = 2) -> bytes:
    """A real, minimal PNG (signature, IHDR, IDAT, IEND with their CRCs)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


PNG = png_bytes()


def party(ctx, name="Initech"):
    return create_party(ctx, {"name": name})


def record(ctx, party_row, title="Printers deal"):
    return create_record(ctx, "deal", {"title": title, "party_id": party_row.id})


def count(ctx, model, *where):
    ctx.session.rollback()
    return ctx.session.scalar(select(func.count()).select_from(model).where(*where))


def fresh(ctx, model, row_id):
    ctx.session.rollback()
    return ctx.session.get(model, row_id)


def files_on_disk(crm):
    root = crm.config.attachments_path
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def text(response):
    return response.get_data(as_text=True)


def login(app, email) -> CrmClient:
    c = CrmClient(app.test_client())
    assert c.login(email).status_code == 302
    return c


def upload(client, data, name, content_type=None, **targets):
    form = {key: str(value) for key, value in targets.items()}
    form["file"] = (io.BytesIO(data), name, content_type) if content_type else (io.BytesIO(data), name)
    return client.post("/attachments", form, content_type="multipart/form-data")


def expected_back(app, party_id=None, record_id=None):
    with app.test_request_context():
        from flask import url_for

        if record_id is not None and "records.detail" in app.view_functions:
            return url_for("records.detail", record_id=record_id)
        if party_id is not None and "parties.sheet" in app.view_functions:
            return url_for("parties.sheet", party_id=party_id)
    return None


def today_noon_utc() -> dt.datetime:
    now = utcnow()
    return dt.datetime.combine(now.date(), dt.time(0, 1), tzinfo=dt.UTC)


# -- the menu and the plugin hooks ------------------------------------------------------------


def test_my_actions_is_in_the_menu(client):
    page = text(client.get("/actions/mine"))
    assert 'href="/actions/mine"' in page and "My actions" in page
    assert "Nothing overdue." in page and "Nothing due today." in page


# -- notes --------------------------------------------------------------------------------------


def test_add_edit_delete_note_through_the_routes(app, client, ctx):
    p = party(ctx)
    response = client.post("/notes", {"party_id": str(p.id), "body": "Called them about the printers",
                                      "pinned": ["", "1"]}, headers={"Referer": f"http://localhost/somewhere/{p.id}?tab=1"})
    assert response.status_code == 302
    assert response.headers["Location"] == (expected_back(app, p.id) or f"/somewhere/{p.id}?tab=1")
    note = ctx.session.scalars(select(Note)).one()
    assert note.pinned is True and note.author_id == ctx.user_id

    feed = text(client.get(f"/timeline/feed?party_id={p.id}"))
    assert "Called them about the printers" in feed and "Pinned" in feed
    assert f'action="/notes/{note.id}/edit"' in feed and f'action="/notes/{note.id}/delete"' in feed

    response = client.post(f"/notes/{note.id}/edit", {"body": "Called twice", "pinned": "", "party_id": str(p.id)})
    assert response.status_code == 302
    feed = text(client.get(f"/timeline/feed?party_id={p.id}"))
    assert "Called twice" in feed and "Called them about" not in feed and "Pinned</span>" not in feed

    assert client.post(f"/notes/{note.id}/delete", {"party_id": str(p.id)}).status_code == 302
    feed = text(client.get(f"/timeline/feed?party_id={p.id}"))
    assert "Called twice" not in feed and "Initech created" in feed
    assert count(ctx, Note) == 0


def test_note_on_a_record_shows_on_its_feed_and_its_partys(app, client, ctx):
    p = party(ctx)
    r = record(ctx, p)
    response = client.post("/notes", {"record_id": str(r.id), "body": "Needs a demo"})
    assert response.status_code == 302
    assert response.headers["Location"] == expected_back(app, record_id=r.id) or response.headers["Location"] == "/"
    assert "Needs a demo" in text(client.get(f"/timeline/feed?record_id={r.id}"))
    assert "Needs a demo" in text(client.get(f"/timeline/feed?party_id={p.id}"))


def test_redirects_never_leave_the_site(app, client, ctx):
    p = party(ctx)
    response = client.post("/notes", {"party_id": str(p.id), "body": "x"},
                           headers={"Referer": "https://evil.example/phish"})
    assert response.headers["Location"] == (expected_back(app, p.id) or "/")


def test_bad_note_input_is_shown_beside_the_form_and_nothing_is_written(client, ctx):
    p = party(ctx)
    response = client.post("/notes", {"party_id": str(p.id), "body": "   "})
    assert response.status_code == 422
    page = text(response)
    assert "write the note" in page and f'name="party_id" value="{p.id}"' in page
    response = client.post("/notes", {"party_id": "abc", "body": "kept text"})
    assert response.status_code == 422
    assert "not a valid id" in text(response) and "kept text" in text(response)
    response = client.post("/notes", {"body": "no target"})
    assert response.status_code == 422 and "give a party or a record" in text(response)
    response = client.post("/notes", {"party_id": str(p.id), "body": "x" * 20_001})
    assert response.status_code == 422
    response = client.post("/notes/999999/edit", {"body": ""})
    assert response.status_code == 422 and "write the note" in text(response)
    assert count(ctx, Note) == 0


def test_unknown_note_is_404(client):
    assert client.post("/notes/999999/edit", {"body": "x"}).status_code == 404
    assert client.post("/notes/999999/delete").status_code == 404
    assert client.post("/notes", {"party_id": "999999", "body": "x"}).status_code == 404


# -- attachments --------------------------------------------------------------------------------


def test_upload_and_download_png_and_pdf(app, client, ctx, crm):
    p = party(ctx)
    response = upload(client, PNG, "photo.png", "image/png", party_id=p.id)
    assert response.status_code == 302, text(response)
    response = upload(client, PDF, "Résumé final.pdf", "application/pdf", party_id=p.id)
    assert response.status_code == 302, text(response)
    rows = {a.filename: a for a in ctx.session.scalars(select(Attachment))}
    assert set(rows) == {"photo.png", "Résumé final.pdf"}

    feed = text(client.get(f"/timeline/feed?party_id={p.id}"))
    for row in rows.values():
        assert f'href="/attachments/{row.id}"' in feed

    for row, data, kind in ((rows["photo.png"], PNG, "image/png"), (rows["Résumé final.pdf"], PDF, "application/pdf")):
        response = client.get(f"/attachments/{row.id}")
        assert response.status_code == 200
        assert response.data == data
        assert response.mimetype == kind
        assert response.headers["Content-Disposition"] == storage.content_disposition(row)
        assert response.headers["Content-Disposition"].startswith("attachment;")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Content-Security-Policy"].startswith("sandbox")
        response.close()
    assert "filename*=UTF-8''R%C3%A9sum%C3%A9%20final.pdf" in storage.content_disposition(rows["Résumé final.pdf"])
    assert len(files_on_disk(crm)) == 2

    photo_id = rows["photo.png"].id
    assert client.post(f"/attachments/{photo_id}/delete", {"party_id": str(p.id)}).status_code == 302
    assert count(ctx, Attachment) == 1 and len(files_on_disk(crm)) == 1
    assert client.get(f"/attachments/{photo_id}").status_code == 404


def test_html_renamed_pdf_is_refused(client, ctx, crm):
    p = party(ctx)
    response = upload(client, HTML, "invoice.pdf", "application/pdf", party_id=p.id)
    assert response.status_code == 422
    assert "an HTML page, which cannot be attached" in text(response)
    assert count(ctx, Attachment) == 0 and files_on_disk(crm) == []


def test_missing_file_is_422(client, ctx):
    p = party(ctx)
    response = client.post("/attachments", {"party_id": str(p.id)}, content_type="multipart/form-data")
    assert response.status_code == 422 and "choose a file to upload" in text(response)
    response = upload(client, b"", "", party_id=p.id)
    assert response.status_code == 422
    response = upload(client, b"", "empty.txt", party_id=p.id)
    assert response.status_code == 422 and "the file is empty" in text(response)
    assert count(ctx, Attachment) == 0


def test_oversized_upload_is_refused_with_a_clear_message(crm, business, ctx):
    from crmcore.web import create_app

    crm.config = dataclasses.replace(crm.config, attachments_max_bytes=4096)
    app = create_app(crm=crm, testing=True)
    client = login(app, "owner@acme.example")
    p = party(ctx)
    response = upload(client, PNG + b"\x00" * 5000, "big.png", "image/png", party_id=p.id)
    assert response.status_code == 422
    assert "larger than" in text(response)
    assert count(ctx, Attachment) == 0 and count(ctx, TimelineEvent) == count(ctx, TimelineEvent,
                                                                             TimelineEvent.kind != "attachment")
    assert files_on_disk(crm) == []

    # past the request limit werkzeug stops reading before the view runs
    app.config["MAX_CONTENT_LENGTH"] = 8192
    response = upload(client, PNG + b"\x00" * 20_000, "bigger.png", "image/png", party_id=p.id)
    assert response.status_code == 413
    assert "The upload is too large: a file may be at most 4.0 KB. Nothing was saved." in text(response)
    assert count(ctx, Attachment) == 0 and files_on_disk(crm) == []


# -- reminders and My actions -------------------------------------------------------------------


def test_reminders_on_my_actions_and_completed_inline(client, ctx):
    p = party(ctx, "Umbrella")
    r = record(ctx, p, "Fleet renewal")
    overdue = timeline.add_reminder(ctx, title="Send the contract", due_at=utcnow() - dt.timedelta(days=3),
                                    party_id=p.id)
    today = timeline.add_reminder(ctx, title="Call back", due_at=today_noon_utc(), record_id=r.id)
    later = timeline.add_reminder(ctx, title="Check delivery", due_at=utcnow() + dt.timedelta(days=3),
                                  party_id=p.id)
    page = text(client.get("/actions/mine"))
    sections = re.split(r'<section class="card actions-list', page)
    assert "Send the contract" in sections[1] and "Umbrella" in sections[1]
    assert "Call back" in sections[2] and "Fleet renewal" in sections[2]
    assert "Check delivery" in sections[3]
    assert 'data-inline' in page and f'/reminders/{today.id}/complete' in page

    response = client.fetch(f"/reminders/{today.id}/complete", {"view": "actions"})
    assert response.status_code == 200
    fragment = text(response)
    assert fragment.lstrip().startswith('<div class="reminder-row is-done" id="reminder-')
    assert "data-swap" in fragment and "Reopen" in fragment and "Fleet renewal" in fragment
    assert "<html" not in fragment
    assert "Call back" not in text(client.get("/actions/mine"))

    response = client.fetch(f"/reminders/{today.id}/reopen", {"view": "actions"})
    assert response.status_code == 200 and "Complete" in text(response) and "is-done" not in text(response)
    assert "Call back" in text(client.get("/actions/mine"))

    response = client.post(f"/reminders/{overdue.id}/complete", {"view": "actions"})
    assert response.status_code == 302 and response.headers["Location"] == "/actions/mine"
    assert fresh(ctx, Reminder, overdue.id).done_at is not None
    assert fresh(ctx, Reminder, later.id).done_at is None


def test_add_reminder_reads_the_time_in_the_business_time_zone(crm, client, ctx, business):
    with crm.db.transaction(unscoped=True) as session:
        session.execute(update(Business).where(Business.id == business.id).values(timezone="Europe/Berlin"))
    p = party(ctx)
    response = client.post("/reminders", {"title": "Visit", "due_at": "2030-07-01T10:00", "party_id": str(p.id),
                                          "assigned_to_id": str(ctx.user_id), "description": ""})
    assert response.status_code == 302, text(response)
    reminder = ctx.session.scalars(select(Reminder)).one()
    assert reminder.due_at == dt.datetime(2030, 7, 1, 8, 0, tzinfo=dt.UTC)
    assert reminder.description is None
    assert "Visit" in text(client.get(f"/timeline/feed?party_id={p.id}"))


def test_bad_reminder_input_keeps_the_form(client, ctx):
    p = party(ctx)
    response = client.post("/reminders", {"title": "Ring them", "due_at": "next tuesday", "party_id": str(p.id)})
    assert response.status_code == 422
    page = text(response)
    assert "enter a date and time" in page and 'value="Ring them"' in page and 'value="next tuesday"' in page
    response = client.post("/reminders", {"title": "", "due_at": "", "party_id": str(p.id)})
    assert response.status_code == 422
    assert "give the reminder a title" in text(response) and "say when it is due" in text(response)
    response = client.post("/reminders", {"title": "x" * 301, "due_at": "2030-01-01T09:00", "party_id": str(p.id)})
    assert response.status_code == 422 and "title" in text(response)
    response = client.post("/reminders", {"title": "x", "due_at": "9999-12-31T23:59", "party_id": str(p.id)})
    assert response.status_code in (302, 422)
    assert client.post("/reminders", {"title": "x", "due_at": "2030-01-01T09:00",
                                      "assigned_to_id": "-3"}).status_code == 422


def test_my_actions_of_another_user_is_for_admins(app, client, ctx, business, make_user):
    member = make_user(business, "member")
    timeline.add_reminder(ctx, title="For the member", due_at=today_noon_utc(), assigned_to_id=member.user_id)
    page = text(client.get(f"/actions/mine?user_id={member.user_id}"))
    assert "For the member" in page and "Actions of" in page
    assert "For the member" not in text(client.get("/actions/mine"))
    assert client.get("/actions/mine?user_id=abc").status_code == 422
    assert client.get("/actions/mine?user_id=999999").status_code == 404
    member_client = login(app, member.user.email)
    assert "For the member" in text(member_client.get("/actions/mine"))
    assert member_client.get(f"/actions/mine?user_id={ctx.user_id}").status_code == 403
    assert 'name="user_id"' not in text(member_client.get("/actions/mine"))


def test_feed_pages_by_keyset(client, ctx):
    p = party(ctx)
    for i in range(55):
        timeline.add_note(ctx, body=f"note number {i:02}", party_id=p.id)
    first = text(client.get(f"/timeline/feed?party_id={p.id}"))
    assert "note number 54" in first and "note number 00" not in first
    link = re.search(r'<a rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    second = text(client.get(link))
    assert "note number 00" in second and "note number 54" not in second
    assert client.get(f"/timeline/feed?party_id={p.id}&cursor=garbage").status_code == 422
    assert client.get("/timeline/feed").status_code == 422
    assert client.get(f"/timeline/feed?party_id={p.id}&record_id=1").status_code == 422
    assert client.get("/timeline/feed?party_id=x").status_code == 422


def test_panel_macro_renders_for_party_pages(app, crm, ctx):
    from crmcore.tenancy.service import list_members

    p = party(ctx)
    timeline.add_note(ctx, body="From the macro", party_id=p.id)
    timeline.add_reminder(ctx, title="Macro reminder", due_at=utcnow() + dt.timedelta(days=1), party_id=p.id)
    members = list_members(ctx)
    page = timeline.feed(ctx, party_id=p.id)
    source = ('{% from "timeline/panel.html" import timeline_panel %}'
              '{{ timeline_panel(page, party_id=party_id, members=members) }}')
    with app.test_request_context("/parties/1"):
        g.ctx = ctx
        html = render_template_string(source, page=page, party_id=p.id, members=members)
    assert 'enctype="multipart/form-data"' in html
    assert 'action="/notes"' in html and 'action="/attachments"' in html and 'action="/reminders"' in html
    assert "From the macro" in html and "Macro reminder" in html and "Complete" in html
    assert f'<option value="{ctx.user_id}" selected>' in html
    assert "timeline.css" in html


# -- isolation, roles, escaping -----------------------------------------------------------------


def test_other_business_objects_are_not_found_everywhere(crm, client, ctx, other_ctx):
    op = party(other_ctx, "Globex customer")
    orec = record(other_ctx, op, "Globex deal")
    onote = timeline.add_note(other_ctx, body="secret note", party_id=op.id)
    oatt = timeline.add_attachment(other_ctx, filename="secret.pdf", content_type="application/pdf",
                                   stream=io.BytesIO(PDF), party_id=op.id)
    orem = timeline.add_reminder(other_ctx, title="secret reminder", due_at=today_noon_utc(), party_id=op.id)
    mine = party(ctx)

    posts = [
        ("/notes", {"party_id": str(op.id), "body": "x"}),
        ("/notes", {"record_id": str(orec.id), "body": "x"}),
        ("/notes", {"party_id": str(mine.id), "record_id": str(orec.id), "body": "x"}),
        (f"/notes/{onote.id}/edit", {"body": "hacked"}),
        (f"/notes/{onote.id}/delete", {}),
        (f"/attachments/{oatt.id}/delete", {}),
        ("/reminders", {"title": "x", "due_at": "2030-01-01T09:00", "party_id": str(op.id)}),
        ("/reminders", {"title": "x", "due_at": "2030-01-01T09:00", "record_id": str(orec.id)}),
        ("/reminders", {"title": "x", "due_at": "2030-01-01T09:00", "party_id": str(mine.id),
                        "assigned_to_id": str(other_ctx.user_id)}),
        (f"/reminders/{orem.id}/complete", {}),
        (f"/reminders/{orem.id}/reopen", {}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 404, url
    assert client.fetch(f"/reminders/{orem.id}/complete", {"view": "actions"}).status_code == 404
    assert upload(client, PNG, "p.png", "image/png", party_id=op.id).status_code == 404
    assert upload(client, PNG, "p.png", "image/png", record_id=orec.id).status_code == 404
    for url in (f"/attachments/{oatt.id}", f"/timeline/feed?party_id={op.id}", f"/timeline/feed?record_id={orec.id}",
                f"/actions/mine?user_id={other_ctx.user_id}"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "secret" not in text(response)

    assert fresh(other_ctx, Note, onote.id).body == "secret note"
    assert fresh(other_ctx, Reminder, orem.id).done_at is None
    assert fresh(other_ctx, Attachment, oatt.id) is not None
    assert count(ctx, Note) == 0 and count(ctx, Reminder) == 0 and count(ctx, Attachment) == 0


def test_read_only_may_read_but_not_write(app, client, ctx, business, make_user):
    p = party(ctx)
    note = timeline.add_note(ctx, body="visible", party_id=p.id)
    att = timeline.add_attachment(ctx, filename="a.pdf", content_type="application/pdf", stream=io.BytesIO(PDF),
                                  party_id=p.id)
    rem = timeline.add_reminder(ctx, title="due soon", due_at=today_noon_utc(), party_id=p.id)
    reader = make_user(business, "read_only")
    c = login(app, reader.user.email)
    feed = c.get(f"/timeline/feed?party_id={p.id}")
    assert feed.status_code == 200 and "visible" in text(feed)
    assert 'action="/notes"' not in text(feed) and "/complete" not in text(feed)
    download = c.get(f"/attachments/{att.id}")
    assert download.status_code == 200 and download.data == PDF
    download.close()
    assert c.get("/actions/mine").status_code == 200
    posts = [
        ("/notes", {"party_id": str(p.id), "body": "x"}),
        (f"/notes/{note.id}/edit", {"body": "changed"}),
        (f"/notes/{note.id}/delete", {}),
        (f"/attachments/{att.id}/delete", {}),
        ("/reminders", {"title": "x", "due_at": "2030-01-01T09:00", "party_id": str(p.id)}),
        (f"/reminders/{rem.id}/complete", {}),
        (f"/reminders/{rem.id}/reopen", {}),
    ]
    for url, data in posts:
        assert c.post(url, data).status_code == 403, url
    assert c.fetch(f"/reminders/{rem.id}/complete").status_code == 403
    assert upload(c, PNG, "p.png", "image/png", party_id=p.id).status_code == 403
    assert fresh(ctx, Note, note.id).body == "visible"
    assert fresh(ctx, Reminder, rem.id).done_at is None
    assert count(ctx, Note) == 1 and count(ctx, Attachment) == 1


def test_member_cannot_change_someone_elses_note(app, ctx, business, make_user):
    p = party(ctx)
    note = timeline.add_note(ctx, body="the owner's", party_id=p.id)
    member = make_user(business, "member")
    c = login(app, member.user.email)
    assert f"/notes/{note.id}/edit" not in text(c.get(f"/timeline/feed?party_id={p.id}"))
    assert c.post(f"/notes/{note.id}/edit", {"body": "mine now"}).status_code == 403
    assert c.post(f"/notes/{note.id}/delete").status_code == 403


def test_user_text_is_escaped_everywhere(crm, client, ctx, business):
    from crmcore.auth.service import create_user
    from crmcore.tenancy.service import add_member

    create_user(crm, "xss@acme.example", "correct horse battery", name=XSS)
    add_member(ctx, "xss@acme.example", "member")
    xss_user = crm.context(business.id, "xss@acme.example")
    p = party(ctx, f"Party {XSS}")
    timeline.add_note(xss_user, body=f"note {XSS}", party_id=p.id)
    rem = timeline.add_reminder(ctx, title=f"title {XSS}", description=f"desc {XSS}", due_at=today_noon_utc(),
                                party_id=p.id, assigned_to_id=xss_user.user_id)
    timeline.add_reminder(ctx, title=f"mine {XSS}", due_at=today_noon_utc(), party_id=p.id)
    timeline.complete_reminder(ctx, rem.id)
    timeline.reopen_reminder(ctx, rem.id)
    response = upload(client, PNG, 'a&b <img src=x onerror=alert(1)> "q".png', "image/png", party_id=p.id)
    assert response.status_code == 302, text(response)
    xss_user.close()

    pages = [
        text(client.get(f"/timeline/feed?party_id={p.id}")),
        text(client.get("/actions/mine")),
        text(client.get(f"/actions/mine?user_id={xss_user.user_id}")),
        text(client.fetch(f"/reminders/{rem.id}/complete", {"view": "actions"})),
        text(client.post("/notes", {"party_id": str(p.id), "body": "  ", "pinned": XSS})),
        text(client.post("/reminders", {"title": XSS, "due_at": XSS, "description": XSS, "party_id": str(p.id)})),
    ]
    for page in pages:
        assert "<script>" not in page and "<img src=x" not in page
    joined = "\n".join(pages)
    for escaped in (f"note {'&lt;script&gt;'}", "title &lt;script&gt;", "desc &lt;script&gt;",
                    "Party &lt;script&gt;", "mine &lt;script&gt;", "a&amp;b"):
        assert escaped in joined, escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0]  # the author's name in the feed


# -- performance --------------------------------------------------------------------------------


def _statements(crm, client, url):
    seen = []

    def listener(conn, cursor, statement, params, context, executemany):
        seen.append(statement)

    event.listen(crm.db.engine, "before_cursor_execute", listener)
    try:
        response = client.get(url)
    finally:
        event.remove(crm.db.engine, "before_cursor_execute", listener)
    assert response.status_code == 200
    return len(seen)


def _fill(ctx, p, n):
    for i in range(n):
        if i % 3 == 0:
            timeline.add_note(ctx, body=f"note {i}", party_id=p.id)
        elif i % 3 == 1:
            timeline.add_reminder(ctx, title=f"reminder {i}", due_at=utcnow() - dt.timedelta(hours=i), party_id=p.id)
        else:
            timeline.add_attachment(ctx, filename=f"f{i}.png", content_type="image/png", stream=io.BytesIO(PNG),
                                    party_id=p.id)


@pytest.mark.parametrize("url", ["/timeline/feed?party_id={party}", "/actions/mine"])
def test_page_query_count_does_not_grow_with_rows(crm, client, ctx, url):
    small, large = party(ctx, "Small"), party(ctx, "Large")
    _fill(ctx, small, 5)
    few = _statements(crm, client, url.format(party=small.id))
    _fill(ctx, large, 40)
    many = _statements(crm, client, url.format(party=large.id))
    assert few == many
