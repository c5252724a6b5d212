"""A quote's life: versions, sending by hand, accepting and refusing (which quotes may be), the
effects of acceptance (customer, deal stage, the hook for order plugins), lines other plugins
propose (an inventory unit and a trade-in credit), expiry, and per-business enablement."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from crm_catalog import service as catalog
from crm_quoting import NAME, expiry, service
from sqlalchemy import text

from crmcore import PluginInfo, hookimpl
from crmcore.errors import Conflict, NotFound, ValidationFailed
from crmcore.outbox.worker import Worker
from crmcore.parties.service import get_party
from crmcore.pipelines.service import create_pipeline
from crmcore.plugins.service import disable_plugin, enable_plugin, save_settings
from crmcore.records import service as records
from crmcore.timeline.service import feed

from .conftest import line, new_deal, new_party, new_product  # noqa: TID252


def sql(ctx, statement, **params):
    with ctx.crm.db.engine.begin() as conn:
        return conn.execute(text(statement), params)


def summaries(ctx, record_id):
    return [e.summary for e in feed(ctx, record_id=record_id).items]


def quote_with_lines(ctx, party=None, **data):
    party = party or new_party(ctx)
    return service.create_quote(ctx, {"party_id": party.id, "lines": [line()], **data})


def pass_days(ctx, record_id, days):
    """Time passes: the quote's dates move ``days`` into the past."""
    sql(ctx, "update quoting_quotes set quote_date = :d, valid_until = :v where record_id = :r",
        d=service.today(ctx) - dt.timedelta(days=days + 30), v=service.today(ctx) - dt.timedelta(days=days),
        r=record_id)


# -- versions -------------------------------------------------------------------------------------


def test_a_new_version_copies_the_quote_and_supersedes_it(q):
    party = new_party(q)
    deal = new_deal(q, party)
    first = service.create_quote(q, {"deal_id": deal.id, "intro": "Dear customer", "lines": [
        line(description="A", unit_price="10"), line(description="B", unit_price="-2", tax_rate="0")]})
    service.mark_sent(q, first.id)
    second = service.new_version(q, first.id)
    old, new = service.get_quote(q, first.id), service.get_quote(q, second.id)
    assert old.status == "superseded" and old.revised_by.id == second.id
    assert new.status == "draft" and new.quote.version == 2 and new.quote.revises_id == first.id
    assert new.revises.id == first.id and new.quote.deal_id == deal.id and new.quote.intro == "Dear customer"
    assert second.reference != first.reference  # each version has its own number
    assert [(ln.description, ln.net_amount) for ln in new.lines] == [("A", D("10.00")), ("B", D("-2.00"))]
    assert new.quote.net_amount == old.quote.net_amount == D("8.00")
    assert {s.record_id for s in service.quotes_for_deal(q, deal.id)} == {first.id, second.id}
    assert "Superseded by version 2" in " ".join(summaries(q, first.id))
    # the old one is final; the new one is the one to revise and change
    with pytest.raises(Conflict, match="already revised"):
        service.new_version(q, first.id)
    with pytest.raises(Conflict):
        service.accept_quote(q, first.id)
    third = service.new_version(q, second.id)
    assert service.get_quote(q, third.id).quote.version == 3


def test_a_refused_quote_may_be_revised_an_accepted_one_not(q):
    refused = quote_with_lines(q)
    service.refuse_quote(q, refused.id, "Too expensive")
    assert service.get_quote(q, service.new_version(q, refused.id).id).quote.version == 2
    accepted = quote_with_lines(q)
    service.accept_quote(q, accepted.id)
    with pytest.raises(Conflict, match="final"):
        service.new_version(q, accepted.id)


# -- accepting and refusing -----------------------------------------------------------------------


def test_which_quotes_may_be_accepted_or_refused(q):
    draft = quote_with_lines(q)
    result = service.accept_quote(q, draft.id)  # accepted on the spot, without sending
    assert service.get_quote(q, draft.id).status == "accepted" and result.record.id == draft.id
    view = service.get_quote(q, draft.id)
    assert view.quote.accepted_by_id == q.user_id and view.quote.accepted_at is not None
    with pytest.raises(Conflict, match="accepted"):
        service.accept_quote(q, draft.id)
    with pytest.raises(Conflict, match="cannot be refused"):
        service.refuse_quote(q, draft.id, "changed our mind")

    refused = quote_with_lines(q)
    with pytest.raises(ValidationFailed) as exc:
        service.refuse_quote(q, refused.id, "  ")
    assert "reason" in exc.value.errors
    service.refuse_quote(q, refused.id, "Bought elsewhere")
    view = service.get_quote(q, refused.id)
    assert (view.status, view.quote.refusal_reason) == ("refused", "Bought elsewhere")
    with pytest.raises(Conflict, match="refused"):
        service.accept_quote(q, refused.id)

    empty = service.create_quote(q, {"party_id": new_party(q).id, "lines": []})
    with pytest.raises(Conflict, match="no lines"):
        service.accept_quote(q, empty.id)
    with pytest.raises(Conflict, match="no lines"):
        service.mark_sent(q, empty.id)


def test_an_expired_quote_cannot_be_accepted_but_can_be_refused(q):
    sent = quote_with_lines(q)
    service.mark_sent(q, sent.id)
    pass_days(q, sent.id, 1)
    assert service.get_quote(q, sent.id).status == "expired"  # shown at once
    with pytest.raises(Conflict, match="expired on"):
        service.accept_quote(q, sent.id)
    service.refuse_quote(q, sent.id, "Too late")
    assert service.get_quote(q, sent.id).status == "refused"
    # a draft past its day: change the day first
    draft = quote_with_lines(q)
    pass_days(q, draft.id, 2)
    with pytest.raises(Conflict, match="which has passed"):
        service.accept_quote(q, draft.id)
    service.update_quote(q, draft.id, {"valid_until": (service.today(q) + dt.timedelta(days=5)).isoformat()})
    assert service.accept_quote(q, draft.id).record.id == draft.id


def test_accepting_makes_the_prospect_a_customer_and_moves_the_deal(q):
    stages = service.deal_stages(q)
    negotiation = next(s for s in stages if s["kind"] == "open" and s != stages[0])
    service.save_settings(q, {"accepted_stage_id": negotiation["id"], "invoice_on_accept": False})
    party = new_party(q, "Prospect Farm")
    assert get_party(q, party.id).is_prospect and not get_party(q, party.id).is_customer
    deal = new_deal(q, party)
    other_deal = new_deal(q, party, title="Spare parts")
    first = quote_with_lines(q, party, deal_id=deal.id)
    other = quote_with_lines(q, party, deal_id=deal.id)
    result = service.accept_quote(q, first.id)
    assert result.party_became_customer and result.deal_moved_to == negotiation["name"] and result.problems == []
    party = get_party(q, party.id)
    assert party.is_customer and not party.is_prospect
    assert records.get_record(q, deal.id).stage_id == negotiation["id"]
    assert records.get_record(q, other_deal.id).stage_id == stages[0]["id"]
    # other quotes of the deal are left as they are
    assert service.get_quote(q, other.id).status == "draft"
    assert "Quote accepted" in " ".join(summaries(q, first.id))


def test_the_deal_moves_only_within_the_stages_pipeline_and_to_won(q):
    custom = create_pipeline(q, "deal", {"name": "Fleet", "stages": [
        {"name": "Talk", "kind": "open"}, {"name": "Signed", "kind": "won"}, {"name": "Gone", "kind": "lost"}]})
    signed = next(s for s in custom.stages if s.name == "Signed")
    service.save_settings(q, {"accepted_stage_id": signed.id, "invoice_on_accept": False})
    party = new_party(q)
    default_deal = new_deal(q, party)
    fleet_deal = new_deal(q, party, pipeline_id=custom.id)
    service.accept_quote(q, quote_with_lines(q, party, deal_id=default_deal.id).id)
    assert records.get_record(q, default_deal.id).status == "open"  # another pipeline: stays
    result = service.accept_quote(q, quote_with_lines(q, party, deal_id=fleet_deal.id).id)
    deal = records.get_record(q, fleet_deal.id)
    assert (deal.stage_id, deal.status, result.deal_moved_to) == (signed.id, "won", "Signed")
    # a won deal is not moved again: said, and the acceptance stands
    result = service.accept_quote(q, quote_with_lines(q, party, deal_id=fleet_deal.id).id)
    assert result.problems and "it is won" in result.problems[0]


def test_a_veto_on_the_deals_move_does_not_undo_the_acceptance(q, register_plugin):
    from crmcore import Veto

    class NoMoves:
        @hookimpl
        def crm_before_stage_change(self, ctx, record, from_stage, to_stage):
            raise Veto("deals move only in the weekly meeting")

    stages = service.deal_stages(q)
    service.save_settings(q, {"accepted_stage_id": stages[1]["id"], "invoice_on_accept": False})
    party = new_party(q)
    deal = new_deal(q, party)
    register_plugin(NoMoves(), enable_for=q)
    record = quote_with_lines(q, party, deal_id=deal.id)
    result = service.accept_quote(q, record.id)
    assert service.get_quote(q, record.id).status == "accepted" and result.party_became_customer
    assert result.deal_moved_to is None and "weekly meeting" in result.problems[0]
    assert records.get_record(q, deal.id).stage_id == stages[0]["id"]
    assert any("weekly meeting" in s for s in summaries(q, record.id))


def test_the_accepted_stage_setting_is_checked(q, other_q):
    stages = service.deal_stages(q)
    theirs = service.deal_stages(other_q)[0]
    for bad in (theirs["id"], 10**9, "soon", 0):
        with pytest.raises(ValidationFailed) as exc:
            service.save_settings(q, {"accepted_stage_id": bad})
        assert "accepted_stage_id" in exc.value.errors
    with pytest.raises(ValidationFailed) as exc:
        service.save_settings(q, {"tax_rates": ["0", "21"], "default_tax_rate": "6"})
    assert "default_tax_rate" in exc.value.errors
    service.save_settings(q, {"accepted_stage_id": stages[-1]["id"], "tax_rates": ["0", "6", "21"],
                              "default_tax_rate": "6"})
    cfg = service.settings(q)
    assert cfg.accepted_stage_id == stages[-1]["id"] and cfg.tax_rates == (D(0), D(6), D(21))
    record = service.create_quote(q, {"party_id": new_party(q).id, "lines": [line(tax_rate=None)]})
    assert service.get_quote(q, record.id).lines[0].tax_rate == D(6)


def test_accepting_raises_the_hook_for_order_plugins(q, register_plugin):
    heard = []

    class Orders:
        @hookimpl
        def crm_after_quote_accepted(self, ctx, quote):
            heard.append((ctx.business_id, quote.id, service.get_quote(ctx, quote.id).status))

    register_plugin(Orders(), name="test-orders", info=PluginInfo(title="Orders", depends=(NAME,)), enable_for=q)
    record = quote_with_lines(q)
    service.accept_quote(q, record.id)
    assert heard == [(q.business_id, record.id, "accepted")]


# -- lines other plugins propose ------------------------------------------------------------------


class Inventory:
    """An inventory plugin: the deal's unit, a catalog product."""

    def __init__(self, product_id):
        self.product_id = product_id

    @hookimpl
    def crm_record_defaults(self, ctx, record_type, source, party):
        if record_type != "quote" or source is None:
            return None
        return {"lines": [{"product_id": self.product_id, "quantity": "1", "description": "Used tractor, VIN 123"}]}


class TradeIn:
    """A trade-in plugin: a credit line for the customer's old machine, and one it got wrong."""

    @hookimpl
    def crm_record_defaults(self, ctx, record_type, source, party):
        if record_type != "quote":
            return None
        return {"title": "ignored here", "lines": [
            {"description": "Trade-in: old tractor", "quantity": "1", "unit_price": "-8000", "tax_rate": "0",
             "unknown_key": "dropped"},
            {"description": "Bad line", "quantity": "-1", "unit_price": "5"},
        ]}


def test_an_inventory_unit_and_a_trade_in_make_the_quote(q, register_plugin):
    unit = new_product(q, sku="USED-123", name="Used tractor", unit_price=D("30000"), tax_rate=D(21))
    party = new_party(q)
    catalog.add_special_price(q, {"party_id": party.id, "product_id": unit.id, "unit_price": "28000"})
    inventory = register_plugin(Inventory(unit.id), enable_for=q)
    trade_in = register_plugin(TradeIn(), enable_for=q)
    deal = new_deal(q, party)
    record = service.create_quote_for_deal(q, deal.id)
    view = service.get_quote(q, record.id)
    got = sorted((ln.description, ln.unit_price, ln.price_source, ln.origin) for ln in view.lines)
    assert got == [("Trade-in: old tractor", D("-8000"), None, trade_in),
                   ("Used tractor, VIN 123", D("28000"), "special price", inventory)]
    assert view.quote.net_amount == D("20000.00") and view.quote.tax_amount == D("5880.00")
    assert record.title == "Quote: New tractor"
    assert any("Bad line" in s and "left out" in s for s in summaries(q, record.id))
    # lines given by the caller replace the proposals
    given = service.create_quote_for_deal(q, deal.id, {"lines": [line()]})
    assert [ln.description for ln in service.get_quote(q, given.id).lines] == ["Service hour"]


# -- expiry -----------------------------------------------------------------------------------------


def test_the_expiry_job_stores_the_status_after_the_valid_until_day(q):
    record = quote_with_lines(q)
    service.mark_sent(q, record.id)
    quote = service.get_quote(q, record.id).quote
    (job,) = sql(q, "select id, next_attempt_at, status from outbox where kind = :k", k=expiry.KIND).all()
    due = expiry.due_at(q, quote.valid_until)
    assert job.status == "pending"
    assert str(job.next_attempt_at)[:16] == due.strftime("%Y-%m-%d %H:%M")
    # time passes: the day is over and the job is due
    pass_days(q, record.id, 1)
    sql(q, "update outbox set next_attempt_at = :now where id = :id", now=dt.datetime.now(dt.UTC), id=job.id)
    Worker(q.crm, prune=False).run(once=True)
    q.session.rollback()
    assert service.count_by_status(q).get("expired") == 1
    assert any("Quote expired" in s for s in summaries(q, record.id))
    # a quote accepted before its day is left alone by its job
    kept = quote_with_lines(q)
    service.mark_sent(q, kept.id)
    service.accept_quote(q, kept.id)
    assert expiry.expire(q, kept.id) is False


# -- enablement ---------------------------------------------------------------------------------------


def test_quoting_needs_the_catalog_and_keeps_its_data_when_disabled(ctx):
    with pytest.raises(Conflict, match="catalog"):
        enable_plugin(ctx, NAME)
    enable_plugin(ctx, "catalog")
    enable_plugin(ctx, NAME)
    with pytest.raises(Conflict, match="needed by 'quoting'"):
        disable_plugin(ctx, "catalog")
    record = quote_with_lines(ctx)
    disable_plugin(ctx, NAME)
    with pytest.raises(NotFound):
        service.get_quote(ctx, record.id)
    with pytest.raises(ValidationFailed):
        records.create_record(ctx, "quote", {"title": "No quoting here"})
    enable_plugin(ctx, NAME)
    assert service.get_quote(ctx, record.id).lines[0].description == "Service hour"


def test_bad_settings_are_refused_naming_the_field(q):
    for data, field in (({"validity_days": -1}, "validity_days"), ({"tax_rates": []}, "tax_rates"),
                        ({"tax_rates": ["abc"]}, "tax_rates"), ({"bogus": 1}, "bogus"),
                        ({"invoice_on_accept": "perhaps"}, "invoice_on_accept")):
        with pytest.raises(ValidationFailed) as exc:
            save_settings(q, NAME, data)
        assert field in exc.value.errors, exc.value.errors


def test_a_quote_made_by_the_core_form_gets_its_details(q):
    party = new_party(q)
    deal = new_deal(q, party)
    record = records.create_next_step(q, deal.id, "quote", {"title": "Quick quote"})
    view = service.get_quote(q, record.id)  # read: an unsaved draft stands in
    assert view.status == "draft" and view.quote.id is None
    service.set_lines(q, record.id, [line()])
    view = service.get_quote(q, record.id)
    assert view.quote.id is not None and view.quote.deal_id == deal.id and view.quote.net_amount == D("100.00")
    assert [s.record_id for s in service.quotes_for_deal(q, deal.id)] == [record.id]


# -- the invoice draft --------------------------------------------------------------------------------


def test_accepting_drafts_the_invoice_where_invoicing_is_enabled(q):
    from crm_invoicing import service as invoicing

    enable_plugin(q, "invoicing")
    party = new_party(q)
    deal = new_deal(q, party)
    record = service.create_quote(q, {"deal_id": deal.id, "lines": [
        line(description="Bolts", quantity="3", unit_price="0.3333", tax_rate="21"),
        line(description="Labour", quantity="2.5", unit_price="80", discount_percent="12.5", tax_rate="9"),
        line(description="x" * 600, unit_price="-10", tax_rate="0")]})
    result = service.accept_quote(q, record.id)
    assert result.problems == [] and result.invoice_id is not None
    invoice = invoicing.get_invoice(q, result.invoice_id)
    quote = service.get_quote(q, record.id)
    assert invoice.invoice.status == "draft" and invoice.invoice.quote_id == record.id
    assert invoice.invoice.deal_id == deal.id and invoice.record.party_id == party.id
    assert [(ln.net_amount, ln.tax_amount, ln.source_kind, ln.source_id) for ln in invoice.lines] == \
        [(ln.net_amount, ln.tax_amount, "quote_line", ln.id) for ln in quote.lines]
    assert (invoice.invoice.net_amount, invoice.invoice.total_amount) == \
        (quote.quote.net_amount, quote.quote.total_amount)
    assert len(invoice.lines[2].description) == 500
    # without the setting, no invoice
    service.save_settings(q, {"invoice_on_accept": False})
    assert service.accept_quote(q, quote_with_lines(q, party).id).invoice_id is None


def test_an_invoice_that_cannot_be_made_does_not_undo_the_acceptance(q):
    enable_plugin(q, "invoicing")  # its rates: 0, 9 and 21
    service.save_settings(q, {"tax_rates": ["0", "6", "21"], "default_tax_rate": "6"})
    record = quote_with_lines(q)
    result = service.accept_quote(q, record.id)
    assert result.invoice_id is None and "no invoice draft was made" in result.problems[0]
    assert "tax rate" in result.problems[0]
    assert service.get_quote(q, record.id).status == "accepted"
    assert any("no invoice draft was made" in s for s in summaries(q, record.id))
