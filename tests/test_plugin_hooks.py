"""One ``test_hook_<name>`` per install-wide, plugin-lifecycle, page and party hook.

Record and stage hooks are tested beside the records feature. Party hooks run through the
parties service, exactly as a plugin meets them.
"""

from __future__ import annotations

import flask
import marshmallow as ma
import pytest
from markupsafe import Markup
from sqlalchemy import select

from crmcore import PluginInfo, Veto, hookimpl
from crmcore.context import Context
from crmcore.errors import ValidationFailed
from crmcore.outbox.models import OutboxMessage
from crmcore.plugins.service import disable_plugin, enable_plugin
from crmcore.plugins.settings import settings_schema


def outbox(ctx: Context, topic: str) -> list[tuple[str | None, str, int]]:
    """(plugin, status, attempts) of the outbox rows of ``topic`` in ctx's business."""
    with ctx.crm.db.session(ctx.business_id) as session:
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.topic == topic).order_by(OutboxMessage.id))
        return [(row.plugin, row.status, row.attempts) for row in rows]


# -- provide ----------------------------------------------------------------------------------


def test_hook_crm_register_blueprints(register_plugin, crm):
    blueprint = flask.Blueprint("tp_pages", __name__, url_prefix="/tp-pages")
    apps = []

    class Pages:
        @hookimpl
        def crm_register_blueprints(self, app):
            apps.append(app)
            return [blueprint]

    name = register_plugin(Pages())  # enabled nowhere: install-wide hooks do not ask
    app = flask.Flask(__name__)
    results = crm.registry.pm.hook.crm_register_blueprints(app=app)
    assert [blueprint] in results
    assert apps == [app]
    assert name in crm.registry.implementers("crm_register_blueprints")


class Sms(ma.Schema):
    sender = ma.fields.String(required=True, validate=ma.validate.Length(max=11))
    token = ma.fields.String(required=True, metadata={"secret": True})


class Declared(ma.Schema):
    colour = ma.fields.String()


def test_hook_crm_settings_schema(register_plugin, ctx, crm):
    class WithSchema:
        @hookimpl
        def crm_settings_schema(self):
            return Sms

    # the hook wins over the declarative PluginInfo.settings_schema
    name = register_plugin(WithSchema(), info=PluginInfo(title="SMS", settings_schema=Declared))
    assert settings_schema(crm.registry, name) is Sms
    assert Sms in crm.registry.pm.hook.crm_settings_schema()  # install-wide: no business needed
    with pytest.raises(ValidationFailed) as failed:
        enable_plugin(ctx, name, {"colour": "red"})
    assert failed.value.errors == {"colour": ["Unknown field."], "sender": ["Missing data for required field."],
                                   "token": ["Missing data for required field."]}
    enable_plugin(ctx, name, {"sender": "ACME", "token": "tok-123456789"})
    assert ctx.plugin_settings(name) == {"sender": "ACME", "token": "tok-123456789"}


def test_a_settings_schema_hook_returning_none_falls_back_to_plugin_info(register_plugin, crm):
    class NoSchema:
        @hookimpl
        def crm_settings_schema(self):
            return None

    name = register_plugin(NoSchema(), info=PluginInfo(title="Declared", settings_schema=Declared))
    assert settings_schema(crm.registry, name) is Declared


# -- plugin lifecycle (react) -------------------------------------------------------------------


class Lifecycle:
    """Records the enable/disable calls it receives, and what it could see then."""

    def __init__(self, fail: bool = False) -> None:
        self.enabled: list[tuple[int, str, bool, dict]] = []
        self.disabled: list[tuple[int, str, bool]] = []
        self.fail = fail

    @hookimpl
    def crm_after_plugin_enabled(self, ctx, plugin):
        if self.fail:
            raise RuntimeError("seeding failed")
        self.enabled.append((ctx.business_id, plugin, ctx.is_enabled(plugin), ctx.plugin_settings(plugin)))

    @hookimpl
    def crm_after_plugin_disabled(self, ctx, plugin):
        self.disabled.append((ctx.business_id, plugin, ctx.is_enabled(plugin)))


class Color(ma.Schema):
    colour = ma.fields.String()


def test_hook_crm_after_plugin_enabled(register_plugin, ctx, other_ctx):
    mine, bystander = Lifecycle(), Lifecycle()
    name = register_plugin(mine, info=PluginInfo(title="Mine", settings_schema=Color))
    register_plugin(bystander, enable_for=other_ctx)
    bystander.enabled.clear()
    enable_plugin(ctx, name, {"colour": "teal"})
    # called for that plugin only, after commit (it sees itself enabled and its settings)
    assert mine.enabled == [(ctx.business_id, name, True, {"colour": "teal"})]
    assert bystander.enabled == []
    assert outbox(ctx, "crm_after_plugin_enabled") == [(name, "done", 1)]
    enable_plugin(ctx, name)  # already on: nothing happens
    assert len(mine.enabled) == 1
    disable_plugin(ctx, name)
    enable_plugin(ctx, name)  # on again: seeding must be idempotent, it runs again
    assert [call[:3] for call in mine.enabled] == [(ctx.business_id, name, True)] * 2


def test_a_failing_enable_hook_never_undoes_the_enabling(register_plugin, ctx):
    name = register_plugin(Lifecycle(fail=True))
    enable_plugin(ctx, name)
    assert ctx.is_enabled(name)
    [(plugin, status, attempts)] = outbox(ctx, "crm_after_plugin_enabled")
    assert (plugin, status, attempts) == (name, "failed", 1)
    with ctx.crm.db.session(ctx.business_id) as session:
        row = session.scalars(select(OutboxMessage).where(OutboxMessage.plugin == name)).one()
    assert row.last_error == "RuntimeError: seeding failed"
    assert row.next_attempt_at is not None


def test_a_plugin_without_the_lifecycle_hooks_queues_nothing(register_plugin, ctx):
    class Quiet:
        @hookimpl
        def crm_admin_menu(self, ctx):
            return None

    name = register_plugin(Quiet())
    enable_plugin(ctx, name)
    disable_plugin(ctx, name)
    assert outbox(ctx, "crm_after_plugin_enabled") == [] and outbox(ctx, "crm_after_plugin_disabled") == []


def test_hook_crm_after_plugin_disabled(register_plugin, ctx, other_ctx):
    mine, bystander = Lifecycle(), Lifecycle()
    name = register_plugin(mine, enable_for=[ctx, other_ctx])
    register_plugin(bystander, enable_for=ctx)
    disable_plugin(ctx, name)
    # the last call still reaches the plugin, which is already off for this business only
    assert mine.disabled == [(ctx.business_id, name, False)]
    assert bystander.disabled == []
    assert outbox(ctx, "crm_after_plugin_disabled") == [(name, "done", 1)]
    assert other_ctx.is_enabled(name)
    disable_plugin(ctx, name)  # already off: nothing happens
    assert len(mine.disabled) == 1


# -- page ---------------------------------------------------------------------------------------


class Menu:
    def __init__(self, label: str) -> None:
        self.label = label

    @hookimpl
    def crm_admin_menu(self, ctx):
        return [{"label": self.label, "url": f"/{self.label.lower()}", "section": "main"}]


def test_hook_crm_admin_menu(register_plugin, ctx, other_ctx):
    quotes = register_plugin(Menu("Quotes"), enable_for=ctx)
    invoices = register_plugin(Menu("Invoices"))

    def from_test_plugins(context):
        # the core's own features contribute their menu entries through the same hook
        return [(name, items) for name, items in context.collect("crm_admin_menu") if name in (quotes, invoices)]

    assert from_test_plugins(ctx) == [(quotes, [{"label": "Quotes", "url": "/quotes", "section": "main"}])]
    assert from_test_plugins(other_ctx) == []
    disable_plugin(ctx, quotes)
    assert from_test_plugins(ctx) == []


# -- party hooks, through the parties service ---------------------------------------------------


@pytest.fixture
def parties():
    return pytest.importorskip("crmcore.parties.service")


class PartyWatcher:
    """Implements every party hook, recording what it was given."""

    def __init__(self) -> None:
        self.saves: list[tuple[str, dict, bool, bool]] = []
        self.created: list[tuple[int, int, str]] = []
        self.updated: list[tuple[int, dict]] = []
        self.merges: list[tuple[int, int, bool]] = []
        self.merged: list[tuple[int, int]] = []
        self.veto_names: set[str] = set()

    @hookimpl
    def crm_before_party_save(self, ctx, party, changes, created):
        if party.name in self.veto_names:
            raise Veto(f"{party.name!r} is not allowed here")
        self.saves.append((party.name, dict(changes), created, party.id is None))

    @hookimpl
    def crm_after_party_created(self, ctx, party):
        self.created.append((ctx.business_id, party.id, party.name))

    @hookimpl
    def crm_after_party_updated(self, ctx, party, changes):
        self.updated.append((party.id, changes))

    @hookimpl
    def crm_before_party_merge(self, ctx, kept, duplicate):
        if "keep apart" in duplicate.name:
            raise Veto("these two stay apart")
        self.merges.append((kept.id, duplicate.id, duplicate.merged_into_id is None))

    @hookimpl
    def crm_after_party_merged(self, ctx, kept, duplicate_id):
        self.merged.append((kept.id, duplicate_id))

    @hookimpl
    def crm_party_panels(self, ctx, party):
        return [{"title": "Loyalty", "html": Markup("<p>{}</p>").format(party.name), "order": 5}]


def test_hook_crm_before_party_save(parties, register_plugin, ctx, other_ctx):
    watcher = PartyWatcher()
    name = register_plugin(watcher, enable_for=ctx)
    party = parties.create_party(ctx, {"kind": "organisation", "name": "Acme"})
    [(seen_name, changes, created, unsaved)] = watcher.saves
    assert (seen_name, created, unsaved) == ("Acme", True, True)  # checked before the row is written
    assert changes["name"] == [None, "Acme"]
    parties.update_party(ctx, party.id, {"name": "Acme Ltd"})
    assert watcher.saves[-1][:3] == ("Acme Ltd", {"name": ["Acme", "Acme Ltd"]}, False)
    # a veto stops the write and names the plugin
    watcher.veto_names = {"Blocked Inc", "Acme Blocked"}
    with pytest.raises(Veto) as vetoed:
        parties.create_party(ctx, {"kind": "organisation", "name": "Blocked Inc"})
    assert vetoed.value.plugin == name and vetoed.value.message == "'Blocked Inc' is not allowed here"
    with pytest.raises(Veto):
        parties.update_party(ctx, party.id, {"name": "Acme Blocked"})
    assert parties.get_party(ctx, party.id).name == "Acme Ltd"
    assert [p.name for p in parties.list_parties(ctx).items] == ["Acme Ltd"]
    # not enabled in the other business: never asked there
    parties.create_party(other_ctx, {"kind": "organisation", "name": "Blocked Inc"})
    assert len(watcher.saves) == 2


def test_hook_crm_after_party_created(parties, register_plugin, ctx, other_ctx):
    watcher = PartyWatcher()
    name = register_plugin(watcher, enable_for=ctx)
    party = parties.create_party(ctx, {"kind": "organisation", "name": "Acme"})
    assert watcher.created == [(ctx.business_id, party.id, "Acme")]
    assert outbox(ctx, "crm_after_party_created") == [(name, "done", 1)]
    watcher.veto_names = {"Vetoed"}
    with pytest.raises(Veto):
        parties.create_party(ctx, {"kind": "organisation", "name": "Vetoed"})
    parties.create_party(other_ctx, {"kind": "organisation", "name": "Globex"})
    assert len(watcher.created) == 1  # nothing for a vetoed create, nothing where not enabled
    assert outbox(other_ctx, "crm_after_party_created") == []


def test_hook_crm_after_party_updated(parties, register_plugin, ctx):
    watcher = PartyWatcher()
    name = register_plugin(watcher, enable_for=ctx)
    party = parties.create_party(ctx, {"kind": "organisation", "name": "Acme"})
    parties.update_party(ctx, party.id, {"name": "Acme Ltd", "tax_id": "BE0123456789"})
    assert watcher.updated == [(party.id, {"name": ["Acme", "Acme Ltd"], "tax_id": [None, "BE0123456789"]})]
    assert outbox(ctx, "crm_after_party_updated") == [(name, "done", 1)]
    parties.update_party(ctx, party.id, {"name": "Acme Ltd"})  # no change: no hook
    assert len(watcher.updated) == 1


def test_hook_crm_party_defaults(parties, register_plugin, ctx):
    class Dutch:
        @hookimpl
        def crm_party_defaults(self, ctx, kind):
            return {"language": "nl", "tax_id": "NL-" + kind[:3]}

    class German:
        @hookimpl
        def crm_party_defaults(self, ctx, kind):
            return {"language": "de", "currency": "CHF"}

    register_plugin(Dutch(), enable_for=ctx)
    german = register_plugin(German())
    org = parties.create_party(ctx, {"kind": "organisation", "name": "Acme"})
    assert (org.language, org.tax_id) == ("nl", "NL-org")
    person = parties.create_party(ctx, {"kind": "person", "first_name": "Ann", "last_name": "Smith", "language": "en"})
    assert (person.language, person.tax_id) == ("en", "NL-per")  # what the user gave wins
    enable_plugin(ctx, german)
    # the first plugin in call order wins a key; the others fill what is left
    first = ctx.collect("crm_party_defaults", kind="organisation")[0][0]
    both = parties.create_party(ctx, {"kind": "organisation", "name": "Both"})
    assert both.language == ("de" if first == german else "nl")
    assert both.currency == "CHF" and both.tax_id == "NL-org"


def test_hook_crm_party_panels(parties, register_plugin, ctx, other_ctx):
    name = register_plugin(PartyWatcher(), enable_for=ctx)
    party = parties.create_party(ctx, {"kind": "organisation", "name": "<Acme>"})
    panels = ctx.collect("crm_party_panels", party=party)
    assert panels == [(name, [{"title": "Loyalty", "html": Markup("<p>&lt;Acme&gt;</p>"), "order": 5}])]
    other = parties.create_party(other_ctx, {"kind": "organisation", "name": "Globex"})
    assert other_ctx.collect("crm_party_panels", party=other) == []


def test_hook_crm_before_party_merge(parties, register_plugin, ctx):
    watcher = PartyWatcher()
    name = register_plugin(watcher, enable_for=ctx)
    kept = parties.create_party(ctx, {"kind": "organisation", "name": "Acme"})
    dup = parties.create_party(ctx, {"kind": "organisation", "name": "ACME Inc"})
    parties.merge_parties(ctx, kept.id, dup.id)
    assert watcher.merges == [(kept.id, dup.id, True)]  # before the duplicate is retired
    assert parties.get_party(ctx, dup.id).merged_into_id == kept.id
    apart = parties.create_party(ctx, {"kind": "organisation", "name": "Acme (keep apart)"})
    with pytest.raises(Veto) as vetoed:
        parties.merge_parties(ctx, kept.id, apart.id)
    assert vetoed.value.plugin == name
    assert parties.get_party(ctx, apart.id).merged_into_id is None  # everything rolled back


def test_hook_crm_after_party_merged(parties, register_plugin, ctx):
    watcher = PartyWatcher()
    name = register_plugin(watcher, enable_for=ctx)
    kept = parties.create_party(ctx, {"kind": "organisation", "name": "Acme"})
    dup = parties.create_party(ctx, {"kind": "organisation", "name": "ACME Inc"})
    parties.merge_parties(ctx, kept.id, dup.id)
    assert watcher.merged == [(kept.id, dup.id)]
    assert outbox(ctx, "crm_after_party_merged") == [(name, "done", 1)]
    apart = parties.create_party(ctx, {"kind": "organisation", "name": "Acme (keep apart)"})
    with pytest.raises(Veto):
        parties.merge_parties(ctx, kept.id, apart.id)
    assert len(watcher.merged) == 1
