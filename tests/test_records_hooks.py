"""The record and stage hooks: each fires (or vetoes, or contributes) for enabled plugins only.

React-hooks run from the outbox right after commit (inline in tests), so a plugin appends to a
list and the test looks at it after the service call.
"""

from decimal import Decimal

import pytest
from markupsafe import Markup

from crmcore import Veto, hookimpl
from crmcore.pipelines import service as pipelines
from crmcore.records import service as records


def _stage(ctx, name, record_type="deal"):
    pipeline = pipelines.list_pipelines(ctx, record_type)[0]
    return next(s for s in pipeline.stages if s.name == name)


class Recorder:
    """Records every react-hook call as (hook, arguments)."""

    def __init__(self):
        self.calls = []

    @hookimpl
    def crm_after_record_created(self, ctx, record):
        self.calls.append(("created", record.id, record.title))

    @hookimpl
    def crm_after_record_updated(self, ctx, record, changes):
        self.calls.append(("updated", record.id, changes))

    @hookimpl
    def crm_after_stage_change(self, ctx, record, from_stage, to_stage):
        self.calls.append(("stage", record.id, from_stage.name if from_stage else None, to_stage.name))

    @hookimpl
    def crm_after_record_won(self, ctx, record):
        self.calls.append(("won", record.id, record.status))

    @hookimpl
    def crm_after_record_lost(self, ctx, record, lost_reason):
        self.calls.append(("lost", record.id, lost_reason))

    @hookimpl
    def crm_after_record_reopened(self, ctx, record):
        self.calls.append(("reopened", record.id, record.status))

    @hookimpl
    def crm_after_lead_qualified(self, ctx, lead, deal):
        self.calls.append(("qualified", lead.id, deal.id))

    def of(self, kind):
        return [c for c in self.calls if c[0] == kind]


@pytest.fixture
def recorder(ctx, register_plugin):
    plugin = Recorder()
    register_plugin(plugin, enable_for=ctx)
    return plugin


def test_hook_crm_before_stage_change(ctx, other_ctx, register_plugin):
    seen = []

    class Checker:
        @hookimpl
        def crm_before_stage_change(self, ctx, record, from_stage, to_stage):
            seen.append((record.id, from_stage.name, to_stage.name, record.stage_id))
            if to_stage.name == "Negotiation":
                raise Veto("legal must approve first")

    name = register_plugin(Checker(), enable_for=ctx)
    deal = records.create_record(ctx, "deal", {"title": "x"})
    records.move_stage(ctx, deal.id, _stage(ctx, "Proposal").id)
    # called before the change: the record is still in its old stage
    assert seen == [(deal.id, "Qualification", "Proposal", _stage(ctx, "Qualification").id)]
    with pytest.raises(Veto) as exc:
        records.move_stage(ctx, deal.id, _stage(ctx, "Negotiation").id)
    assert exc.value.plugin == name and exc.value.message == "legal must approve first"
    assert records.get_record(ctx, deal.id).stage_id == _stage(ctx, "Proposal").id
    assert len(records.stage_history(ctx, deal.id)) == 2
    # also for closes and reopens
    records.close_lost(ctx, deal.id, "price")
    records.reopen(ctx, deal.id)
    assert [s[2] for s in seen[-2:]] == ["Lost", "Proposal"]
    # not in a business that has not enabled the plugin
    theirs = records.create_record(other_ctx, "deal", {"title": "y"})
    records.move_stage(other_ctx, theirs.id, _stage(other_ctx, "Negotiation").id)
    assert all(s[0] != theirs.id for s in seen)


def test_hook_crm_before_record_save(ctx, other_ctx, register_plugin, client):
    from sqlalchemy import func, select

    from crmcore.audit.models import AuditEntry
    from crmcore.records.models import Record

    seen = []

    class Guard:
        """Keeps 'locked' deals as they are, and refuses new deals titled 'forbidden'."""

        @hookimpl
        def crm_before_record_save(self, ctx, record, changes, created):
            seen.append((record.id, record.title, dict(changes), created))
            if created and record.title == "forbidden":
                raise Veto("that title is reserved")
            if not created and "locked" in changes.get("title", [""])[0]:
                raise Veto(f"{changes['title'][0]} is locked")

    name = register_plugin(Guard(), enable_for=ctx)
    deal = records.create_record(ctx, "deal", {"title": "Open one", "amount": "10"})
    # a new record: no id yet, its given fields as [None, value], the defaults applied
    assert seen[0][0] is None and seen[0][3] is True
    assert seen[0][2]["title"] == [None, "Open one"] and seen[0][2]["amount"] == [None, "10"]
    assert seen[0][2]["type"] == [None, "deal"] and "reference" not in seen[0][2]
    records.update_record(ctx, deal.id, {"title": "Open one, locked"})
    assert seen[-1] == (deal.id, "Open one, locked", {"title": ["Open one", "Open one, locked"]}, False)
    count_before = ctx.session.scalar(select(func.count()).select_from(Record))
    audits_before = ctx.session.scalar(select(func.count()).select_from(AuditEntry))
    with pytest.raises(Veto) as exc:
        records.update_record(ctx, deal.id, {"title": "Renamed", "amount": "99"})
    assert exc.value.plugin == name and exc.value.message == "Open one, locked is locked"
    kept = records.get_record(ctx, deal.id)
    assert (kept.title, kept.amount) == ("Open one, locked", Decimal("10"))
    with pytest.raises(Veto):
        records.create_record(ctx, "deal", {"title": "forbidden"})
    assert ctx.session.scalar(select(func.count()).select_from(Record)) == count_before
    assert ctx.session.scalar(select(func.count()).select_from(AuditEntry)) == audits_before
    # an update that changes nothing asks nothing
    calls = len(seen)
    records.update_record(ctx, deal.id, {"title": "Open one, locked"})
    assert len(seen) == calls
    # the edit form shows the veto and keeps the record as it was
    response = client.post(f"/records/{deal.id}/edit", data={"title": "From the form"})
    page = response.get_data(as_text=True)
    assert response.status_code == 409 and "Open one, locked is locked" in page
    assert 'value="From the form"' in page  # what the user typed is kept
    response = client.post("/records/deal/new", data={"title": "forbidden"})
    assert response.status_code == 409 and "that title is reserved" in response.get_data(as_text=True)
    assert records.get_record(ctx, deal.id).title == "Open one, locked"
    # not called in a business that has not enabled the plugin
    records.create_record(other_ctx, "deal", {"title": "forbidden"})
    assert all(entry[1] != "forbidden" or entry[3] for entry in seen)


def test_hook_crm_after_stage_change(ctx, recorder):
    deal = records.create_record(ctx, "deal", {"title": "x"})
    records.move_stage(ctx, deal.id, _stage(ctx, "Proposal").id)
    assert recorder.of("stage") == [("stage", deal.id, "Qualification", "Proposal")]
    records.close_won(ctx, deal.id)
    assert recorder.of("stage")[-1] == ("stage", deal.id, "Proposal", "Won")


def test_hook_crm_after_record_created(ctx, other_ctx, recorder):
    deal = records.create_record(ctx, "deal", {"title": "Printers"})
    assert recorder.of("created") == [("created", deal.id, "Printers")]
    records.create_record(other_ctx, "deal", {"title": "theirs"})
    assert len(recorder.of("created")) == 1
    with pytest.raises(Exception):  # noqa: B017 - a failed create fires nothing
        records.create_record(ctx, "deal", {"title": ""})
    assert len(recorder.of("created")) == 1


def test_hook_crm_after_record_updated(ctx, recorder):
    deal = records.create_record(ctx, "deal", {"title": "x"})
    records.update_record(ctx, deal.id, {"title": "Printers", "amount": Decimal("12.50")})
    assert recorder.of("updated") == [("updated", deal.id, {"title": ["x", "Printers"], "amount": [None, "12.50"]})]
    records.update_record(ctx, deal.id, {"title": "Printers"})  # no change: no hook
    assert len(recorder.of("updated")) == 1
    records.move_stage(ctx, deal.id, _stage(ctx, "Proposal").id)  # a move is not an update
    assert len(recorder.of("updated")) == 1


def test_hook_crm_after_record_won(ctx, recorder):
    deal = records.create_record(ctx, "deal", {"title": "x"})
    records.close_won(ctx, deal.id)
    assert recorder.of("won") == [("won", deal.id, "won")]
    other = records.create_record(ctx, "deal", {"title": "y"})
    records.move_stage(ctx, other.id, _stage(ctx, "Won").id)  # moving into a won stage wins too
    assert recorder.of("won")[-1] == ("won", other.id, "won")


def test_hook_crm_after_record_lost(ctx, recorder):
    deal = records.create_record(ctx, "deal", {"title": "x"})
    records.close_lost(ctx, deal.id, "competitor")
    assert recorder.of("lost") == [("lost", deal.id, "Went with a competitor")]
    assert recorder.of("won") == []


def test_hook_crm_after_record_reopened(ctx, recorder):
    deal = records.create_record(ctx, "deal", {"title": "x"})
    records.close_lost(ctx, deal.id, "price")
    records.reopen(ctx, deal.id)
    assert recorder.of("reopened") == [("reopened", deal.id, "open")]
    assert recorder.of("stage")[-1] == ("stage", deal.id, "Lost", "Qualification")


def test_hook_crm_after_lead_qualified(ctx, recorder):
    lead = records.create_record(ctx, "lead", {"title": "Interested"})
    deal = records.qualify_lead(ctx, lead.id)
    assert recorder.of("qualified") == [("qualified", lead.id, deal.id)]
    assert ("won", lead.id, "won") in recorder.calls
    assert ("created", deal.id, "Interested") in recorder.calls


def test_hook_crm_record_defaults(ctx, other_ctx, register_plugin):
    from crmcore.parties.service import create_party

    class Autofill:
        @hookimpl
        def crm_record_defaults(self, ctx, record_type, source, party):
            if record_type != "deal":
                return None
            return {"title": f"Deal for {party.name}" if party else "New deal", "currency": "JPY",
                    "expected_close_date": "2030-12-31", "bogus": 1}

    party = create_party(ctx, {"kind": "organisation", "name": "Initech", "currency": "USD"})
    source = records.create_record(ctx, "deal", {"title": "First", "party_id": party.id})
    # without the plugin: the core's own defaults
    assert records.record_defaults(ctx, "deal", source_id=source.id)["title"] == "Follow-up: First"
    register_plugin(Autofill(), enable_for=ctx)
    defaults = records.record_defaults(ctx, "deal", source_id=source.id)
    # the plugin's values override the core's; the core's fill the rest
    assert defaults["title"] == "Deal for Initech" and defaults["currency"] == "JPY"
    assert defaults["party_id"] == party.id
    # applied by create_record to what the caller did not give (unknown keys ignored)
    made = records.create_next_step(ctx, source.id, "deal", {"currency": "EUR"})
    assert (made.title, made.currency, made.party_id) == ("Deal for Initech", "EUR", party.id)
    assert str(made.expected_close_date) == "2030-12-31"
    assert records.create_record(ctx, "action", {"title": "call"}).currency == "EUR"
    # not for a business without the plugin
    assert records.record_defaults(other_ctx, "deal") == {}


def test_hook_crm_record_defaults_lines_of_every_plugin_are_kept(ctx, other_ctx, register_plugin, caplog):
    """Lines (a quote's trade-in credit, an inventory unit) are not first-wins like fields: each
    plugin's lines are kept, in call order; a malformed value is logged and ignored."""
    class TradeIn:
        @hookimpl
        def crm_record_defaults(self, ctx, record_type, source, party):
            return {"lines": [{"description": "Trade-in: old tractor", "quantity": "1", "unit_price": "-5000"}]}

    class Inventory:
        @hookimpl
        def crm_record_defaults(self, ctx, record_type, source, party):
            return {"title": "Unit offer", "lines": [{"description": "Tractor X200", "quantity": "1",
                                                      "unit_price": "48000"}, "not a line"]}

    class Broken:
        @hookimpl
        def crm_record_defaults(self, ctx, record_type, source, party):
            return {"lines": "one line"}

    register_plugin(TradeIn(), name="tp-trade-in", enable_for=ctx)
    register_plugin(Inventory(), name="tp-inventory", enable_for=ctx)
    register_plugin(Broken(), name="tp-broken-lines", enable_for=ctx)
    defaults = records.record_defaults(ctx, "deal")
    # pluggy calls the plugin registered last first
    assert [line["description"] for line in defaults["lines"]] == ["Tractor X200", "Trade-in: old tractor"]
    assert defaults["title"] == "Unit offer" and "gave lines as str" in caplog.text
    # the core's create ignores lines: they are for the plugin owning the record type
    made = records.create_record(ctx, "deal", {"title": "Tractor deal"})
    assert made.title == "Tractor deal"
    assert "lines" not in records.record_defaults(other_ctx, "deal")


def test_hook_crm_record_defaults_bad_value_is_named(ctx, register_plugin):
    from crmcore.errors import ValidationFailed

    class Broken:
        @hookimpl
        def crm_record_defaults(self, ctx, record_type, source, party):
            return {"amount": "-3"}

    register_plugin(Broken(), enable_for=ctx)
    with pytest.raises(ValidationFailed) as exc:
        records.create_record(ctx, "deal", {"title": "x"})
    assert "amount" in exc.value.errors and "default" in exc.value.message
    assert records.create_record(ctx, "deal", {"title": "x", "amount": "3"}).amount == Decimal("3")


def test_hook_crm_record_panels(ctx, other_ctx, register_plugin):
    class Panels:
        @hookimpl
        def crm_record_panels(self, ctx, record):
            return [{"title": "Credit check", "html": Markup("<p>{}</p>").format(record.title), "order": 5}]

    name = register_plugin(Panels(), enable_for=ctx)
    mine = records.create_record(ctx, "deal", {"title": "<b>x</b>"})
    theirs = records.create_record(other_ctx, "deal", {"title": "y"})
    collected = ctx.collect("crm_record_panels", record=mine)
    assert [(plugin, panels[0]["title"]) for plugin, panels in collected] == [(name, "Credit check")]
    panels = records.record_panels(ctx, mine.id)
    assert [(p["plugin"], p["title"], str(p["html"])) for p in panels] == [
        (name, "Credit check", "<p>&lt;b&gt;x&lt;/b&gt;</p>")]
    assert other_ctx.collect("crm_record_panels", record=theirs) == []
    assert records.record_panels(other_ctx, theirs.id) == []
