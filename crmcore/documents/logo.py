"""The business logo: a PNG or JPEG file under the instance folder, named by its SHA-256.

The upload is judged by its bytes, never its name or declared type: it must start like a PNG
or a JPEG, Pillow must decode all of it as that same format, and its size must be sane (at most
:data:`MAX_BYTES`, sides of :data:`MIN_SIDE` to :data:`MAX_SIDE` pixels). SVG is never accepted
(it can carry scripts and fetch URLs). The file is written beside its row's change and follows
the transaction: a failed save leaves no file, a replaced or removed logo's file goes once the
change commits. Every read checks the file's hash against the row's.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from crmcore.audit import service as audit
from crmcore.context import Context, use_case
from crmcore.documents.profile import BusinessProfile, current_business, snapshot
from crmcore.errors import ValidationFailed
from crmcore.tenancy.models import Role
from crmcore.timeline import storage

log = logging.getLogger("crmcore.documents")

MAX_BYTES = 1024 * 1024
MIN_SIDE = 16
MAX_SIDE = 4000
#: content type -> (Pillow format, file extension)
FORMATS = {"image/png": ("PNG", ".png"), "image/jpeg": ("JPEG", ".jpg")}


@dataclass(frozen=True)
class Logo:
    data: bytes
    content_type: str
    sha256: str


def logo_folder(ctx: Context) -> Path:
    return ctx.crm.config.instance_path / "logos" / str(int(ctx.business_id))


def _refused(message: str) -> ValidationFailed:
    return ValidationFailed(f"the logo was not saved: {message}", {"logo": [message]})


def read_upload(stream: BinaryIO) -> bytes:
    """The upload's bytes, refusing it as soon as it passes :data:`MAX_BYTES`."""
    chunks, size = [], 0
    while chunk := stream.read(64 * 1024):
        if not isinstance(chunk, bytes | bytearray):
            raise _refused("the upload must be read as bytes")
        size += len(chunk)
        if size > MAX_BYTES:
            raise _refused(f"the file is larger than {MAX_BYTES // 1024} KB; use a smaller image")
        chunks.append(bytes(chunk))
    return b"".join(chunks)


def check_logo(data: bytes) -> str:
    """The content type of a logo that may be used, else ValidationFailed saying why."""
    if not data:
        raise _refused("the file is empty")
    if len(data) > MAX_BYTES:
        raise _refused(f"the file is larger than {MAX_BYTES // 1024} KB; use a smaller image")
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        content_type = "image/png"
    elif data.startswith(b"\xff\xd8\xff"):
        content_type = "image/jpeg"
    else:
        head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
        if head.startswith((b"<svg", b"<?xml")) or b"<svg" in head:
            raise _refused("SVG images are not accepted (they can carry scripts); upload a PNG or JPEG")
        raise _refused("the file is not a PNG or JPEG image (whatever its name says)")
    fmt = FORMATS[content_type][0]
    width, height = _decode(data, fmt)
    if min(width, height) < MIN_SIDE:
        raise _refused(f"the image is {width}×{height} pixels; each side needs at least {MIN_SIDE}")
    if max(width, height) > MAX_SIDE:
        raise _refused(f"the image is {width}×{height} pixels; at most {MAX_SIDE} on each side")
    return content_type


def _decode(data: bytes, fmt: str) -> tuple[int, int]:
    """Width and height after decoding the whole image (a truncated or forged file fails)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[fmt]) as image:
                width, height = image.size
                if width * height > MAX_SIDE * MAX_SIDE:
                    raise _refused(f"the image is {width}×{height} pixels; at most {MAX_SIDE} on each side")
                image.load()
    except ValidationFailed:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        log.info("logo refused: %s", exc)
        raise _refused("the image is damaged or not really a PNG or JPEG") from exc
    return width, height


@use_case(Role.ADMIN)
def set_logo(ctx: Context, stream: BinaryIO) -> BusinessProfile:
    """Replace the business's logo with the uploaded image (admins)."""
    data = read_upload(stream)
    content_type = check_logo(data)
    digest = hashlib.sha256(data).hexdigest()
    name = digest + FORMATS[content_type][1]
    business = current_business(ctx)
    folder = logo_folder(ctx)
    old = business.logo_file
    path = storage.path_inside(folder, name)
    existed = path.is_file()
    if not existed or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
        _write(path, data)  # the same image again keeps its file; a missing or altered one is written anew
        if not existed:
            storage.on_rollback(ctx.session, lambda: storage.remove_quietly(path))
    if old and old != name:
        _remove_after_commit(ctx, folder, old)
    business.logo_file, business.logo_sha256 = name, digest
    ctx.session.flush()
    audit.record(ctx, "business.logo_set", business,
                 changes={"logo_sha256": [None if old is None else old.split(".")[0], digest],
                          "content_type": content_type, "size": len(data)})
    return snapshot(business)


@use_case(Role.ADMIN)
def remove_logo(ctx: Context) -> BusinessProfile:
    """Documents are printed without a logo from now on (admins)."""
    business = current_business(ctx)
    if business.logo_file:
        _remove_after_commit(ctx, logo_folder(ctx), business.logo_file)
        audit.record(ctx, "business.logo_removed", business, changes={"logo_sha256": [business.logo_sha256, None]})
    business.logo_file = business.logo_sha256 = None
    ctx.session.flush()
    return snapshot(business)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.part")
    with open(temp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    temp.replace(path)


def _remove_after_commit(ctx: Context, folder: Path, name: str) -> None:
    try:
        path = storage.path_inside(folder, name)
    except PermissionError:
        return
    storage.on_commit(ctx.session, lambda: storage.remove_quietly(path))


def read_logo(ctx: Context, profile: BusinessProfile) -> Logo | None:
    """The logo's bytes when the profile has one and its file is intact, else None (a missing
    or altered file is logged and documents go without)."""
    if not profile.has_logo or profile.logo_file is None:
        return None
    content_type = next((t for t, (_f, ext) in FORMATS.items() if profile.logo_file.endswith(ext)), None)
    try:
        path = storage.path_inside(logo_folder(ctx), profile.logo_file)
        data = path.read_bytes() if path.stat().st_size <= MAX_BYTES else b""
    except (OSError, PermissionError) as exc:
        log.warning("business %s: logo file unavailable: %s", ctx.business_id, exc)
        return None
    if content_type is None or hashlib.sha256(data).hexdigest() != profile.logo_sha256:
        log.warning("business %s: logo file %s does not match its hash; left out", ctx.business_id,
                    profile.logo_file)
        return None
    return Logo(data=data, content_type=content_type, sha256=profile.logo_sha256 or "")
