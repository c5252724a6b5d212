"""Test helpers of quoting for other plugins' tests (public API, see docs/quoting.md): the
parties, contacts, deals, catalog products and accepted quotes a test of a document that follows
a quote (an order, an invoice) needs, and a counter of the SQL statements a block runs. Each
goes through the real services; nothing here is used at run time."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from sqlalchemy import event

from crmcore.parties.contacts import create_contact
from crmcore.parties.service import create_party
from crmcore.records import service as records

_numbers = itertools.count(1)


def new_party(ctx: Any, name: str | None = None, **values: Any) -> Any:
    """An organisation (a numbered name unless ``name``); ``values`` override."""
    data = {"kind": "organisation", "name": name or f"Customer {next(_numbers)}"}
    data.update(values)
    return create_party(ctx, data)


def new_contact(ctx: Any, party: Any, name: str = "Ann Buyer", email: str | None = "ann@buyer.example") -> Any:
    """A contact of ``party`` named ``name``, with ``email`` unless None."""
    first, _, last = name.partition(" ")
    data: dict[str, Any] = {"party_id": party.id, "first_name": first, "last_name": last or None}
    if email:
        data["mechanisms"] = [{"kind": "email", "value": email}]
    return create_contact(ctx, data)


def new_deal(ctx: Any, party: Any, title: str = "New tractor", **values: Any) -> Any:
    """A deal record of ``party``."""
    return records.create_record(ctx, "deal", {"title": title, "party_id": party.id, **values})


def new_product(ctx: Any, **values: Any) -> Any:
    """A catalog product (numbered SKU and name, 10.00, 21%); ``values`` override. Needs the
    catalog plugin enabled."""
    from crm_catalog import service as catalog

    n = next(_numbers)
    data = {"sku": f"SKU-{n}", "name": f"Product {n}", "unit_price": Decimal("10.00"), "tax_rate": Decimal(21)}
    data.update(values)
    return catalog.create_product(ctx, data)


def line(**values: Any) -> dict[str, Any]:
    """A free-text line as the services take it (``values`` override)."""
    data: dict[str, Any] = {"description": "Service hour", "quantity": "1", "unit_price": "100.00"}
    data.update(values)
    return data


def accepted_quote(ctx: Any, party: Any, lines: list[dict[str, Any]] | None = None, **data: Any) -> Any:
    """A quote for ``party`` with ``lines`` (one :func:`line` if none), sent and accepted;
    returns its record."""
    from crm_quoting import service

    record = service.create_quote(ctx, {"party_id": party.id, "lines": lines or [line()], **data})
    service.mark_sent(ctx, record.id)
    service.accept_quote(ctx, record.id)
    return record


def edit_form(record: Any, **changes: Any) -> dict[str, str]:
    """The core's Edit form of ``record`` as the browser posts it: every field with its current
    value, ``changes`` applied (to test what a plugin's ``crm_before_record_save`` allows)."""
    data = {"title": record.title, "party_id": record.party_id, "contact_id": record.contact_id,
            "owner_id": record.owner_id, "amount": record.amount, "currency": record.currency,
            "expected_close_date": record.expected_close_date, "description": record.description,
            "proposed_solution": record.proposed_solution}
    data.update(changes)
    return {k: "" if v is None else str(v) for k, v in data.items()}


@contextmanager
def statements(ctx: Any) -> Iterator[list[str]]:
    """Every SQL statement ctx's engine runs inside the block (to show a page or a lookup
    costs a fixed number of queries)."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    engine = ctx.crm.db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


__all__ = ["accepted_quote", "edit_form", "line", "new_contact", "new_deal", "new_party", "new_product", "statements"]
