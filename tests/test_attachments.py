"""Attachments: safe names, sniffed types, size limit, files that follow their transaction."""

import dataclasses
import hashlib
import io
import zipfile
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from crmcore.config import Config
from crmcore.context import use_case
from crmcore.errors import NotFound, PermissionDenied, ValidationFailed
from crmcore.parties.models import Party
from crmcore.records.models import Record
from crmcore.tenancy.models import Role
from crmcore.timeline import service as timeline
from crmcore.timeline import storage
from crmcore.timeline.models import Attachment, TimelineEvent

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 32
GIF = b"GIF89a" + b"\x00" * 32
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 32
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 64
ELF = b"\x7fELF\x02\x01\x01" + b"\x00" * 64
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
SVG = b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>"
CSV = "name,city\nJosé,Zürich\n".encode()


def _zip(members, *, first=None):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        if first:
            archive.writestr(first[0], first[1], compress_type=zipfile.ZIP_STORED)
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


DOCX = _zip({"[Content_Types].xml": "<Types/>", "word/document.xml": "<w:document/>"})
XLSX = _zip({"[Content_Types].xml": "<Types/>", "xl/workbook.xml": "<workbook/>"})
ODT = _zip({"content.xml": "<office/>"}, first=("mimetype", "application/vnd.oasis.opendocument.text"))
ZIP = _zip({"a.txt": "hello"})


def party(ctx, name="Acme Corp"):
    row = Party(kind="organisation", name=name, name_key=name.casefold())
    ctx.session.add(row)
    ctx.session.commit()
    return row


def count(ctx, model):
    ctx.session.rollback()
    return ctx.session.scalar(select(func.count()).select_from(model))


def files_on_disk(crm):
    root = crm.config.attachments_path
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def classify(tmp_path, data, name, declared, allowed=None):
    """What add_attachment decides about these bytes, without a database."""
    received = storage.receive(io.BytesIO(data), tmp_path / "upload.part", 10_000_000)
    try:
        sniffed = storage.sniff(received.head, received.temp_path, received.is_utf8_text)
        allowed = allowed or Config(instance_path=tmp_path).attachments_allowed_types
        return storage.resolve_type(sniffed, storage.normalize_type(declared), storage.safe_filename(name), allowed)
    finally:
        received.discard()


def upload(ctx, data, filename="file.pdf", content_type=None, **kwargs):
    if "party_id" not in kwargs and "record_id" not in kwargs:
        kwargs["party_id"] = ctx.session.scalar(select(Party.id)) or party(ctx).id
    return timeline.add_attachment(ctx, filename=filename, content_type=content_type,
                                   stream=io.BytesIO(data), **kwargs)


# -- storing -----------------------------------------------------------------------------------


def test_upload_stores_under_random_key_with_hash_and_event(ctx, crm):
    att = upload(ctx, PDF, "Contract 2024.pdf", "application/pdf")
    assert att.content_type == "application/pdf" and att.size_bytes == len(PDF)
    assert att.sha256 == hashlib.sha256(PDF).hexdigest()
    assert att.filename == "Contract 2024.pdf" and "Contract" not in att.storage_key
    [path] = files_on_disk(crm)
    assert path == crm.config.attachments_path / str(ctx.business_id) / att.storage_key
    assert path.read_bytes() == PDF
    row, opened = timeline.open_attachment(ctx, att.id)
    assert opened == path and row.id == att.id
    [ev] = timeline.feed(ctx, party_id=att.party_id).items
    assert ev.kind == "attachment" and ev.ref_id == att.id and "attached Contract 2024.pdf" in ev.summary


@pytest.mark.parametrize("data, name, declared, expected", [
    (PDF, "a.pdf", "application/pdf", "application/pdf"),
    (PDF, "a.pdf", None, "application/pdf"),
    (PDF, "a.PDF", "application/octet-stream", "application/pdf"),
    (PDF, "no extension", "Application/PDF; charset=binary", "application/pdf"),
    (PNG, "p.png", "image/png", "image/png"),
    (JPEG, "p.jpeg", "image/jpeg", "image/jpeg"),
    (GIF, "p.gif", None, "image/gif"),
    (WEBP, "p.webp", None, "image/webp"),
    (DOCX, "letter.docx", storage.DOCX, storage.DOCX),
    (XLSX, "sheet.xlsx", None, storage.XLSX),
    (ODT, "text.odt", None, storage.ODT),
    (ZIP, "bundle.zip", "application/zip", "application/zip"),
    (CSV, "list.csv", "application/vnd.ms-excel", "text/csv"),
    (CSV, "list.txt", "text/plain", "text/plain"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, "old.doc", None, "application/msword"),
])
def test_type_is_sniffed(tmp_path, data, name, declared, expected):
    assert classify(tmp_path, data, name, declared) == expected


@pytest.mark.parametrize("data, name, declared, reason", [
    (EXE, "invoice.pdf", "application/pdf", "Windows executable"),
    (EXE, "setup.exe", None, "Windows executable"),
    (ELF, "tool.pdf", None, "Linux executable"),
    (HTML, "invoice.pdf", "application/pdf", "HTML page"),
    (HTML, "page.txt", "text/plain", "HTML page"),
    (SVG, "logo.png", "image/png", "SVG"),
    (b"#!/bin/sh\nrm -rf /\n", "notes.txt", None, "shell script"),
    (b"\x00\x01\x02garbage", "data.pdf", None, "unknown type"),
    (PNG, "photo.pdf", None, "named *.pdf"),
    (PDF, "doc.pdf", "image/png", "sent as image/png"),
    (PDF, "report.exe", None, "named *.exe"),
    (CSV, "list.pdf", None, "named *.pdf"),
    (ZIP, "letter.docx", None, "named *.docx"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, "thing.msi", None, "unknown type"),
])
def test_contradicting_or_dangerous_content_is_refused(tmp_path, data, name, declared, reason):
    with pytest.raises(ValidationFailed) as exc:
        classify(tmp_path, data, name, declared)
    assert reason in exc.value.message and "file" in exc.value.errors


def test_renamed_executable_refused_end_to_end(ctx, crm):
    p = party(ctx)
    for data, name, declared in ((EXE, "invoice.pdf", "application/pdf"), (HTML, "invoice.pdf", None),
                                 (PNG, "photo.pdf", "application/pdf")):
        with pytest.raises(ValidationFailed):
            upload(ctx, data, name, declared, party_id=p.id)
    assert files_on_disk(crm) == [] and count(ctx, Attachment) == 0 and count(ctx, TimelineEvent) == 0


def test_type_not_in_allowed_list_is_refused(ctx, crm):
    crm.config = dataclasses.replace(crm.config, attachments_allowed_types=("application/pdf",))
    with pytest.raises(ValidationFailed, match="does not accept"):
        upload(ctx, PNG, "p.png")
    assert upload(ctx, PDF, "a.pdf").content_type == "application/pdf"


def test_oversized_upload_refused_nothing_left(ctx, crm):
    crm.config = dataclasses.replace(crm.config, attachments_max_bytes=1024 * 1024)
    big = PDF + b"0" * (1024 * 1024)
    with pytest.raises(ValidationFailed, match="larger than the 1 MB limit"):
        upload(ctx, big, "big.pdf")
    assert files_on_disk(crm) == [] and count(ctx, Attachment) == 0 and count(ctx, TimelineEvent) == 0
    exact = PDF + b"0" * (1024 * 1024 - len(PDF))
    assert upload(ctx, exact, "exact.pdf").size_bytes == 1024 * 1024


def test_oversized_stream_is_not_read_to_the_end(ctx, crm):
    crm.config = dataclasses.replace(crm.config, attachments_max_bytes=100_000)

    class Endless(io.RawIOBase):
        reads = 0

        def readable(self):
            return True

        def read(self, n=-1):
            self.reads += 1
            return PDF if self.reads == 1 else b"0" * 65536

    stream = Endless()
    p = party(ctx)
    with pytest.raises(ValidationFailed, match="0.0953674 MB|MB limit"):
        timeline.add_attachment(ctx, filename="x.pdf", content_type=None, stream=stream, party_id=p.id)
    assert stream.reads <= 4 and files_on_disk(crm) == []


def test_broken_stream_leaves_nothing(ctx, crm):
    class Broken(io.RawIOBase):
        def readable(self):
            return True

        def read(self, n=-1):
            raise OSError("connection reset")

    p = party(ctx)
    with pytest.raises(OSError):
        timeline.add_attachment(ctx, filename="x.pdf", content_type=None, stream=Broken(), party_id=p.id)
    assert files_on_disk(crm) == [] and count(ctx, Attachment) == 0


def test_empty_file_and_missing_target_refused(ctx, crm):
    with pytest.raises(ValidationFailed, match="empty"):
        upload(ctx, b"", "empty.txt")
    with pytest.raises(ValidationFailed) as exc:
        timeline.add_attachment(ctx, filename="a.pdf", content_type=None, stream=io.BytesIO(PDF))
    assert "party_id" in exc.value.errors
    assert files_on_disk(crm) == []


def test_rollback_of_outer_use_case_removes_the_file(ctx, crm):
    p = party(ctx)

    @use_case(Role.MEMBER)
    def attach_then_fail(c):
        timeline.add_attachment(c, filename="a.pdf", content_type=None, stream=io.BytesIO(PDF), party_id=p.id)
        assert len(files_on_disk(crm)) == 1
        raise ValidationFailed("later step failed")

    with pytest.raises(ValidationFailed, match="later step"):
        attach_then_fail(ctx)
    assert files_on_disk(crm) == [] and count(ctx, Attachment) == 0


def test_attachment_on_record_belongs_to_party(ctx):
    p = party(ctx)
    r = Record(type="deal", title="Deal", party_id=p.id)
    ctx.session.add(r)
    ctx.session.commit()
    att = upload(ctx, PDF, record_id=r.id)
    assert att.party_id == p.id and att.record_id == r.id
    feed = timeline.feed(ctx, record_id=r.id)
    assert feed.extra["refs"]["attachment"][att.id].filename == "file.pdf"


# -- access ------------------------------------------------------------------------------------


def test_cross_business_is_not_found(ctx, other_ctx, crm):
    att = upload(ctx, PDF)
    with pytest.raises(NotFound):
        timeline.open_attachment(other_ctx, att.id)
    with pytest.raises(NotFound):
        timeline.delete_attachment(other_ctx, att.id)
    theirs = party(other_ctx, "Theirs")
    with pytest.raises(NotFound):
        upload(ctx, PDF, party_id=theirs.id)
    assert len(files_on_disk(crm)) == 1


def test_read_only_cannot_add_but_can_open(ctx, business, make_user, crm):
    att = upload(ctx, PDF)
    reader = make_user(business, "read_only")
    with pytest.raises(PermissionDenied):
        upload(reader, PDF, party_id=att.party_id)
    assert timeline.open_attachment(reader, att.id)[0].id == att.id
    assert len(files_on_disk(crm)) == 1


def test_tampered_storage_key_never_leaves_the_business_folder(ctx, other_ctx, crm):
    theirs = upload(other_ctx, PDF, party_id=party(other_ctx, "Theirs").id)
    mine = upload(ctx, PDF)
    mine.storage_key = f"../{other_ctx.business_id}/{theirs.storage_key}"
    ctx.session.commit()
    with pytest.raises(NotFound, match="not available"):
        timeline.open_attachment(ctx, mine.id)


def test_missing_file_is_not_found(ctx):
    att = upload(ctx, PDF)
    timeline.open_attachment(ctx, att.id)[1].unlink()
    with pytest.raises(NotFound, match="missing"):
        timeline.open_attachment(ctx, att.id)


def test_delete_removes_file_after_commit_only(ctx, crm, business, make_user):
    att = upload(ctx, PDF)
    path = timeline.open_attachment(ctx, att.id)[1]

    @use_case(Role.MEMBER)
    def delete_then_fail(c):
        timeline.delete_attachment(c, att.id)
        assert path.exists()
        raise ValidationFailed("undo")

    with pytest.raises(ValidationFailed):
        delete_then_fail(ctx)
    assert path.exists() and count(ctx, Attachment) == 1
    member = make_user(business, "member")
    with pytest.raises(PermissionDenied):
        timeline.delete_attachment(member, att.id)
    timeline.delete_attachment(ctx, att.id)
    assert not path.exists() and count(ctx, Attachment) == 0
    assert timeline.feed(ctx, party_id=att.party_id).items == []


# -- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize("given_name, expected", [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\windows\\system32\\cmd.pdf", "cmd.pdf"),
    ("a\r\nb.pdf", "a b.pdf"),
    ("ｆｉｌｅ.pdf", "ｆｉｌｅ.pdf"),
    ("", "attachment"),
    ("..", "attachment"),
    ("   ", "attachment"),
    ("\x00\x1f", "attachment"),
    ('"><img src=x onerror=alert(1)>.pdf', "img src=x onerror=alert(1).pdf"),
    ("invoice\u202egpj.pdf", "invoicegpj.pdf"),
    ("Zürich  Angebot\t2024.pdf", "Zürich Angebot 2024.pdf"),
    ("report.pdf.", "report.pdf"),
])
def test_safe_filename(given_name, expected):
    assert storage.safe_filename(given_name) == expected


def test_long_filename_keeps_extension():
    name = storage.safe_filename("x" * 300 + ".pdf")
    assert len(name) == 255 and name.endswith(".pdf")


@given(st.text(max_size=400))
def test_safe_filename_is_always_safe(name):
    safe = storage.safe_filename(name)
    assert 1 <= len(safe) <= 255
    assert not any(ch in safe for ch in "/\\\"'\r\n\x00")
    assert safe not in (".", "..")
    header = storage.content_disposition(safe)
    assert header.isascii() and "\r" not in header and "\n" not in header
    fallback = header.split('filename="', 1)[1].split('"', 1)[0]
    assert fallback and '"' not in fallback
    assert unquote(header.split("filename*=UTF-8''", 1)[1]) == safe


def test_upload_with_hostile_names(ctx, crm):
    cases = [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("a\r\nb.pdf", "a b.pdf"),
        ("ｆｉｌｅ.pdf", "ｆｉｌｅ.pdf"),
        ("", "attachment"),
        ("<script>alert(1)</script>.pdf", "script.pdf"),
        ("<img src=x onerror=alert(1)>.pdf", "img src=x onerror=alert(1).pdf"),
        ("y" * 300 + ".pdf", "y" * 251 + ".pdf"),
    ]
    for filename, expected_name in cases:
        data = b"plain text" if expected_name.endswith(".txt") else PDF
        att = upload(ctx, data, filename)
        assert att.filename == expected_name, filename
        path = timeline.open_attachment(ctx, att.id)[1]
        assert path.parent == crm.config.attachments_path / str(ctx.business_id)
        assert path.name == att.storage_key
    assert len(files_on_disk(crm)) == len(cases)


def test_content_disposition_has_ascii_fallback_and_utf8_name():
    att = Attachment(filename="Angebot Müller ｆｉｌｅ €.pdf")
    header = storage.content_disposition(att)
    assert header.startswith('attachment; filename="Angebot Muller file _.pdf"; ')
    assert header.endswith("filename*=UTF-8''Angebot%20M%C3%BCller%20%EF%BD%86%EF%BD%89%EF%BD%8C%EF%BD%85%20%E2%82%AC.pdf")
    assert storage.content_disposition(Attachment(filename="日本語.pdf"), inline=True).startswith(
        'inline; filename="attachment.pdf"')
