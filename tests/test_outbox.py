"""The outbox call path: ``ctx.emit`` queues one row per enabled implementer inside the use case's
transaction; after commit each row runs on its own, failures are retried then parked, and a row
never runs twice."""

import dataclasses
import datetime as dt

import pytest
from sqlalchemy import func, select, update

from crmcore import hookimpl
from crmcore.auth.models import User
from crmcore.context import use_case
from crmcore.db import utcnow
from crmcore.errors import ValidationFailed
from crmcore.outbox.models import OutboxMessage
from crmcore.outbox.service import run_message, run_messages
from crmcore.parties.models import Party
from crmcore.tenancy.models import Role
from crmcore.timeline import service as timeline
from crmcore.timeline.models import Note


class Recorder:
    """A plugin that records every party it is told about (and can be told to fail)."""

    def __init__(self, fail=False):
        self.calls = []
        self.fail = fail

    @hookimpl
    def crm_after_party_created(self, ctx, party):
        self.calls.append((ctx.business_id, party.id, party.name))
        if self.fail:
            raise RuntimeError(f"boom from {party.name}")


class NoteWriter:
    """A react-hook that writes through a use case, in the job's own transaction."""

    @hookimpl
    def crm_after_party_created(self, ctx, party):
        timeline.add_note(ctx, body=f"welcome {party.name}", party_id=party.id)


@use_case(Role.MEMBER)
def create_party(ctx, name="X", *, fail=False):
    party = Party(kind="organisation", name=name, name_key=name.casefold())
    ctx.session.add(party)
    ctx.session.flush()
    ctx.emit("crm_after_party_created", party=party)
    if fail:
        raise ValidationFailed("changed my mind")
    return party


def rows(ctx):
    ctx.session.rollback()
    return {r.plugin: r for r in ctx.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))}


def not_inline(crm):
    crm.config = dataclasses.replace(crm.config, outbox_inline=False)


def parties(ctx):
    ctx.session.rollback()
    return ctx.session.scalar(select(func.count()).select_from(Party))


def test_one_row_per_enabled_implementer(ctx, crm, register_plugin):
    not_inline(crm)
    a, b, off = Recorder(), Recorder(), Recorder()
    name_a = register_plugin(a, enable_for=ctx)
    name_b = register_plugin(b, enable_for=ctx)
    register_plugin(off)
    party = create_party(ctx)
    queued = rows(ctx)
    assert set(queued) == {name_a, name_b}
    for row in queued.values():
        assert (row.kind, row.topic, row.status, row.attempts) == ("hook", "crm_after_party_created", "pending", 0)
        assert row.payload == {"party": {"$model": "Party", "id": party.id}}
        assert row.user_id == ctx.user_id and row.business_id == ctx.business_id
    assert a.calls == b.calls == off.calls == []
    run_messages(crm, [r.id for r in queued.values()])
    assert a.calls == b.calls == [(ctx.business_id, party.id, "X")] and off.calls == []


def test_after_commit_rows_run_once_and_are_done(ctx, register_plugin):
    a, b = Recorder(), Recorder()
    register_plugin(a, enable_for=ctx)
    register_plugin(b, enable_for=ctx)
    before = utcnow()
    create_party(ctx, "Inline")
    assert len(a.calls) == len(b.calls) == 1
    for row in rows(ctx).values():
        assert row.status == "done" and row.attempts == 1 and row.last_error is None
        assert row.last_duration_ms is not None and row.last_duration_ms >= 0
        assert row.done_at >= before


def test_no_enabled_implementer_means_no_row(ctx, other_ctx, register_plugin):
    register_plugin(Recorder(), enable_for=other_ctx)
    assert not ctx.wants("crm_after_party_created")
    create_party(ctx)
    assert rows(ctx) == {}


def test_failing_plugin_is_retried_later_and_blocks_nobody(ctx, register_plugin):
    good, bad = Recorder(), Recorder(fail=True)
    name_good = register_plugin(good, enable_for=ctx)
    name_bad = register_plugin(bad, enable_for=ctx)
    create_party(ctx, "Kept")
    assert parties(ctx) == 1
    queued = rows(ctx)
    assert queued[name_good].status == "done" and len(good.calls) == 1
    failed = queued[name_bad]
    assert failed.status == "failed" and failed.attempts == 1
    assert failed.last_error == "RuntimeError: boom from Kept"
    assert failed.next_attempt_at > failed.created_at
    assert failed.locked_until is None and failed.done_at is None


def test_rollback_leaves_no_row_and_calls_nothing(ctx, register_plugin):
    a = Recorder()
    register_plugin(a, enable_for=ctx)
    with pytest.raises(ValidationFailed):
        create_party(ctx, fail=True)
    assert rows(ctx) == {} and parties(ctx) == 0 and a.calls == []
    assert ctx._pending == []
    create_party(ctx)  # the next use case does not run the rolled-back job either
    assert len(a.calls) == 1


def test_nested_use_case_emits_run_after_outer_commit(ctx, register_plugin):
    a = Recorder()
    register_plugin(a, enable_for=ctx)

    @use_case(Role.MEMBER)
    def outer(c):
        create_party(c, "Inner")
        assert a.calls == []
        return "ok"

    assert outer(ctx) == "ok"
    assert len(a.calls) == 1


def test_parked_after_max_attempts(ctx, crm, register_plugin):
    crm.config = dataclasses.replace(crm.config, outbox_max_attempts=3)
    bad = Recorder(fail=True)
    name = register_plugin(bad, enable_for=ctx)
    create_party(ctx)
    row = rows(ctx)[name]
    assert (row.status, row.attempts, row.max_attempts) == ("failed", 1, 3)
    assert run_message(crm, row.id) == "failed"
    assert run_message(crm, row.id) == "parked"
    row = rows(ctx)[name]
    assert row.status == "parked" and row.attempts == 3 and "boom" in row.last_error
    assert run_message(crm, row.id) == "skipped"
    assert len(bad.calls) == 3


def test_retry_succeeds_after_a_failure(ctx, crm, register_plugin):
    flaky = Recorder(fail=True)
    name = register_plugin(flaky, enable_for=ctx)
    create_party(ctx)
    flaky.fail = False
    row_id = rows(ctx)[name].id
    assert run_message(crm, row_id) == "done"
    row = rows(ctx)[name]
    assert row.attempts == 2 and row.last_error is None and row.done_at is not None


def test_uninstalled_plugin_fails_with_a_clear_error(ctx, crm, register_plugin):
    not_inline(crm)
    name = register_plugin(Recorder(), enable_for=ctx)
    create_party(ctx)
    row_id = rows(ctx)[name].id
    crm.registry.unregister(name)
    assert run_message(crm, row_id) == "failed"
    row = rows(ctx)[name]
    assert f"plugin {name!r} is not installed" in row.last_error and row.attempts == 1


def test_deleted_argument_fails_with_a_clear_error(ctx, crm, register_plugin):
    not_inline(crm)
    a = Recorder()
    name = register_plugin(a, enable_for=ctx)
    party = create_party(ctx)
    ctx.session.delete(ctx.session.get(Party, party.id))
    ctx.session.commit()
    assert run_message(crm, rows(ctx)[name].id) == "failed"
    assert f"Party {party.id} no longer exists" in rows(ctx)[name].last_error and a.calls == []


def test_done_or_running_row_is_never_run_again(ctx, crm, register_plugin):
    a = Recorder()
    name = register_plugin(a, enable_for=ctx)
    create_party(ctx)
    row = rows(ctx)[name]
    assert run_message(crm, row.id) == "skipped"
    assert run_message(crm, 999_999) == "skipped"
    assert len(a.calls) == 1 and rows(ctx)[name].attempts == 1
    ctx.session.execute(update(OutboxMessage).values(status="running"))
    ctx.session.commit()
    assert run_message(crm, row.id) == "skipped" and len(a.calls) == 1


def test_react_hook_writes_in_its_own_transaction(ctx, register_plugin):
    name = register_plugin(NoteWriter(), enable_for=ctx)
    party = create_party(ctx, "Newco")
    assert rows(ctx)[name].status == "done"
    [note] = ctx.session.scalars(select(Note)).all()
    assert note.body == "welcome Newco" and note.party_id == party.id and note.author_id == ctx.user_id


def test_job_of_a_deactivated_user_still_runs(ctx, crm, business, make_user, register_plugin):
    not_inline(crm)
    a = Recorder()
    name = register_plugin(a, enable_for=ctx)
    member = make_user(business, "member")
    create_party(member, "By member")
    with crm.db.transaction() as session:
        session.execute(update(User).where(User.id == member.user_id).values(is_active=False))
    assert run_message(crm, rows(ctx)[name].id) == "done"
    assert a.calls and a.calls[0][2] == "By member"


def test_job_runs_in_its_own_business(ctx, other_ctx, crm, register_plugin):
    a = Recorder()
    register_plugin(a, enable_for=[ctx, other_ctx])
    mine = create_party(ctx, "Mine")
    theirs = create_party(other_ctx, "Theirs")
    assert sorted(a.calls) == sorted([(ctx.business_id, mine.id, "Mine"), (other_ctx.business_id, theirs.id, "Theirs")])
    assert next_attempt_is_aware(rows(ctx))


def next_attempt_is_aware(queued):
    return all(r.next_attempt_at.tzinfo is not None and r.next_attempt_at <= utcnow() + dt.timedelta(seconds=1)
               for r in queued.values())


def test_job_of_a_plugin_disabled_before_it_ran_is_discarded(crm, ctx, register_plugin):
    """A react-hook queued while the plugin was enabled does not run after it was disabled."""
    from crmcore import hookimpl
    from crmcore.outbox.models import OutboxMessage
    from crmcore.outbox.service import run_message
    from crmcore.plugins.service import disable_plugin

    calls = []

    class Plugin:
        @hookimpl
        def crm_after_party_created(self, ctx, party):
            calls.append(party.id)

    name = register_plugin(Plugin(), enable_for=ctx)
    from crmcore.parties.service import create_party

    inline = crm.config
    crm.config = dataclasses.replace(crm.config, outbox_inline=False)  # queue only; run by hand below
    create_party(ctx, {"kind": "organisation", "name": "Queued"})
    crm.config = inline
    disable_plugin(ctx, name)
    job = ctx.session.scalars(
        select(OutboxMessage).where(OutboxMessage.plugin == name, OutboxMessage.topic == "crm_after_party_created")
    ).one()
    assert run_message(crm, job.id) == "discarded"
    assert calls == []
    ctx.session.commit()  # end the read snapshot taken before the job ran
    ctx.session.expire_all()
    assert "disabled" in ctx.session.get(OutboxMessage, job.id).last_error
