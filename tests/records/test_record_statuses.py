"""A plugin's own status for its records (hook ``crm_record_statuses``, contract 1.2): shown on
the record's page, in record lists and on the party sheet instead of the core's ``open``; asked
once per page; only the owning plugin's answer counts; a failing plugin leaves ``open``."""

from __future__ import annotations

import re

import pytest

from crmcore import hookimpl
from crmcore.parties import service as parties
from crmcore.plugins.drivers import register_driver, unregister_driver
from crmcore.records import service as records
from crmcore.records.statuses import MAX_STATUS_LENGTH, record_statuses
from crmcore.records.types import RecordType

TICKET = RecordType("ticket", "Ticket", "Tickets", has_pipeline=False, reference_target="record:ticket")


class Owner:
    """Owns ``ticket``; answers from a dict the test sets, counting its calls."""

    def __init__(self) -> None:
        self.answers: dict[int, object] = {}
        self.calls: list[tuple[str, list[int]]] = []
        self.fail = False

    @hookimpl
    def crm_record_statuses(self, ctx, record_type, records):
        self.calls.append((record_type, [r.id for r in records]))
        if self.fail:
            raise RuntimeError("the plugin's database is on fire")
        if record_type != "ticket":
            return None
        return {r.id: self.answers[r.id] for r in records if r.id in self.answers}


class Meddler:
    """Not the owner of ``ticket``, and answers for it (and for deals) anyway."""

    @hookimpl
    def crm_record_statuses(self, ctx, record_type, records):
        return {r.id: "hijacked" for r in records}


@pytest.fixture
def owner(ctx, register_plugin):
    plugin = Owner()
    name = register_plugin(plugin, enable_for=ctx)
    register_driver("crmcore.record_types", "ticket", TICKET, name)
    yield plugin
    unregister_driver("crmcore.record_types", "ticket")


def _badges(html: str) -> list[str]:
    return re.findall(r'<span class="badge [a-z]+">([^<]*)</span>', html)


def test_the_owner_answers_for_its_records_once_per_page(ctx, owner):
    tickets = [records.create_record(ctx, "ticket", {"title": f"T{i}"}) for i in range(5)]
    owner.answers = {tickets[0].id: "waiting on parts", tickets[1].id: "closed"}
    statuses = record_statuses(ctx, tickets)
    assert statuses == {tickets[0].id: "waiting on parts", tickets[1].id: "closed"}
    assert owner.calls == [("ticket", [t.id for t in tickets])]


def test_pipeline_types_are_never_asked(ctx, owner):
    deal = records.create_record(ctx, "deal", {"title": "Big deal"})
    assert record_statuses(ctx, [deal]) == {}
    assert owner.calls == []
    assert record_statuses(ctx, []) == {}


def test_only_the_owning_plugin_counts_and_only_for_ids_asked(ctx, owner, register_plugin):
    register_plugin(Meddler(), enable_for=ctx)
    first, second = (records.create_record(ctx, "ticket", {"title": t}) for t in ("A", "B"))
    owner.answers = {first.id: "sent", second.id: "paid", 999_999: "ghost"}
    assert record_statuses(ctx, [first]) == {first.id: "sent"}


def test_bad_answers_fall_back_to_the_core_status(ctx, owner):
    one, two, three = (records.create_record(ctx, "ticket", {"title": t}) for t in ("A", "B", "C"))
    owner.answers = {one.id: 42, two.id: "   ", three.id: "  much\n  too " + "long " * 20}
    statuses = record_statuses(ctx, [one, two, three])
    assert set(statuses) == {three.id}
    assert statuses[three.id].startswith("much too long")
    assert len(statuses[three.id]) == MAX_STATUS_LENGTH
    owner.fail = True
    assert record_statuses(ctx, [one, two, three]) == {}


def test_a_disabled_owner_is_not_asked(ctx, other_ctx, owner):
    ticket = records.create_record(ctx, "ticket", {"title": "Mine"})
    owner.answers = {ticket.id: "sent"}
    # the plugin is not enabled in the other business: its type does not exist there
    assert record_statuses(other_ctx, [ticket]) == {}
    assert owner.calls == []


def test_hook_crm_record_statuses(ctx, owner, client):
    party = parties.create_party(ctx, {"kind": "organisation", "name": "Initech"})
    sent = records.create_record(ctx, "ticket", {"title": "Sent one", "party_id": party.id})
    plain = records.create_record(ctx, "ticket", {"title": "Plain one", "party_id": party.id})
    owner.answers = {sent.id: "partly <paid>"}

    page = client.get(f"/records/{sent.id}").get_data(as_text=True)
    assert "partly &lt;paid&gt;" in _badges(page)
    assert "partly <paid>" not in page
    assert "open" in _badges(client.get(f"/records/{plain.id}").get_data(as_text=True))

    owner.calls.clear()
    listing = client.get("/records/ticket/").get_data(as_text=True)
    assert sorted(_badges(listing)) == ["open", "partly &lt;paid&gt;"]
    assert len(owner.calls) == 1 and sorted(owner.calls[0][1]) == sorted([sent.id, plain.id])

    sheet = client.get(f"/parties/{party.id}").get_data(as_text=True)
    # the sheet shows a status only where it says more than "open"
    assert "partly &lt;paid&gt;" in _badges(sheet)
    assert "open" not in _badges(sheet)


def test_a_type_without_a_pipeline_offers_no_core_status_filter(ctx, owner, client):
    """Its records are all "open" to the core: filtering or sorting them by the core's status or
    expected close would mean nothing, so the list offers neither (deals keep both)."""
    records.create_record(ctx, "ticket", {"title": "T"})
    tickets = client.get("/records/ticket/").get_data(as_text=True)
    deals = client.get("/records/deal/").get_data(as_text=True)
    assert 'name="status"' not in tickets and "Expected close" not in tickets
    assert 'name="status"' in deals and "Expected close" in deals
