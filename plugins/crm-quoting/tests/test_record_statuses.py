"""A quote shows its own status (hook ``crm_record_statuses``, contract 1.2) instead of the
core's "open": draft, sent, accepted, refused, expired (as of today, before the expiry job stored
it) and superseded. One query however many quotes a page shows; other types get None; another
business's quotes are never answered."""

from __future__ import annotations

import datetime as dt
import re

from crm_quoting import service
from crm_quoting.plugin import PLUGIN, crm_record_statuses
from sqlalchemy import text

from crmcore import HOOK_API_VERSION
from crmcore.records import service as records
from crmcore.records.statuses import record_statuses

from .conftest import line, new_deal, new_party, statements  # noqa: TID252


def quote(ctx, party=None):
    party = party or new_party(ctx)
    return service.create_quote(ctx, {"party_id": party.id, "lines": [line()]})


def every_status(ctx):
    """One quote in each status: {status: record}."""
    party = new_party(ctx)
    draft = quote(ctx, party)
    sent = quote(ctx, party)
    service.mark_sent(ctx, sent.id)
    accepted = quote(ctx, party)
    service.mark_sent(ctx, accepted.id)
    service.accept_quote(ctx, accepted.id)
    refused = quote(ctx, party)
    service.refuse_quote(ctx, refused.id, "Too expensive")
    expired = quote(ctx, party)
    service.mark_sent(ctx, expired.id)
    with ctx.crm.db.engine.begin() as conn:  # its day passed; the expiry job has not run yet
        conn.execute(text("update quoting_quotes set valid_until = :d where record_id = :r"),
                     {"d": service.today(ctx) - dt.timedelta(days=1), "r": expired.id})
    superseded = quote(ctx, party)
    service.mark_sent(ctx, superseded.id)
    newer = service.new_version(ctx, superseded.id)
    bare = records.create_record(ctx, "quote", {"title": "Made by the core's form", "party_id": party.id})
    return party, {"draft": draft, "sent": sent, "accepted": accepted, "refused": refused, "expired": expired,
                   "superseded": superseded, "new version": newer, "bare": bare}


def test_the_contract_is_1_2():
    assert HOOK_API_VERSION == "1.2"
    assert PLUGIN.core_api == ">=1.2,<2"


def test_each_status_including_expired_as_of_today(q):
    _party, made = every_status(q)
    q.session.rollback()
    got = record_statuses(q, list(made.values()))
    assert got == {made["draft"].id: "draft", made["sent"].id: "sent", made["accepted"].id: "accepted",
                   made["refused"].id: "refused", made["expired"].id: "expired",
                   made["superseded"].id: "superseded", made["new version"].id: "draft", made["bare"].id: "draft"}
    stored = q.session.execute(text("select status from quoting_quotes where record_id = :r"),
                               {"r": made["expired"].id}).scalar()
    assert stored == "sent"  # shown as expired before the job stores it


def test_one_query_for_many_quotes(q):
    party = new_party(q)
    few = [quote(q, party) for _ in range(2)]
    many = few + [quote(q, party) for _ in range(18)]
    service.mark_sent(q, many[-1].id)
    q.session.rollback()
    counts = []
    for shown in (few, many):
        with statements(q) as seen:
            answer = crm_record_statuses(ctx=q, record_type="quote", records=shown)
        assert set(answer) == {r.id for r in shown}
        counts.append(len([s for s in seen if "quoting_quotes" in s]))
    assert counts == [1, 1]
    assert answer[many[-1].id] == "sent" and answer[many[0].id] == "draft"


def test_other_types_get_none(q):
    party = new_party(q)
    deal = new_deal(q, party)
    one = quote(q, party)
    assert crm_record_statuses(ctx=q, record_type="deal", records=[deal]) is None
    assert crm_record_statuses(ctx=q, record_type="invoice", records=[one]) is None
    assert crm_record_statuses(ctx=q, record_type="quote", records=[one, deal]) == {one.id: "draft"}
    assert crm_record_statuses(ctx=q, record_type="quote", records=[]) == {}


def test_another_business_quotes_are_never_answered(q, other_q):
    mine = quote(q)
    theirs = quote(other_q)
    service.mark_sent(other_q, theirs.id)
    theirs_bare = records.create_record(other_q, "quote", {"title": "Theirs"})
    assert crm_record_statuses(ctx=q, record_type="quote", records=[mine, theirs, theirs_bare]) == {mine.id: "draft"}
    assert record_statuses(other_q, [mine, theirs, theirs_bare]) == {theirs.id: "sent", theirs_bare.id: "draft"}


def test_pages_show_the_quote_status(q, client):
    party, made = every_status(q)
    page = client.get(f"/records/{made['expired'].id}").get_data(as_text=True)
    assert re.search(r'<span class="badge open">expired</span>', page)
    listing = client.get("/records/quote/").get_data(as_text=True)
    for word in ("draft", "sent", "accepted", "refused", "expired", "superseded"):
        assert f">{word}</span>" in listing, word
    sheet = client.get(f"/parties/{party.id}").get_data(as_text=True)
    assert ">accepted</span>" in sheet and ">refused</span>" in sheet
