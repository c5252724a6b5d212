"""API list endpoints: filters (custom fields included), cursor pages, capped totals, and a
number of SQL statements that does not grow with the page size."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from crmcore.auth.service import create_api_token
from crmcore.fields.service import define_field
from crmcore.parties.service import create_contact, create_party
from crmcore.records.service import create_record
from crmcore.timeline.service import add_note

PROBLEM = "application/problem+json"


@pytest.fixture
def get(app, ctx):
    """``get(url)`` -> JSON body of a 200 answer of the API, as the owner of acme."""
    client = app.test_client()
    headers = {"Authorization": f"Bearer {create_api_token(ctx, 'lists')[1]}"}

    def fetch(url, status=200):
        response = client.get(f"/api/v1{url}", headers=headers)
        assert response.status_code == status, response.get_data(as_text=True)
        return response.get_json()

    return fetch


def ids(page):
    return [item["id"] for item in page["items"]]


def walk(get, url, limit):
    """Every id of a list, page by page."""
    seen, cursor, pages = [], None, 0
    while True:
        joiner = "&" if "?" in url else "?"
        page = get(f"{url}{joiner}limit={limit}" + (f"&cursor={cursor}" if cursor else ""))
        seen += ids(page)
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return seen, pages


def test_party_filters(ctx, get, make_user):
    rep = make_user(ctx.business, "member")
    define_field(ctx, "party", {"key": "industry", "label": "Industry", "type": "text"})
    define_field(ctx, "party", {"key": "employees", "label": "Employees", "type": "integer"})
    alpha = create_party(ctx, {"name": "Alpha Retail", "is_customer": True, "tags": ["vip", "north"],
                               "prospect_status": "qualified", "potential": "high", "language": "de",
                               "sales_rep_ids": [rep.user_id], "custom": {"industry": "retail", "employees": 40},
                               "mechanisms": [{"kind": "email", "value": "buyer@alpha.example"}]})
    beta = create_party(ctx, {"kind": "person", "first_name": "Bea", "last_name": "Beta", "is_supplier": True,
                              "tags": ["north"], "custom": {"industry": "retail", "employees": 3}})
    gamma = create_party(ctx, {"name": "Gamma Tools", "custom": {"industry": "tools"}})
    assert ids(get("/parties")) == [alpha.id, beta.id, gamma.id]
    cases = {
        "q=alp": [alpha.id], "q=buyer@alpha.example": [alpha.id], f"q={gamma.reference}": [gamma.id],
        "kind=person": [beta.id], "is_customer=true": [alpha.id], "is_supplier=true": [beta.id],
        "is_prospect=true": [gamma.id], "is_prospect=false": [alpha.id, beta.id],
        "prospect_status=qualified": [alpha.id], "potential=high": [alpha.id], "tag=north": [alpha.id, beta.id],
        "tag=north&tag=vip": [alpha.id], "tag=NORTH": [alpha.id, beta.id], f"sales_rep_id={rep.user_id}": [alpha.id],
        "language=de": [alpha.id], "custom.industry=retail": [alpha.id, beta.id],
        "custom.industry=retail&custom.employees=3": [beta.id], "custom.employees=40&tag=vip": [alpha.id],
        "sort=-created": [gamma.id, beta.id, alpha.id], "archived=true": [],
    }
    for query, expected in cases.items():
        page = get(f"/parties?{query}")
        assert ids(page) == expected, query
        assert page["total"] == {"count": len(expected), "capped": False}, query
    assert get("/parties?is_customer=true")["items"][0]["tags"] == ["north", "vip"]


@pytest.mark.parametrize("query, field", [
    ("custom.nope=1", "custom"), ("custom.employees=many", "custom"), ("kind=robot", "kind"),
    ("is_customer=perhaps", "is_customer"), ("prospect_status=unheard_of", "prospect_status"),
    ("limit=0", "limit"), ("limit=201", "limit"), ("limit=ten", "limit"), ("sort=size", "sort"),
    ("cursor=not-a-cursor", "cursor"), ("colour=red", "colour"), ("sales_rep_id=-4", "sales_rep_id"),
    (f"sales_rep_id={2**64}", "sales_rep_id"), ("q=a%00b", "q"), ("language=klingon-xx-yy", "language"),
])
def test_bad_party_filters_are_422(ctx, get, query, field):
    define_field(ctx, "party", {"key": "employees", "label": "Employees", "type": "integer"})
    body = get(f"/parties?{query}", status=422)
    assert field in body["errors"], body


def test_cursor_walk_visits_every_party_once(ctx, get):
    names = [f"Party {n:02d}" for n in range(23)] + ["party 05", "Ärger GmbH", "_under%score"]
    made = [create_party(ctx, {"name": name, "is_customer": n % 2 == 0}).id for n, name in enumerate(names)]
    for sort in ("name", "-created", "-updated"):
        seen, pages = walk(get, f"/parties?sort={sort}", 4)
        assert sorted(seen) == sorted(made) and len(seen) == len(set(seen)), sort
        assert pages == 7
    seen, _ = walk(get, "/parties?is_customer=true", 3)
    assert sorted(seen) == sorted(made[0::2]) and len(seen) == len(set(seen))
    # a cursor of one sort order is refused by another
    cursor = get("/parties?sort=name&limit=2")["next_cursor"]
    assert "cursor" in get(f"/parties?sort=-created&cursor={cursor}", status=422)["errors"]


def test_records_contacts_notes_walks_and_filters(ctx, get):
    define_field(ctx, "record:deal", {"key": "region", "label": "Region", "type": "text"})
    party = create_party(ctx, {"name": "Walker"})
    deals = [create_record(ctx, "deal", {"title": f"Deal {n}", "party_id": party.id if n % 2 else None,
                                         "custom": {"region": "north" if n < 4 else "south"}}).id for n in range(9)]
    lead = create_record(ctx, "lead", {"title": "A lead"}).id
    for sort in ("created", "-created", "updated", "-updated", "title", "-title"):
        seen, _ = walk(get, f"/records?type=deal&sort={sort}", 2)
        assert sorted(seen) == deals and len(set(seen)) == len(seen), sort
    assert sorted(walk(get, "/records", 4)[0]) == sorted([*deals, lead])
    assert ids(get("/records?type=deal&custom.region=north&sort=created")) == deals[:4]
    assert get("/records?custom.region=north", status=422)["errors"]["custom"]
    assert ids(get(f"/records?party_id={party.id}&sort=created")) == deals[1::2]
    assert ids(get("/records?q=deal 8")) == [deals[8]]
    assert ids(get("/records?type=lead&status=open")) == [lead]
    assert get("/records?type=deal")["total"] == {"count": 9, "capped": False}
    assert "cursor" in get(f"/records?sort=title&cursor={get('/records?limit=1')['next_cursor']}",
                           status=422)["errors"]

    contacts = [create_contact(ctx, {"first_name": f"C{n}", "party_id": party.id if n < 5 else None}).id
                for n in range(8)]
    assert sorted(walk(get, "/contacts", 3)[0]) == contacts
    assert sorted(walk(get, f"/contacts?party_id={party.id}", 2)[0]) == contacts[:5]
    assert sorted(walk(get, "/contacts?unassigned=true", 2)[0]) == contacts[5:]
    assert get(f"/contacts?unassigned=true&party_id={party.id}", status=422)["errors"]

    notes = [add_note(ctx, body=f"note {n}", party_id=party.id).id for n in range(7)]
    seen, _ = walk(get, f"/notes?party_id={party.id}", 3)
    assert seen == notes[::-1]


def _statements(crm):
    counted = []

    def count(*_args):
        counted.append(1)

    event.listen(crm.db.engine, "before_cursor_execute", count)
    return counted, lambda: event.remove(crm.db.engine, "before_cursor_execute", count)


@pytest.mark.parametrize("url", [
    "/parties?limit={n}", "/parties?limit={n}&tag=t1&custom.size=5", "/contacts?limit={n}",
    "/records?type=deal&limit={n}", "/notes?party_id={party}&limit={n}",
])
def test_list_queries_do_not_grow_with_the_page(crm, ctx, get, url):
    define_field(ctx, "party", {"key": "size", "label": "Size", "type": "integer"})
    party = create_party(ctx, {"name": "Hub"})
    for n in range(40):
        p = create_party(ctx, {"name": f"P{n}", "tags": ["t1", f"x{n}"], "prospect_status": "new",
                               "potential": "low", "custom": {"size": 5}})
        create_contact(ctx, {"first_name": f"C{n}", "party_id": p.id,
                             "mechanisms": [{"kind": "email", "value": f"c{n}@example.com"}]})
        create_record(ctx, "deal", {"title": f"D{n}", "party_id": p.id})
        add_note(ctx, body=f"N{n}", party_id=party.id)
    counts = []
    get(url.format(n=1, party=party.id))  # the token's first use records last_used_at (a write)
    for size in (5, 40):
        counted, stop = _statements(crm)
        try:
            page = get(url.format(n=size, party=party.id))
        finally:
            stop()
        assert len(page["items"]) == size
        counts.append(len(counted))
    assert counts[0] == counts[1], counts
