"""Reading the audit log: paged, filtered, admin only, never a secret in it."""

import marshmallow as ma
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from crmcore.audit import service as audit
from crmcore.audit.models import AuditEntry
from crmcore.context import use_case
from crmcore.errors import PermissionDenied, ValidationFailed
from crmcore.plugins.info import PluginInfo
from crmcore.plugins.service import save_settings
from crmcore.tenancy.models import Role


@use_case(Role.MEMBER)
def _record(ctx, action, entity_type, entity_id, changes=None):
    return audit.record(ctx, action, entity_type=entity_type, entity_id=entity_id, changes=changes)


def _all(ctx, **filters):
    out, cursor = [], None
    while True:
        page = audit.list_entries(ctx, cursor=cursor, limit=3, **filters)
        out.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return out


def test_list_entries_newest_first_and_filtered(ctx, business, make_user):
    member = make_user(business, "member")
    for i in range(4):
        _record(ctx, "party.updated", "party", 1, {"name": [f"a{i}", f"b{i}"]})
    _record(member, "party.updated", "party", 2)
    _record(member, "record.created", "record", 1)
    entries = _all(ctx)
    ids = [e.id for e in entries]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    assert [e.action for e in entries[:2]] == ["record.created", "party.updated"]
    assert [e.entity_id for e in _all(ctx, entity_type="party", entity_id=1)] == [1, 1, 1, 1]
    assert {e.entity_type for e in _all(ctx, entity_type="record")} == {"record"}
    assert [e.action for e in _all(ctx, user_id=member.user_id)] == ["record.created", "party.updated"]
    assert _all(ctx, entity_type="party", entity_id=1)[0].changes == {"name": ["a3", "b3"]}


def test_list_entries_is_per_business(ctx, other_ctx):
    _record(ctx, "party.updated", "party", 1)
    theirs = {e.id for e in _all(other_ctx)}
    mine = {e.id for e in _all(ctx)}
    assert mine and not mine & theirs
    assert all(e.business_id == other_ctx.business_id for e in _all(other_ctx))


def test_list_entries_needs_admin(ctx, business, make_user):
    for role in ("member", "read_only"):
        with pytest.raises(PermissionDenied, match="admin"):
            audit.list_entries(make_user(business, role))
    assert audit.list_entries(make_user(business, "admin")).items


def test_list_entries_bad_filters(ctx):
    with pytest.raises(ValidationFailed) as exc:
        audit.list_entries(ctx, entity_id=5)
    assert "entity_type" in exc.value.errors
    with pytest.raises(ValidationFailed) as exc:
        audit.list_entries(ctx, user_id="abc")
    assert "user_id" in exc.value.errors
    with pytest.raises(ValidationFailed) as exc:
        audit.list_entries(ctx, cursor="not-a-cursor")
    assert "cursor" in exc.value.errors
    with pytest.raises(ValidationFailed):
        audit.list_entries(ctx, limit=0)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(0, 12), limit=st.integers(1, 5))
def test_pages_concatenate_without_gaps(ctx, n, limit):
    before = [e.id for e in _all(ctx)]
    for i in range(n):
        _record(ctx, "thing.done", "thing", i)
    seen, cursor = [], None
    while True:
        page = audit.list_entries(ctx, cursor=cursor, limit=limit)
        seen.extend(e.id for e in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == len(before) + n
    assert seen == sorted(seen, reverse=True) and seen[n:] == before


def test_secret_looking_keys_are_redacted(ctx):
    _record(ctx, "user.changed", "user", 1, {
        "password": ["old", "new"], "api_key": "sk_live_123", "name": ["a", "b"],
        "settings": {"client_secret": "s3cr3t", "sender": "ACME"},
        "tokens": [{"refresh_token": "r"}],
    })
    ctx.session.expire_all()
    stored = ctx.session.scalars(select(AuditEntry.changes).where(AuditEntry.action == "user.changed")).one()
    assert stored == {"password": "[redacted]", "api_key": "[redacted]", "name": ["a", "b"],
                      "settings": {"client_secret": "[redacted]", "sender": "ACME"},
                      "tokens": "[redacted]"}


class _SmsSettings(ma.Schema):
    sender = ma.fields.String(required=True)
    api_key = ma.fields.String(required=True, metadata={"secret": True})


class _SmsPlugin:
    PLUGIN = PluginInfo(title="SMS", settings_schema=_SmsSettings)


def test_plugin_settings_changes_never_reach_the_log(ctx, register_plugin):
    name = register_plugin(_SmsPlugin(), enable_for=ctx, settings={"sender": "ACME", "api_key": "sk_first_secret"})
    save_settings(ctx, name, {"sender": "ACME2", "api_key": "sk_second_secret"})
    rows = ctx.session.scalars(select(AuditEntry)).all()
    text = repr([(r.action, r.changes) for r in rows])
    assert "sk_first_secret" not in text and "sk_second_secret" not in text
    changed = [r for r in rows if r.action == "plugin.settings_changed"][0]
    assert changed.changes == {"plugin": name, "fields": ["api_key", "sender"]}
