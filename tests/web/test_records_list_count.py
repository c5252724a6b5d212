"""Record lists show their rows before their count: the page runs no count query and points at
``/records/<type>/count`` (filled in by crm.js, the parties' code), which answers the capped
count of the same filters for this business only; ``?count=1`` puts it in the page without
JavaScript."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import event

from crmcore.fields.service import define_field
from crmcore.plugins.drivers import register_driver, unregister_driver
from crmcore.records import service as records
from crmcore.records.models import Record
from crmcore.records.types import RecordType
from crmcore.testing import TEST_PASSWORD, CrmClient

TICKET = RecordType("ticket", "Ticket", "Tickets", has_pipeline=False, reference_target="record:ticket")


class TicketOwner:
    """The plugin owning the ``ticket`` type (no hooks needed)."""


def create(ctx, title: str, record_type: str = "deal", **data) -> int:
    return records.create_record(ctx, record_type, {"title": title, **data}).id


def text_of(response) -> str:
    return response.get_data(as_text=True)


def count_url(page: str) -> str:
    return html.unescape(re.search(r'data-count-url="([^"]+)"', page).group(1))


def statements_of(crm, fn) -> list[str]:
    seen: list[str] = []

    def before(_conn, _cursor, statement, *_args):
        seen.append(statement)

    event.listen(crm.db.engine, "before_cursor_execute", before)
    try:
        fn()
    finally:
        event.remove(crm.db.engine, "before_cursor_execute", before)
    return seen


def record_counts(statements: list[str]) -> list[str]:
    return [s for s in statements if "count(*)" in s.lower() and "records" in s.lower()]


@pytest.fixture
def units(ctx):
    define_field(ctx, "record:deal", {"key": "units", "label": "Units", "type": "integer"})
    define_field(ctx, "record:deal", {"key": "region", "label": "Region", "type": "text"})


def test_the_page_comes_without_its_count_and_says_where_to_fetch_it(crm, client, ctx, other_ctx, units):
    for i in range(3):
        create(ctx, f"North {i}", custom={"region": "North", "units": 2})
    create(ctx, "South", custom={"region": "South", "units": 2})
    records.close_won(ctx, create(ctx, "Won north", custom={"region": "North"}))
    for i in range(5):
        create(other_ctx, f"North {i}")
    client.get("/records/deal/")  # warm the caches
    query = "status=open&custom.region=North&limit=2"
    responses: list = []
    statements = statements_of(crm, lambda: responses.append(client.get(f"/records/deal/?{query}")))
    page = text_of(responses[0])
    assert responses[0].status_code == 200
    assert record_counts(statements) == []  # no count query on the page
    assert " found<" not in page and " deals</span>" not in page
    assert len(re.findall(r'<td><a href="/records/(\d+)">', page)) == 2  # the rows are there
    url = count_url(page)
    assert url == "/records/deal/count?status=open&custom.region=North"  # filters, not the page size
    statements = statements_of(crm, lambda: responses.append(client.get(url)))
    assert responses[1].status_code == 200
    assert responses[1].get_json() == {"count": 3, "capped": False, "text": "3 found"}
    assert len(record_counts(statements)) == 1
    assert client.get("/records/deal/count").get_json()["count"] == 5
    assert client.get("/records/deal/count?status=won").get_json()["count"] == 1
    assert client.get("/records/deal/count?custom.units=2&q=nor").get_json()["count"] == 3
    assert client.get("/records/lead/count").get_json()["count"] == 0


def test_without_javascript_count_1_puts_the_count_in_the_page(client, ctx):
    for i in range(4):
        create(ctx, f"Deal {i}")
    page = text_of(client.get("/records/deal/?limit=2"))
    assert 'href="/records/deal/?limit=2&amp;count=1">Count them</a></noscript>' in page
    counted = text_of(client.get("/records/deal/?limit=2&count=1"))
    assert "4 found" in counted and "4 deals" in counted and "data-count-url" not in counted
    # the next page's link keeps asking for the count; the filter form does not carry it
    assert "count=1" in re.search(r'<a rel="next" href="([^"]+)"', counted).group(1)


def test_the_count_answers_1000_plus_at_the_cap(client, ctx, other_ctx):
    ctx.session.add_all([Record(type="action", title=f"Call {i}") for i in range(1_001)])
    ctx.session.commit()
    assert client.get("/records/action/count").get_json() == {"count": 1000, "capped": True,
                                                             "text": "1,000+ found"}
    assert client.get("/records/action/count?q=call%20100").get_json()["text"] == "2 found"
    assert "1,000+ found" in text_of(client.get("/records/action/?count=1"))
    other = CrmClient(client.raw.application.test_client())
    assert other.login(other_ctx.user.email).status_code == 302
    assert other.get("/records/action/count").get_json()["count"] == 0


def test_bad_filters_are_a_422_naming_the_field(client, ctx, units):
    create(ctx, "Deal")
    answer = client.get("/records/deal/count?custom.units=many", headers={"Accept": "application/json"})
    assert answer.status_code == 422
    assert "custom.units" in answer.get_json()["errors"]
    answer = client.get("/records/deal/count?status=maybe", headers={"Accept": "application/json"})
    assert answer.status_code == 422 and "status" in answer.get_json()["errors"]
    answer = client.get("/records/deal/count?owner_id=someone", headers={"Accept": "application/json"})
    assert answer.status_code == 422 and "owner_id" in answer.get_json()["errors"]
    page = client.get("/records/deal/?custom.units=many")
    assert page.status_code == 422 and "data-count-url" not in text_of(page)  # nothing to count
    assert client.get("/records/spaceship/count").status_code == 404


def test_who_may_count_what(app, client, ctx, other_ctx, make_user, business, register_plugin):
    create(ctx, "Mine")
    reader = make_user(business, "read_only")
    reading = CrmClient(app.test_client())
    assert reading.login(reader.user.email).status_code == 302
    assert reading.get("/records/deal/count").get_json()["count"] == 1
    anonymous = app.test_client().get("/records/deal/count")
    assert anonymous.status_code in (302, 401) and b'"count"' not in anonymous.data
    # a plugin's type is counted where its plugin is enabled only
    name = register_plugin(TicketOwner(), enable_for=ctx)
    register_driver("crmcore.record_types", "ticket", TICKET, name)
    try:
        create(ctx, "A ticket", "ticket")
        assert client.get("/records/ticket/count").get_json()["count"] == 1
        other = CrmClient(app.test_client())
        assert other.login(other_ctx.user.email).status_code == 302
        assert other.get("/records/ticket/count").status_code == 404
        assert other.get("/records/ticket/").status_code == 404
    finally:
        unregister_driver("crmcore.record_types", "ticket")


def test_the_list_fills_in_its_count_after_its_rows_are_shown(browse, ctx):
    """The count request is held until the rows are checked: the page stood without it."""
    for i in range(3):
        create(ctx, f"Counted {i}")
    records.close_won(ctx, create(ctx, "Not counted"))
    email = ctx.user.email

    def run(page):
        page.goto("/login")
        page.fill("#email", email)
        page.fill("#password", TEST_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("header.topbar")
        held = []
        page.route("**/records/deal/count*", lambda route: held.append(route))
        page.goto("/records/deal/?status=open")
        slot = page.locator(".toolbar [data-count-url]")
        assert page.locator(".records-list tbody a").count() == 3
        for _ in range(200):  # the page's script asked for its count, which is held
            if held:
                break
            page.wait_for_timeout(25)
        assert held and slot.inner_text().strip() == ""
        held[0].continue_()
        slot.filter(has_text="found").wait_for()
        assert slot.inner_text() == "3 found"

    browse(run)
