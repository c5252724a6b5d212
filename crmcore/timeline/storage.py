"""Attachment files on disk: safe names, content sniffing, size-limited streaming, and files that
follow the fate of the transaction that created or deleted them.

A file lives at ``<attachments_path>/<business_id>/<storage_key>``; the key is random and the
user's filename never reaches the file system. The type is taken from the bytes, not from what the
browser or the filename claims: a claim that contradicts the bytes is refused, so an executable or
an HTML page renamed ``.pdf`` never becomes something we serve as a PDF.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import os
import secrets
import unicodedata
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

from sqlalchemy import event
from sqlalchemy.orm import Session

from crmcore.errors import ValidationFailed

log = logging.getLogger("crmcore.timeline")

CHUNK = 64 * 1024
HEAD = 8 * 1024
NAME_MAX = 255
FALLBACK_NAME = "attachment"
OCTET = "application/octet-stream"

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
ODT = "application/vnd.oasis.opendocument.text"
ODS = "application/vnd.oasis.opendocument.spreadsheet"
ODP = "application/vnd.oasis.opendocument.presentation"
DOC = "application/msword"
XLS = "application/vnd.ms-excel"


@dataclass(frozen=True)
class Kind:
    """A content type we recognise: the declared types and extensions that agree with it."""

    label: str
    types: frozenset[str]
    extensions: frozenset[str]


def _kind(label: str, types: str, extensions: str) -> Kind:
    return Kind(label, frozenset(types.split()), frozenset(extensions.split()))


_ZIP_TYPES = "application/zip application/x-zip-compressed application/x-zip"

KINDS: dict[str, Kind] = {
    "application/pdf": _kind("a PDF document", "application/pdf application/x-pdf", ".pdf"),
    "image/png": _kind("a PNG image", "image/png", ".png"),
    "image/jpeg": _kind("a JPEG image", "image/jpeg image/jpg image/pjpeg", ".jpg .jpeg .jpe .jfif"),
    "image/gif": _kind("a GIF image", "image/gif", ".gif"),
    "image/webp": _kind("a WebP image", "image/webp", ".webp"),
    "application/zip": _kind("a ZIP archive", _ZIP_TYPES, ".zip"),
    DOCX: _kind("a Word document", f"{DOCX} {_ZIP_TYPES}", ".docx .docm .dotx"),
    XLSX: _kind("an Excel workbook", f"{XLSX} {_ZIP_TYPES}", ".xlsx .xlsm .xltx"),
    PPTX: _kind("a PowerPoint presentation", f"{PPTX} {_ZIP_TYPES}", ".pptx"),
    ODT: _kind("an OpenDocument text", f"{ODT} {_ZIP_TYPES}", ".odt"),
    ODS: _kind("an OpenDocument spreadsheet", f"{ODS} {_ZIP_TYPES}", ".ods"),
    ODP: _kind("an OpenDocument presentation", f"{ODP} {_ZIP_TYPES}", ".odp"),
    DOC: _kind("a Word 97 document", DOC, ".doc .dot"),
    XLS: _kind("an Excel 97 workbook", XLS, ".xls .xlt"),
    # browsers on Windows send application/vnd.ms-excel for .csv files
    "text/csv": _kind("a CSV file", f"text/csv application/csv text/comma-separated-values {XLS} text/plain",
                      ".csv"),
    "text/plain": _kind("a text file", "text/plain text/markdown text/x-log", ".txt .text .log .md"),
}

#: recognised but never accepted, named so that the refusal says what the file really is
DANGEROUS = {
    "application/x-msdownload": "a Windows executable",
    "application/x-executable": "a Linux executable",
    "application/x-mach-binary": "a macOS executable",
    "text/html": "an HTML page",
    "image/svg+xml": "an SVG image (it can carry scripts)",
    "application/xml": "an XML document",
    "application/x-sh": "a shell script",
    OCTET: "a file of unknown type",
}

_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MARKUP = (b"<!doctype html", b"<html", b"<head", b"<body", b"<script", b"<iframe", b"<svg", b"<?xml")


# --------------------------------------------------------------------------------------------
# names


def safe_filename(name: str | None) -> str:
    """A download name that is safe to store and show: no folders, control or format characters
    (including right-to-left overrides), quotes or characters file systems reserve; unicode
    letters are kept; at most 255 characters with the extension preserved; never empty."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    kept = []
    for ch in name:
        category = unicodedata.category(ch)
        if ch.isspace():
            kept.append(" ")
        elif category not in ("Cc", "Cf", "Cs", "Co", "Cn") and ch not in "\"'`<>:|?*;":
            kept.append(ch)
    name = " ".join("".join(kept).split()).strip(" .")
    if not name:
        return FALLBACK_NAME
    if len(name) > NAME_MAX:
        stem, ext = _split_ext(name)
        name = stem[: NAME_MAX - len(ext)].rstrip(" .") + ext if len(ext) <= 16 else name[:NAME_MAX]
    return name or FALLBACK_NAME


def _split_ext(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or not ext:
        return name, ""
    return stem, "." + ext


def extension(name: str) -> str:
    """The lower-case extension as the user would read it (full-width characters folded)."""
    return _split_ext(unicodedata.normalize("NFKC", name).lower())[1]


def ascii_fallback(name: str) -> str:
    """An ASCII-only approximation for clients that ignore ``filename*``."""
    out = []
    for ch in unicodedata.normalize("NFKD", name):
        if unicodedata.combining(ch):
            continue  # the accent of a decomposed letter: "ü" -> "u"
        out.append(ch if ch.isascii() and (ch.isalnum() or ch in " ._-()[]+,=@&#!~") else "_")
    folded = "".join(out)
    stem, ext = _split_ext(folded.strip(" ."))
    if not stem.strip("_ "):
        stem = FALLBACK_NAME
    return (stem + ext)[:NAME_MAX]


def content_disposition(attachment: Any, *, inline: bool = False) -> str:
    """An RFC 6266 ``Content-Disposition`` value: an ASCII ``filename`` for old clients and the
    exact UTF-8 name in ``filename*`` (RFC 8187 percent-encoding)."""
    name = safe_filename(getattr(attachment, "filename", attachment))
    disposition = "inline" if inline else "attachment"
    return f"{disposition}; filename=\"{ascii_fallback(name)}\"; filename*=UTF-8''{quote(name, safe='')}"


# --------------------------------------------------------------------------------------------
# content types


def normalize_type(content_type: str | None) -> str | None:
    """``"Application/PDF; charset=x"`` -> ``"application/pdf"``; no claim -> None."""
    if not content_type:
        return None
    value = content_type.split(";", 1)[0].strip().lower()
    return None if value in ("", OCTET, "binary/octet-stream") else value


def sniff(head: bytes, path: Path, is_utf8_text: bool) -> str:
    """The content type of the file at ``path`` from its bytes (``head`` is its beginning)."""
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_type(path)
    if head.startswith(_OLE):
        return "application/x-ole-storage"
    if head.startswith(b"MZ"):
        return "application/x-msdownload"
    if head.startswith(b"\x7fELF"):
        return "application/x-executable"
    if head[:4] in (b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xca\xfe\xba\xbe"):
        return "application/x-mach-binary"
    if is_utf8_text:
        return _text_type(head)
    return OCTET


def _zip_type(path: Path) -> str:
    """Tell an OOXML or OpenDocument file from a plain ZIP by its members."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "mimetype" in names:
                declared = archive.read("mimetype")[:100].decode("ascii", "replace").strip()
                if declared in (ODT, ODS, ODP):
                    return declared
            if "[Content_Types].xml" in names:
                for prefix, kind in (("word/", DOCX), ("xl/", XLSX), ("ppt/", PPTX)):
                    if any(n.startswith(prefix) for n in names):
                        return kind
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError):
        return OCTET
    return "application/zip"


def _text_type(head: bytes) -> str:
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if start.startswith(b"#!"):
        return "application/x-sh"
    for marker in _MARKUP:
        if start.startswith(marker):
            return "image/svg+xml" if marker == b"<svg" else "application/xml" if marker == b"<?xml" else "text/html"
    if b"<script" in head.lower() or b"<html" in head.lower():
        return "text/html"
    return "text/plain"


def resolve_type(sniffed: str, declared: str | None, filename: str, allowed: tuple[str, ...]) -> str:
    """The type to store, or ValidationFailed when it is not allowed or the claim contradicts it."""
    ext = extension(filename)
    if sniffed == "application/x-ole-storage":
        sniffed = _ole_type(declared, ext)
    elif sniffed == "text/plain" and (ext == ".csv" or declared in ("text/csv", "application/csv")):
        sniffed = "text/csv"
    if sniffed in DANGEROUS or sniffed not in KINDS:
        what = DANGEROUS.get(sniffed, f"of type {sniffed}")
        raise _refused(f"this file is {what}, which cannot be attached")
    kind = KINDS[sniffed]
    if sniffed not in allowed:
        raise _refused(f"this file is {kind.label} ({sniffed}), which this installation does not accept")
    if declared is not None and declared not in kind.types:
        raise _refused(f"the file was sent as {declared} but its content is {kind.label}")
    if ext and ext not in kind.extensions:
        raise _refused(f"the file is named *{ext} but its content is {kind.label}")
    return sniffed


def _ole_type(declared: str | None, ext: str) -> str:
    """Word 97 and Excel 97 share one container; the name or the claim tells them apart."""
    for kind in (DOC, XLS):
        if ext in KINDS[kind].extensions or (not ext and declared == kind):
            return kind
    return OCTET


def _refused(message: str) -> ValidationFailed:
    return ValidationFailed(message, {"file": [message]})


# --------------------------------------------------------------------------------------------
# writing


def business_dir(root: Path, business_id: int) -> Path:
    return root / str(int(business_id))


def new_storage_key() -> str:
    return secrets.token_hex(20)


def path_inside(folder: Path, storage_key: str) -> Path:
    """The file of ``storage_key`` in ``folder``; refuses a key that would leave the folder."""
    base = folder.resolve()
    path = (base / storage_key).resolve()
    if not path.is_relative_to(base) or path == base:
        raise PermissionError(f"storage key {storage_key!r} leaves the attachment folder")
    return path


@dataclass
class Received:
    """An upload written to a temporary file, with what we learnt while writing it."""

    temp_path: Path
    size: int
    sha256: str
    head: bytes
    is_utf8_text: bool

    def discard(self) -> None:
        remove_quietly(self.temp_path)


def receive(stream: BinaryIO, temp_path: Path, max_bytes: int) -> Received:
    """Copy ``stream`` into ``temp_path`` in chunks, stopping as soon as it passes ``max_bytes``
    (nothing is left behind then)."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    text = True
    head = b""
    size = 0
    temp_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK):
                if not isinstance(chunk, bytes | bytearray):
                    raise ValidationFailed("the upload must be read as bytes", {"file": ["not a binary stream"]})
                size += len(chunk)
                if size > max_bytes:
                    limit = f"{max_bytes / (1024 * 1024):g}"
                    raise ValidationFailed(f"the file is larger than the {limit} MB limit",
                                           {"file": [f"at most {limit} MB"]})
                if len(head) < HEAD:
                    head += chunk[: HEAD - len(head)]
                digest.update(chunk)
                if text:
                    text = _still_text(decoder, chunk)
                out.write(chunk)
            if text:
                text = _still_text(decoder, b"", final=True)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        remove_quietly(temp_path)
        raise
    return Received(temp_path, size, digest.hexdigest(), head, text)


def _still_text(decoder: Any, chunk: bytes, final: bool = False) -> bool:
    if b"\x00" in chunk:
        return False
    try:
        decoder.decode(chunk, final)
    except UnicodeDecodeError:
        return False
    return True


def remove_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not remove %s: %s", path, exc)


# --------------------------------------------------------------------------------------------
# files that follow the transaction

_ACTIONS = "crm_file_actions"


def _actions(session: Session) -> dict[str, list[Callable[[], None]]]:
    actions = session.info.get(_ACTIONS)
    if actions is None:
        actions = {"commit": [], "rollback": []}
        session.info[_ACTIONS] = actions
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_rollback", _after_rollback)
    return actions


def _run(session: Session, which: str) -> None:
    actions = session.info.get(_ACTIONS)
    if not actions:
        return
    todo = actions[which]
    actions["commit"], actions["rollback"] = [], []
    for action in todo:
        try:
            action()
        except OSError as exc:  # the database is the truth; a stray file is only logged
            log.warning("attachment file action failed: %s", exc)


def _after_commit(session: Session) -> None:
    _run(session, "commit")


def _after_rollback(session: Session) -> None:
    _run(session, "rollback")


def on_commit(session: Session, action: Callable[[], None]) -> None:
    """Run ``action`` once the session's transaction commits (dropped if it rolls back)."""
    _actions(session)["commit"].append(action)


def on_rollback(session: Session, action: Callable[[], None]) -> None:
    """Run ``action`` if the session's transaction rolls back (dropped once it commits)."""
    _actions(session)["rollback"].append(action)
