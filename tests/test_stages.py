"""Stage moves: history, won / lost / reopen, lead qualification, vetoes, and a state machine."""

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import func, inspect, select, update

from crmcore import Veto, hookimpl
from crmcore.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from crmcore.lists.models import ChoiceOption
from crmcore.pipelines import service as pipelines
from crmcore.pipelines.models import Stage, StageChange
from crmcore.records import service as records
from crmcore.records.models import Record, RecordLink
from crmcore.timeline.models import TimelineEvent


def _sales(ctx):
    return pipelines.list_pipelines(ctx, "deal")[0]


def _stage(pipeline, name):
    """The stage ``name`` of ``pipeline``, read again: a use case expires what earlier ones
    loaded, and a stage move no longer reloads the pipeline rows (they come from the cache)."""
    session = inspect(pipeline).session
    return session.scalars(select(Stage).where(Stage.pipeline_id == pipeline.id, Stage.name == name)).one()


def _history_count(ctx, record_id):
    ctx.session.rollback()
    return ctx.session.scalar(select(func.count()).select_from(StageChange).where(StageChange.record_id == record_id))


def _backdate(ctx, record_id, seconds):
    """Pretend the record entered its stage ``seconds`` ago (time passing, without sleeping)."""
    ctx.session.rollback()
    record = ctx.session.get(Record, record_id)
    ctx.session.execute(update(Record).where(Record.id == record_id).values(
        stage_entered_at=record.stage_entered_at - dt.timedelta(seconds=seconds)))
    ctx.session.commit()


# ---------------------------------------------------------------------------------------------
# moves and history


def test_move_records_history(ctx, business, make_user):
    member = make_user(business, "member")
    sales = _sales(ctx)
    deal = records.create_record(ctx, "deal", {"title": "Printers"})
    _backdate(ctx, deal.id, 3600)
    moved = records.move_stage(member, deal.id, _stage(sales, "Proposal").id, note=" sent it ")
    assert moved.stage_id == _stage(sales, "Proposal").id and moved.status == "open"
    history = records.stage_history(ctx, deal.id)
    assert [(h.from_stage.name if h.from_stage else None, h.to_stage.name) for h in history] == [
        (None, "Qualification"), ("Qualification", "Proposal")]
    last = history[-1]
    assert last.user.id == member.user_id and last.user_id == member.user_id
    assert 3600 <= last.seconds_in_from_stage < 3700
    assert last.note == "sent it"
    assert last.changed_at >= history[0].changed_at
    assert abs((moved.stage_entered_at - last.changed_at).total_seconds()) < 1
    kinds = ctx.session.scalars(select(TimelineEvent.kind).where(TimelineEvent.record_id == deal.id)).all()
    assert "stage_changed" in kinds


def test_move_into_the_same_stage_changes_nothing(ctx):
    deal = records.create_record(ctx, "deal", {"title": "x"})
    records.move_stage(ctx, deal.id, deal.stage_id)
    assert _history_count(ctx, deal.id) == 1


def test_stage_of_another_pipeline_is_refused(ctx):
    deal = records.create_record(ctx, "deal", {"title": "x"})
    service = pipelines.list_pipelines(ctx, "incident")[0]
    with pytest.raises(ValidationFailed) as exc:
        records.move_stage(ctx, deal.id, service.stages[1].id)
    assert "belongs to pipeline 'Service', not 'Sales'" in str(exc.value)
    assert records.get_record(ctx, deal.id).stage_id == deal.stage_id
    assert _history_count(ctx, deal.id) == 1


def test_stage_or_record_of_another_business_is_not_found(ctx, other_ctx):
    deal = records.create_record(ctx, "deal", {"title": "x"})
    theirs = _sales(other_ctx)
    with pytest.raises(ValidationFailed) as exc:
        records.move_stage(ctx, deal.id, theirs.stages[1].id)
    assert "not found" in exc.value.errors["stage_id"][0]
    with pytest.raises(NotFound):
        records.move_stage(other_ctx, deal.id, theirs.stages[1].id)
    with pytest.raises(NotFound):
        records.close_won(other_ctx, deal.id)
    with pytest.raises(NotFound):
        records.reopen(other_ctx, deal.id)
    assert _history_count(ctx, deal.id) == 1


def test_archived_stage_is_not_a_target(ctx):
    sales = _sales(ctx)
    deal = records.create_record(ctx, "deal", {"title": "x"})
    pipelines.archive_stage(ctx, _stage(sales, "Negotiation").id)
    with pytest.raises(ValidationFailed, match="archived"):
        records.move_stage(ctx, deal.id, _stage(sales, "Negotiation").id)


def test_read_only_cannot_move(ctx, business, make_user):
    reader = make_user(business, "read_only")
    sales = _sales(ctx)
    deal = records.create_record(ctx, "deal", {"title": "x"})
    for call in (
        lambda: records.move_stage(reader, deal.id, _stage(sales, "Proposal").id),
        lambda: records.close_won(reader, deal.id),
        lambda: records.close_lost(reader, deal.id, "price"),
    ):
        with pytest.raises(PermissionDenied):
            call()
    records.close_won(ctx, deal.id)
    with pytest.raises(PermissionDenied):
        records.reopen(reader, deal.id)
    assert len(records.stage_history(reader, deal.id)) == 2


# ---------------------------------------------------------------------------------------------
# won, lost, reopen


def test_close_won(ctx):
    sales = _sales(ctx)
    deal = records.create_record(ctx, "deal", {"title": "x"})
    won = records.close_won(ctx, deal.id, note="signed")
    assert won.status == "won" and won.stage_id == _stage(sales, "Won").id
    assert won.closed_at is not None
    with pytest.raises(Conflict, match="already won"):
        records.close_won(ctx, deal.id)
    with pytest.raises(Conflict, match="reopen"):
        records.move_stage(ctx, deal.id, _stage(sales, "Proposal").id)


def test_moving_into_a_won_stage_closes_as_won(ctx):
    deal = records.create_record(ctx, "deal", {"title": "x"})
    won = records.move_stage(ctx, deal.id, _stage(_sales(ctx), "Won").id)
    assert won.status == "won" and won.closed_at is not None


def test_close_won_needs_a_won_stage(ctx):
    deal = records.create_record(ctx, "deal", {"title": "x"})
    with pytest.raises(ValidationFailed) as exc:
        records.close_won(ctx, deal.id, stage_id=_stage(_sales(ctx), "Lost").id)
    assert "not a won stage" in exc.value.errors["stage_id"][0]


def test_lost_needs_a_reason(ctx):
    sales = _sales(ctx)
    deal = records.create_record(ctx, "deal", {"title": "x"})
    with pytest.raises(ValidationFailed) as exc:
        records.move_stage(ctx, deal.id, _stage(sales, "Lost").id)
    assert "lost_reason" in exc.value.errors
    for reason in (None, "", "  "):
        with pytest.raises(ValidationFailed) as exc:
            records.close_lost(ctx, deal.id, reason)
        assert "lost_reason" in exc.value.errors
    with pytest.raises(ValidationFailed) as exc:
        records.close_lost(ctx, deal.id, "aliens")
    assert "lost_reason" in exc.value.errors
    assert records.get_record(ctx, deal.id).status == "open"
    assert _history_count(ctx, deal.id) == 1


def test_close_lost_by_value_or_id(ctx):
    deal = records.create_record(ctx, "deal", {"title": "x"})
    lost = records.close_lost(ctx, deal.id, "price", note="too dear")
    price = ctx.session.scalar(select(ChoiceOption).where(ChoiceOption.list_key == "lost_reason",
                                                          ChoiceOption.value == "price"))
    assert (lost.status, lost.lost_reason_id, lost.lost_note) == ("lost", price.id, "too dear")
    assert lost.stage_id == _stage(_sales(ctx), "Lost").id
    other = records.create_record(ctx, "deal", {"title": "y"})
    assert records.close_lost(ctx, other.id, price.id).lost_reason_id == price.id
    with pytest.raises(Conflict, match="already lost"):
        records.close_lost(ctx, deal.id, "price")


def test_reopen_returns_to_the_stage_before_closing(ctx):
    sales = _sales(ctx)
    deal = records.create_record(ctx, "deal", {"title": "x"})
    records.move_stage(ctx, deal.id, _stage(sales, "Negotiation").id)
    records.close_lost(ctx, deal.id, "timing")
    reopened = records.reopen(ctx, deal.id, note="budget came back")
    assert reopened.status == "open" and reopened.stage_id == _stage(sales, "Negotiation").id
    assert (reopened.closed_at, reopened.lost_reason_id, reopened.lost_note) == (None, None, None)
    with pytest.raises(Conflict, match="open"):
        records.reopen(ctx, deal.id)
    records.close_won(ctx, deal.id)
    again = records.reopen(ctx, deal.id, stage_id=_stage(sales, "Proposal").id)
    assert again.stage_id == _stage(sales, "Proposal").id
    history = records.stage_history(ctx, deal.id)
    assert [h.to_stage.name for h in history] == [
        "Qualification", "Negotiation", "Lost", "Negotiation", "Won", "Proposal"]


def test_reopen_needs_an_open_stage(ctx):
    sales = _sales(ctx)
    deal = records.create_record(ctx, "deal", {"title": "x"})
    records.close_won(ctx, deal.id)
    with pytest.raises(ValidationFailed) as exc:
        records.reopen(ctx, deal.id, stage_id=_stage(sales, "Lost").id)
    assert "not an open stage" in exc.value.errors["stage_id"][0]


def test_reopen_falls_back_to_the_first_open_stage(ctx):
    sales = _sales(ctx)
    deal = records.create_record(ctx, "deal", {"title": "x"})
    records.move_stage(ctx, deal.id, _stage(sales, "Negotiation").id)
    records.close_won(ctx, deal.id)
    pipelines.archive_stage(ctx, _stage(sales, "Negotiation").id)
    assert records.reopen(ctx, deal.id).stage_id == _stage(sales, "Qualification").id


# ---------------------------------------------------------------------------------------------
# vetoes


class Gatekeeper:
    """Refuses moves into 'Proposal' unless the record has an amount."""

    @hookimpl
    def crm_before_stage_change(self, ctx, record, from_stage, to_stage):
        if to_stage.name == "Proposal" and record.amount is None:
            raise Veto("give an amount before sending a proposal")


def test_veto_leaves_record_in_its_stage_and_writes_nothing(ctx, register_plugin):
    from crmcore.audit.models import AuditEntry
    from crmcore.outbox.models import OutboxMessage

    name = register_plugin(Gatekeeper(), enable_for=ctx)
    sales = _sales(ctx)
    deal = records.create_record(ctx, "deal", {"title": "x"})
    ctx.session.rollback()
    counts = [ctx.session.scalar(select(func.count()).select_from(m))
              for m in (StageChange, AuditEntry, TimelineEvent, OutboxMessage)]
    with pytest.raises(Veto) as exc:
        records.move_stage(ctx, deal.id, _stage(sales, "Proposal").id)
    assert exc.value.plugin == name and "amount" in exc.value.message
    record = records.get_record(ctx, deal.id)
    assert (record.stage_id, record.stage_entered_at, record.status) == (
        deal.stage_id, deal.stage_entered_at, "open")
    ctx.session.rollback()
    assert counts == [ctx.session.scalar(select(func.count()).select_from(m))
                      for m in (StageChange, AuditEntry, TimelineEvent, OutboxMessage)]
    records.update_record(ctx, deal.id, {"amount": "10"})
    assert records.move_stage(ctx, deal.id, _stage(sales, "Proposal").id).stage_id == _stage(sales, "Proposal").id


def test_veto_only_where_the_plugin_is_enabled(ctx, other_ctx, register_plugin):
    register_plugin(Gatekeeper(), enable_for=ctx)
    theirs = records.create_record(other_ctx, "deal", {"title": "x"})
    records.move_stage(other_ctx, theirs.id, _stage(_sales(other_ctx), "Proposal").id)


def test_veto_of_qualification_keeps_everything(ctx, register_plugin):
    class NoWins:
        @hookimpl
        def crm_before_stage_change(self, ctx, record, from_stage, to_stage):
            if to_stage.kind == "won":
                raise Veto("no wins today")

    register_plugin(NoWins(), enable_for=ctx)
    lead = records.create_record(ctx, "lead", {"title": "Interested"})
    with pytest.raises(Veto):
        records.qualify_lead(ctx, lead.id)
    ctx.session.rollback()
    assert ctx.session.scalar(select(func.count()).select_from(Record).where(Record.type == "deal")) == 0
    assert records.get_record(ctx, lead.id).status == "open"


# ---------------------------------------------------------------------------------------------
# lead qualification


def test_qualify_lead_keeps_the_lead_its_history_and_the_link(ctx, business, make_user):
    from crmcore.fields.service import define_field
    from crmcore.parties.service import create_contact, create_party

    member = make_user(business, "member")
    define_field(ctx, "record:lead", {"key": "source", "label": "Source", "type": "text"})
    define_field(ctx, "record:lead", {"key": "score", "label": "Score", "type": "integer"})
    define_field(ctx, "record:deal", {"key": "source", "label": "Source", "type": "text"})
    party = create_party(ctx, {"kind": "organisation", "name": "Initech"})
    contact = create_contact(ctx, {"first_name": "Peter", "party_id": party.id})
    lead = records.create_record(ctx, "lead", {
        "title": "Wants printers", "party_id": party.id, "contact_id": contact.id, "amount": "900",
        "currency": "USD", "owner_id": member.user_id, "custom": {"source": "fair", "score": 7}})
    leads = pipelines.list_pipelines(ctx, "lead")[0]
    records.move_stage(ctx, lead.id, _stage(leads, "Contacted").id)

    deal = records.qualify_lead(member, lead.id, {"expected_close_date": "2031-05-01"})

    assert deal.type == "deal" and deal.status == "open"
    assert (deal.title, deal.party_id, deal.contact_id, deal.amount, deal.currency, deal.owner_id) == (
        "Wants printers", party.id, contact.id, Decimal("900"), "USD", member.user_id)
    assert deal.custom == {"source": "fair"}
    assert deal.expected_close_date == dt.date(2031, 5, 1)
    kept = records.get_record(ctx, lead.id)
    assert kept.status == "won" and kept.stage_id == _stage(leads, "Qualified").id
    assert [h.to_stage.name for h in records.stage_history(ctx, lead.id)] == ["New", "Contacted", "Qualified"]
    link = ctx.session.scalar(select(RecordLink).where(RecordLink.from_record_id == lead.id))
    assert (link.to_record_id, link.kind) == (deal.id, "qualified_into")
    details = records.record_details(ctx, deal.id)
    assert details["links_in"][0]["record"].id == lead.id and details["links_in"][0]["kind"] == "qualified_into"

    with pytest.raises(Conflict, match="already qualified"):
        records.qualify_lead(ctx, lead.id)
    records.reopen(ctx, lead.id)
    with pytest.raises(Conflict, match="already qualified"):
        records.qualify_lead(ctx, lead.id)


def test_qualify_lead_without_party(ctx):
    from crmcore.parties.service import create_party

    lead = records.create_record(ctx, "lead", {"title": "Walk-in"})
    party = create_party(ctx, {"kind": "organisation", "name": "Walk-in Ltd"})
    deal = records.qualify_lead(ctx, lead.id, {"party_id": party.id, "title": "Walk-in deal"})
    assert (deal.party_id, deal.title) == (party.id, "Walk-in deal")


def test_only_open_leads_qualify(ctx):
    deal = records.create_record(ctx, "deal", {"title": "x"})
    with pytest.raises(ValidationFailed):
        records.qualify_lead(ctx, deal.id)
    lead = records.create_record(ctx, "lead", {"title": "y"})
    records.close_lost(ctx, lead.id, "no_budget")
    with pytest.raises(Conflict, match="lost"):
        records.qualify_lead(ctx, lead.id)
    with pytest.raises(ValidationFailed):
        records.qualify_lead(ctx, records.create_record(ctx, "lead", {"title": "z"}).id, {"amount": "-1"})


# ---------------------------------------------------------------------------------------------
# the state machine: random moves, closes and reopens against the rules


def test_random_moves_follow_the_rules(ctx):
    """Random moves, closes and reopens: each succeeds exactly when the rules allow it, the status
    always matches the stage's kind, and the history has one row per effective move plus one."""
    sales = _sales(ctx)
    stages = {s.id: s for s in sales.stages}
    stage_ids = sorted(stages)
    first_open = sales.stages[0].id

    class Moves(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.record_id = records.create_record(ctx, "deal", {"title": "machine"}).id
            self.stage_id, self.status, self.moves = first_open, "open", 0
            self.before_closing = None

        def _attempt(self, call, allowed, new_stage_id):
            try:
                record = call()
            except (ValidationFailed, Conflict):
                assert not allowed
                return
            assert allowed
            if record.stage_id != self.stage_id:
                self.moves += 1
                if stages[new_stage_id].kind != "open":
                    self.before_closing = self.stage_id
            self.stage_id, self.status = record.stage_id, record.status
            assert record.stage_id == new_stage_id

        @rule(stage_id=st.sampled_from(stage_ids))
        def move(self, stage_id):
            kind = stages[stage_id].kind
            allowed = self.status == "open" and kind != "lost"
            self._attempt(lambda: records.move_stage(ctx, self.record_id, stage_id), allowed, stage_id)

        @rule(reason=st.sampled_from(["price", "timing", None]))
        def lose(self, reason):
            lost = next(i for i in stage_ids if stages[i].kind == "lost")
            self._attempt(lambda: records.close_lost(ctx, self.record_id, reason),
                          self.status == "open" and reason is not None, lost)

        @rule()
        def win(self):
            won = next(i for i in stage_ids if stages[i].kind == "won")
            self._attempt(lambda: records.close_won(ctx, self.record_id), self.status == "open", won)

        @rule(stage_id=st.one_of(st.none(), st.sampled_from(stage_ids)))
        def reopen(self, stage_id):
            allowed = self.status != "open" and (stage_id is None or stages[stage_id].kind == "open")
            expected = stage_id if stage_id is not None else self.before_closing
            self._attempt(lambda: records.reopen(ctx, self.record_id, stage_id=stage_id), allowed, expected)

        @invariant()
        def consistent(self):
            history = records.stage_history(ctx, self.record_id)
            record = ctx.session.get(Record, self.record_id)  # loaded by stage_history's use case
            assert (record.stage_id, record.status) == (self.stage_id, self.status)
            assert record.status == stages[record.stage_id].kind
            assert (record.closed_at is not None) == (record.status != "open")
            assert (record.lost_reason_id is not None) == (record.status == "lost")
            assert len(history) == self.moves + 1
            assert history[-1].to_stage_id == record.stage_id
            assert all(h.seconds_in_from_stage >= 0 for h in history[1:])
            assert all(a.to_stage_id == b.from_stage_id for a, b in zip(history, history[1:], strict=False))

    run_state_machine_as_test(Moves, settings=settings(
        max_examples=6, stateful_step_count=12, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]))
