"""Shared pieces of the documents tests: a German business profile, a sample document context,
images made with Pillow, a plugin whose template folder is this folder's ``templates/``, a local
HTTP server that records every request it gets, and PDF text read back with pypdf."""

from __future__ import annotations

import datetime as dt
import http.server
import io
import threading
import types
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from crmcore import PluginInfo
from crmcore.documents import update_profile
from crmcore.money import document_totals, line_amounts

HERE = Path(__file__).resolve().parent
PARTY = "Jürgen Müller Ørsted"

PROFILE = {
    "legal_name": "Acme Equipment GmbH", "address_line1": "Hauptstraße 5", "postcode": "10115", "city": "Berlin",
    "country": "DE", "tax_id": "DE136695976", "email": "billing@acme.example", "phone": "+49 30 1234567",
    "website": "https://acme.example", "bank_details": "Berliner Bank\nIBAN DE89 3704 0044 0532 0130 00\nBIC COBADEFFXXX",
}


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (240, 80), noise: bool = False) -> bytes:
    from PIL import Image, ImageDraw

    if noise:
        import random

        rng = random.Random(7)
        image = Image.frombytes("RGB", size, bytes(rng.getrandbits(8) for _ in range(size[0] * size[1] * 3)))
    else:
        image = Image.new("RGB", size, "white")
        ImageDraw.Draw(image).rectangle([2, 2, min(size) - 3, min(size) - 3], fill=(30, 90, 200))
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def sample_lines(currency: str = "EUR", repeat: int = 1) -> tuple[list[dict[str, Any]], Any]:
    raw = [("Hydraulic pump HX-200", D("2"), "pc", D("1249.50"), D("0"), D("19")),
           ("Service visit", D("3.5"), "h", D("95.00"), D("10"), D("19")),
           ("Operating manual", D("1"), "pc", D("24.90"), D("0"), D("7"))] * repeat
    lines, amounts = [], []
    for description, quantity, unit, price, discount, rate in raw:
        amount = line_amounts(quantity, price, currency, discount_percent=discount, tax_rate=rate)
        amounts.append(amount)
        lines.append({"description": description, "quantity": quantity, "unit": unit, "unit_price": price,
                      "discount_percent": discount, "tax_rate": rate, "net": amount.net})
    return lines, document_totals(amounts, currency)


def sample_context(*, bill_to_name: str = "Ørsted & Søn ApS", repeat: int = 1, currency: str = "EUR",
                   **extra: Any) -> dict[str, Any]:
    lines, totals = sample_lines(currency, repeat)
    return {
        "document": {"title": "Invoice", "number": "INV-2026-0042", "reference": "PO 7781",
                     "dates": [("Issued", dt.date(2026, 3, 1)), ("Due", dt.date(2026, 3, 15))]},
        "currency": currency,
        "bill_to": {"name": bill_to_name, "contact": PARTY, "tax_id": "DK13585628",
                    "address": {"line1": "Ørstedgade 3", "postal_code": "1000", "city": "København", "country": "DK"}},
        "ship_to": {"name": "Warehouse Nord", "address": ["Dock 4", "2100 København Ø"]},
        "lines": lines, "totals": totals,
        "payment_terms": "Payable within 14 days without deduction.",
        **extra,
    }


def pdf_text(pdf: bytes) -> str:
    """The PDF's text with all kinds of spaces as one plain space (Babel uses no-break spaces)."""
    reader = PdfReader(io.BytesIO(pdf))
    text = "\n".join(page.extract_text() or "" for page in reader.pages)
    for space in ("\xa0", "\u202f", "\u2009"):
        text = text.replace(space, " ")
    return text


def pdf_images(pdf: bytes) -> int:
    return sum(len(page.images) for page in PdfReader(io.BytesIO(pdf)).pages)


@pytest.fixture
def profile_ctx(ctx):
    """``ctx`` of a business with the German profile above."""
    update_profile(ctx, PROFILE)
    return ctx


@pytest.fixture
def doc_plugin(register_plugin) -> str:
    """A plugin whose module sits in this folder: its templates are ``templates/testdocs/*``."""
    module = types.ModuleType("crm_test_documents")
    module.__file__ = str(HERE / "plugin_module.py")
    module.PLUGIN = PluginInfo(title="Test documents")
    return register_plugin(module, name="testdocs")


class RecordingServer:
    """An HTTP server on 127.0.0.1 that answers every GET with a small PNG and records the path."""

    def __init__(self) -> None:
        hits: list[str] = []
        self.hits = hits
        png = image_bytes()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(png)))
                self.end_headers()
                self.wfile.write(png)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def recording_server() -> Iterator[RecordingServer]:
    server = RecordingServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()
        server.thread.join(timeout=10)


@pytest.fixture
def helpers() -> types.SimpleNamespace:
    """The module's helpers, for the test files (conftest modules are not importable)."""
    return types.SimpleNamespace(image_bytes=image_bytes, sample_context=sample_context, pdf_text=pdf_text,
                                 pdf_images=pdf_images, sample_lines=sample_lines, PROFILE=PROFILE, PARTY=PARTY)


