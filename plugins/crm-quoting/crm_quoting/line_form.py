"""The line editor's form, one implementation for every document whose lines are priced like a
quote's (a quote; crm-orders' order and a loaner's charges): inputs named
``<group>.<n>.<field>`` become rows to show again and lines for
:func:`crm_quoting.service.price_lines`, whose errors (named by a line's place in the list it got)
are named back by the row the page shows. ``templates/quoting/_line_editor.html`` draws the rows."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from crmcore.errors import CrmError

#: the inputs of one row
LINE_FIELDS = ("id", "product_id", "product_sku", "sku", "description", "quantity", "unit", "unit_price",
               "discount_percent", "tax_rate", "position", "remove")
#: blank rows an editor offers below the lines
SPARE_ROWS = 3
_LINE_NAME = re.compile(r"^(\w+)\.(\d{1,4})\.(\w+)$")
_POSITION = re.compile(r"-?\d{1,6}(\.\d+)?")


def form_text(value: Any) -> str:
    """A value as a form shows it (Decimals without trailing zeros, None as empty)."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        normalized = value.normalize()
        return format(normalized if normalized != normalized.to_integral() else normalized.quantize(Decimal(1)), "f")
    return str(value)


def _blank_row(index: int, **values: Any) -> dict[str, Any]:
    return {name: "" for name in LINE_FIELDS} | {"index": index, "net": None, "price_source": ""} | values


def stored_rows(lines: Iterable[Any], spare: int = SPARE_ROWS) -> list[dict[str, Any]]:
    """The rows of a document's stored lines (any rows with the attributes of
    :class:`crm_quoting.service.StoredLine`), then ``spare`` blank ones."""
    rows = [{"id": ln.id, "product_id": ln.product_id or "", "product_sku": ln.sku if ln.product_id else "",
             "sku": ln.sku or "", "description": ln.description, "quantity": form_text(ln.quantity),
             "unit": ln.unit or "", "unit_price": form_text(ln.unit_price),
             "discount_percent": form_text(ln.discount_percent), "tax_rate": form_text(ln.tax_rate),
             "position": str(i + 1), "price_source": ln.price_source or "", "net": ln.net_amount,
             "origin": ln.origin or "", "index": i, "remove": ""} for i, ln in enumerate(lines)]
    return rows + spare_rows(rows, spare)


def spare_rows(rows: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """``count`` blank rows after ``rows``, numbered after the highest row index in use."""
    start = max((int(r["index"]) for r in rows), default=-1) + 1
    return [_blank_row(start + i, quantity="1", position=str(len(rows) + i + 1)) for i in range(count)]


def form_rows(form: Mapping[str, Any], group: str = "lines") -> list[dict[str, Any]]:
    """The rows of ``group`` as posted (``<group>.<n>.<field>``), in the order of their
    positions (ties: the order on the page)."""
    found: dict[int, dict[str, Any]] = {}
    for key in form:
        match = _LINE_NAME.match(key)
        if match and match.group(1) == group and match.group(3) in LINE_FIELDS:
            found.setdefault(int(match.group(2)), {})[match.group(3)] = form.get(key, "")
    rows = [_blank_row(i) | found[i] for i in sorted(found)]

    def order(row: dict[str, Any]) -> tuple[float, int]:
        text = str(row.get("position") or "").strip()
        return (float(text) if _POSITION.fullmatch(text) else float("inf"), row["index"])

    return sorted(rows, key=order)


def is_blank(row: dict[str, Any]) -> bool:
    """A row nothing was typed in (a spare one): not sent."""
    return not any(str(row.get(k) or "").strip() for k in ("id", "product_id", "sku", "description", "unit_price"))


def find_sku(ctx: Any, sku: str, party_id: int | None) -> Any:
    """The catalog product whose SKU (or the party's part number) is exactly ``sku``, any case;
    None if there is none."""
    from crm_catalog import service as catalog

    try:
        found = catalog.find_products(ctx, sku, party_id=party_id, limit=5)
    except CrmError:
        return None
    return next((p for p in found if p.sku.casefold() == sku.casefold()), None)


def resolve_sku(ctx: Any, row: dict[str, Any], party_id: int | None, errors: dict[str, list[str]],
                group: str = "lines") -> None:
    """Without the picker (no JavaScript) a product's exact SKU typed in the SKU field picks it;
    a changed SKU picks another product; an unknown one makes a free line (or, on a catalog
    line, an error in ``errors``)."""
    sku = str(row.get("sku") or "").strip()
    picked = str(row.get("product_id") or "").strip()
    if picked and (not sku or sku.casefold() == str(row.get("product_sku") or "").strip().casefold()):
        return
    if not sku:
        row["product_id"] = ""
        return
    match = find_sku(ctx, sku, party_id)
    if match is not None:
        if picked and str(match.id) != picked:  # another product: its own name, unit, price and rate
            for name in ("description", "unit", "unit_price", "tax_rate"):
                row[name] = ""
        row["product_id"], row["sku"] = str(match.id), match.sku
    elif picked:
        row["product_id"] = ""
        errors[f"{group}.{row['index']}.sku"] = [f"no product in the catalog has the SKU {sku!r}"]
    else:
        row["product_id"] = ""  # a free line with its own SKU text


def rows_to_send(ctx: Any, form: Mapping[str, Any], party_id: int | None, group: str = "lines",
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, list[str]]]:
    """``(rows, sent, errors)``: every posted row (to show again), those to send (not blank nor
    removed, their SKUs resolved) and the SKU errors."""
    rows = form_rows(form, group)
    errors: dict[str, list[str]] = {}
    sent = []
    for row in rows:
        if row.get("remove") or is_blank(row):
            continue
        resolve_sku(ctx, row, party_id, errors, group)
        sent.append(row)
    return rows, sent, errors


def service_line(row: dict[str, Any]) -> dict[str, Any]:
    """A sent row as :func:`crm_quoting.service.price_lines` takes it."""
    line: dict[str, Any] = {}
    for name in ("id", "product_id", "sku", "description", "quantity", "unit", "unit_price", "discount_percent",
                 "tax_rate"):
        value = str(row.get(name) or "").strip()
        if value:
            line[name] = value
        elif name in ("unit_price", "tax_rate"):
            line[name] = None
    line.setdefault("discount_percent", "0")
    return line


def row_errors(errors: Mapping[str, Any], sent: list[dict[str, Any]], group: str = "lines") -> dict[str, Any]:
    """The service names a line by its place in the list it got; the page by its row."""
    out: dict[str, Any] = {}
    for key, value in errors.items():
        match = _LINE_NAME.match(key)
        if match and match.group(1) == group and int(match.group(2)) < len(sent):
            key = f"{group}.{sent[int(match.group(2))]['index']}.{match.group(3)}"
        out[key] = value
    return out


def kept_rows(rows: list[dict[str, Any]], spare: int = SPARE_ROWS) -> list[dict[str, Any]]:
    """The rows to show again after a refused save: those typed in, then ``spare`` blank ones."""
    kept = [r for r in rows if not is_blank(r)]
    return kept + spare_rows(kept, spare)


__all__ = ["LINE_FIELDS", "SPARE_ROWS", "find_sku", "form_rows", "form_text", "is_blank", "kept_rows",
           "resolve_sku", "row_errors", "rows_to_send", "service_line", "spare_rows", "stored_rows"]
