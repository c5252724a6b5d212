"""The catalog's part of ``crm demo`` (hook ``crm_seed_demo``): the demo dealer's machines, their
attachments and services, a price list for fleet customers with quantity breaks, and one
customer's special price and part number. Written through :mod:`crm_catalog.service` only.

The machines are those the core's demo deals are about (their ``machine_model`` field, such as
"Excavator EX-140"): the SKU is the model code ("EX-140"), so quoting's demo finds a deal's
machine by SKU.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from crm_catalog import service

if TYPE_CHECKING:
    from crmcore.context import Context


@dataclass(frozen=True)
class DemoProduct:
    sku: str
    name: str
    unit_price: str
    kind: str = "product"
    unit: str = "pcs"
    stock: str | None = None
    description: str | None = None


PRODUCTS = (
    DemoProduct("CL-35", "Compact loader CL-35", "38500.00", stock="3",
                description="Compact wheel loader, 3.5 t operating weight, 0.6 m³ bucket, EU Stage V engine."),
    DemoProduct("EX-140", "Excavator EX-140", "142000.00", stock="1",
                description="14 t crawler excavator, 2.6 m arm, quick coupler, air-conditioned cab."),
    DemoProduct("TH-7", "Telehandler TH-7", "89000.00", stock="2",
                description="Telescopic handler, 7 m lift height, 3.5 t capacity, four-wheel steering."),
    DemoProduct("T-95", "Tractor T-95", "96500.00", stock="2",
                description="95 hp tractor, front loader ready, 40 km/h transmission."),
    DemoProduct("ZM-60", "Mower ZM-60", "18900.00", stock="5",
                description="Zero-turn mower, 152 cm (60\") deck, 24 hp petrol engine."),
    DemoProduct("WL-220", "Wheel loader WL-220", "198000.00", stock="0",
                description="22 t wheel loader, 3.8 m³ bucket, weighing system; built to order."),
    DemoProduct("ME-18", "Mini excavator ME-18", "34750.00", stock="4",
                description="1.8 t mini excavator, retractable tracks, three buckets included."),
    DemoProduct("SS-50", "Skid steer SS-50", "46200.00", stock="2",
                description="Skid steer loader, 900 kg rated capacity, high-flow hydraulics."),
    DemoProduct("BKT-600", "Digging bucket 600 mm", "1450.00", stock="12",
                description="Fits the EX-140 quick coupler; hardened cutting edge."),
    DemoProduct("FORK-1200", "Pallet forks 1200 mm", "980.00", stock="8",
                description="Fork carriage with 1200 mm tines, for loaders and telehandlers."),
    DemoProduct("SVC-DELIVERY", "Delivery and commissioning", "850.00", kind="service", unit="job",
                description="Transport to the customer's site, set-up and hand-over."),
    DemoProduct("SVC-TRAINING", "Operator training", "95.00", kind="service", unit="h",
                description="On-site training of the customer's operators."),
    DemoProduct("SVC-CONTRACT", "Full service contract, 1 year", "2400.00", kind="service", unit="year",
                description="Scheduled maintenance, wear parts and a replacement machine within 48 hours."),
)

#: the fleet price list: (SKU, minimum quantity, unit price)
FLEET_PRICES = (
    ("CL-35", "1", "37200.00"), ("CL-35", "3", "36100.00"),
    ("ME-18", "1", "33600.00"), ("ME-18", "3", "32500.00"),
    ("SS-50", "1", "44900.00"),
    ("SVC-CONTRACT", "1", "2150.00"),
)
SPECIAL_DISCOUNT = Decimal("0.94")


def seed(ctx: Context) -> list[str]:
    """Create the demo catalog; returns the lines ``crm demo`` prints."""
    products = {p.sku: service.create_product(ctx, {
        "sku": p.sku, "name": p.name, "kind": p.kind, "unit": p.unit, "unit_price": p.unit_price,
        "tax_rate": "21", "stock_on_hand": p.stock, "description": p.description,
    }) for p in PRODUCTS}
    year = dt.date.today().year
    fleet = service.create_price_list(ctx, {
        "name": f"Fleet customers {year}", "valid_from": f"{year}-01-01", "valid_to": f"{year}-12-31",
        "note": "Framework prices for customers running five machines or more.",
    })
    for sku, min_quantity, price in FLEET_PRICES:
        service.set_price_list_item(ctx, fleet.id, {"product_id": products[sku].id, "min_quantity": min_quantity,
                                                    "unit_price": price})
    lines = [f"{len(PRODUCTS)} products and services", f"price list {fleet.name!r} ({len(FLEET_PRICES)} prices)"]
    featured, other = _customers(ctx)
    if featured is not None:
        party, machine = featured
        product = products.get(machine) or products["CL-35"]
        special = (product.unit_price * SPECIAL_DISCOUNT).quantize(Decimal("1"))
        service.add_special_price(ctx, {
            "party_id": party.id, "product_id": product.id, "unit_price": str(special),
            "valid_to": f"{year}-12-31", "note": "Agreed at the dealer open day",
        })
        service.add_cross_reference(ctx, {
            "party_id": party.id, "product_id": product.id,
            "customer_part_number": "FLEET-" + product.sku.replace("-", ""),
            "customer_description": f"{product.name} (their fleet standard)",
        })
        lines.append(f"special price and part number for {party.name} ({product.name})")
    if other is not None:
        service.add_special_price(ctx, {"party_id": other.id, "price_list_id": fleet.id})
        lines.append(f"{other.name} buys from {fleet.name!r}")
    return lines


def _customers(ctx: Context) -> tuple[tuple[Any, str] | None, Any | None]:
    """The featured customer (the party of the first open deal, oldest first, that is a
    customer, with that deal's machine SKU) and another customer for the price list."""
    from crmcore.records.service import list_records

    page = list_records(ctx, record_type="deal", filters={"status": "open"}, sort="created", limit=200,
                        with_count=False)
    parties = page.extra["parties"]
    featured: tuple[Any, str] | None = None
    other = None
    for deal in page.items:
        party = parties.get(deal.party_id)
        if party is None or not party.is_customer:
            continue
        if featured is None:
            model = str((deal.custom or {}).get("machine_model") or "")
            featured = (party, model.rsplit(" ", 1)[-1])
        elif party.id != featured[0].id:
            other = party
            break
    return featured, other
