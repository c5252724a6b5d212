"""How the benchmark's data becomes the peer's records (Django-CRM 0.9.0's models).

Every row of :class:`benchmarks.dataset.Dataset` (the same generator and seed crmcore imports)
becomes one ``Account``: organisations by their name, persons by "first last" (the peer has no
person accounts). What the peer can hold is kept; what it cannot is dropped and said here:

* email, phone → ``Account.email`` / ``phone``; the address → ``billing_address_line``,
  ``billing_postcode``, ``billing_city``, ``billing_country``;
* tags → ``Tags`` (its ``slug`` is unique) linked through ``Account.tags``;
* the sales rep → ``Account.assigned_to`` (a user per rep, as crmcore has a member per rep);
* the contact person (every second row) → a ``Contact`` in ``Account.contacts``; the contact's
  job title goes to its ``description`` (the peer has no title field);
* ``custom.segment`` → ``Account.industry``, one industry per segment (the peer has no custom
  fields: its ``industry`` filter is the nearest it has, so that both lists filter the same rows);
* dropped: ``custom.employees``, the prospect status and the customer flag (``Account.status``
  is "open"/"close": every account is open).

Deals come from the crmcore database of the same run (``compare.export_deals``) and become
``Opportunity`` rows of the account with the same email: open stages by position, won and lost
as "CLOSED WON" / "CLOSED LOST". The peer has one list of opportunities, no pipelines.

Standard library only: the project's tests check this mapping without the peer installed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal

INDUSTRY_OF_SEGMENT = {"smb": "SERVICE", "mid": "MANUFACTURING", "ent": "TECHNOLOGY"}
#: Django-CRM's ``common.utils.STAGES``, open ones in order
OPEN_STAGES = ("QUALIFICATION", "NEEDS ANALYSIS", "VALUE PROPOSITION", "ID.DECISION MAKERS",
               "PERCEPTION ANALYSIS", "PROPOSAL/PRICE QUOTE", "NEGOTIATION/REVIEW")
WON_STAGE, LOST_STAGE = "CLOSED WON", "CLOSED LOST"
#: column widths of the peer's models that mapped values must fit (the ORM does not check them)
MAX_LENGTH = {
    "account.name": 64, "account.email": 254, "account.phone": 128, "account.billing_address_line": 255,
    "account.billing_postcode": 64, "account.billing_city": 255, "account.billing_country": 3,
    "account.contact_name": 120, "contact.first_name": 255, "contact.last_name": 255, "contact.email": 254,
    "tag.name": 20, "opportunity.name": 64,
}


@dataclasses.dataclass(frozen=True)
class PeerContact:
    first_name: str
    last_name: str
    email: str
    description: str


@dataclasses.dataclass(frozen=True)
class PeerAccount:
    name: str
    email: str
    phone: str
    industry: str | None
    billing_address_line: str | None
    billing_postcode: str | None
    billing_city: str | None
    billing_country: str | None
    contact_name: str
    tags: tuple[str, ...]
    #: the sales rep's email (a user of the peer)
    assigned_to: str
    contact: PeerContact | None = None
    status: str = "open"


@dataclasses.dataclass(frozen=True)
class PeerOpportunity:
    name: str
    #: the email of the account it belongs to (unique in the data)
    account_email: str
    owner_email: str
    amount: Decimal
    currency: str
    stage: str
    closed_on: str | None


def map_row(row: Mapping[str, str]) -> PeerAccount:
    """One dataset row as the peer's account (with its contact, if the row has one)."""
    person = row["kind"] == "person"
    name = f"{row['first_name']} {row['last_name']}" if person else row["name"]
    contact = None
    if row.get("contact_email"):
        contact = PeerContact(row["contact_first_name"], row["contact_last_name"], row["contact_email"],
                              row.get("contact_job_title", ""))
    contact_name = name if person else (f"{contact.first_name} {contact.last_name}" if contact else "")
    return PeerAccount(
        name=name, email=row["email"], phone=row["phone"],
        industry=INDUSTRY_OF_SEGMENT.get(row.get("custom.segment", "")),
        billing_address_line=row.get("address_line1"), billing_postcode=row.get("postal_code"),
        billing_city=row.get("city"), billing_country=row.get("country"), contact_name=contact_name,
        tags=tuple(t for t in row.get("tags", "").split(";") if t),
        assigned_to=row["sales_reps"].split(";")[0], contact=contact)


def map_rows(rows: Iterable[Mapping[str, str]]) -> Iterator[PeerAccount]:
    for row in rows:
        yield map_row(row)


def map_deal(deal: Mapping[str, object]) -> PeerOpportunity:
    """A deal as ``compare.export_deals`` writes it: ``title``, ``party_email``, ``owner_email``,
    ``amount``, ``currency``, ``status`` (open/won/lost), ``open_position`` (0-based, open deals)
    and ``closed_at`` (ISO text or None)."""
    status = deal["status"]
    if status == "won":
        stage = WON_STAGE
    elif status == "lost":
        stage = LOST_STAGE
    elif status == "open":
        stage = OPEN_STAGES[min(int(deal["open_position"] or 0), len(OPEN_STAGES) - 1)]
    else:
        raise ValueError(f"deal {deal.get('title')!r}: unknown status {status!r}")
    closed = deal.get("closed_at")
    return PeerOpportunity(
        name=str(deal["title"]), account_email=str(deal["party_email"]), owner_email=str(deal["owner_email"]),
        amount=Decimal(str(deal["amount"])).quantize(Decimal("0.01")), currency=str(deal["currency"]),
        stage=stage, closed_on=str(closed)[:10] if closed else None)


def too_long(account: PeerAccount) -> list[str]:
    """The fields of ``account`` (and its contact) wider than the peer's columns: none, for the
    benchmark's data (the test holds the generator to it)."""
    values = {f"account.{k}": getattr(account, k) for k in (
        "name", "email", "phone", "billing_address_line", "billing_postcode", "billing_city",
        "billing_country", "contact_name")}
    values.update({f"tag.name#{i}": t for i, t in enumerate(account.tags)})
    if account.contact is not None:
        values.update({f"contact.{k}": getattr(account.contact, k) for k in ("first_name", "last_name", "email")})
    return [k for k, v in values.items() if v is not None and len(v) > MAX_LENGTH[k.split("#")[0]]]
