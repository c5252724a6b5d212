"""The catalog's public service API: what its pages use and what other plugins (quoting,
inventory) may call. Every function is a use case taking a ``crmcore.context.Context`` first:
one transaction, with a role check (reading and pricing: any member of the business, read-only
included; cross references: members; products, price lists and special prices: admins).

Errors: ``ValidationFailed`` naming the fields (422), ``NotFound`` for an id that is not in this
business (404), ``PermissionDenied`` for a role that may not (403). Money is ``Decimal``.

The modules behind it (products, pricelists, customers, pricing, availability) are internal;
import from here. The README lists the signatures.
"""

from __future__ import annotations

from crm_catalog.availability import Availability, Source, availability
from crm_catalog.common import Removal
from crm_catalog.customers import (
    PartyCatalog,
    add_cross_reference,
    add_special_price,
    cross_reference,
    move_party_rows,
    party_catalog,
    remove_cross_reference,
    remove_special_price,
)
from crm_catalog.inquiry import Match, inquire
from crm_catalog.pricelists import (
    active_price_lists,
    create_price_list,
    delete_price_list,
    get_price_list,
    list_price_list_items,
    list_price_lists,
    remove_price_list_item,
    set_price_list_item,
    update_price_list,
)
from crm_catalog.pricing import LIST_PRICE, PRICE_LIST, SPECIAL_PRICE, PriceQuote, price_for, prices_for
from crm_catalog.products import (
    create_product,
    delete_product,
    find_products,
    get_product,
    list_products,
    update_product,
)

__all__ = [
    "LIST_PRICE",
    "PRICE_LIST",
    "SPECIAL_PRICE",
    "Availability",
    "Match",
    "PartyCatalog",
    "PriceQuote",
    "Removal",
    "Source",
    "active_price_lists",
    "add_cross_reference",
    "add_special_price",
    "availability",
    "create_price_list",
    "create_product",
    "cross_reference",
    "delete_price_list",
    "delete_product",
    "find_products",
    "get_price_list",
    "get_product",
    "inquire",
    "list_price_list_items",
    "list_price_lists",
    "list_products",
    "move_party_rows",
    "party_catalog",
    "price_for",
    "prices_for",
    "remove_cross_reference",
    "remove_price_list_item",
    "remove_special_price",
    "set_price_list_item",
    "update_price_list",
    "update_product",
]
