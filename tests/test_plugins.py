"""Plugin discovery (real entry points of throwaway distributions) and per-business dispatch."""

from __future__ import annotations

import logging
import sys
import textwrap
import uuid
from pathlib import Path

import flask
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from crmcore import HOOK_API_VERSION, PluginInfo, Veto, hookimpl
from crmcore.context import Context, use_case
from crmcore.errors import Conflict, NotFound, PermissionDenied
from crmcore.outbox.models import OutboxMessage
from crmcore.parties.models import Party
from crmcore.plugins import calls, drivers
from crmcore.plugins.manager import DEFAULT_PLUGINS, PluginLoadError, PluginRegistry, build_registry
from crmcore.plugins.service import disable_plugin, enable_plugin, list_plugins
from crmcore.runtime import Crm
from crmcore.tenancy.models import Role

#: the essential default plugins (``core-notifications`` is a default plugin a business switches on)
CORE = {name for name, _ in DEFAULT_PLUGINS} - {"core-notifications"}


# -- a site-packages of our own ----------------------------------------------------------------


class Site:
    """A folder on ``sys.path`` holding distributions made for one test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: list[str] = []
        self._tag = uuid.uuid4().hex[:8]

    def module(self, plugin: str, body: str) -> str:
        name = f"crmtest_{self._tag}_{plugin.replace('-', '_')}"
        (self.root / f"{name}.py").write_text(textwrap.dedent(body), encoding="utf-8")
        self.modules.append(name)
        return name

    def install(self, dist: str, entry_points: dict[str, dict[str, str]], version: str = "1.0") -> None:
        """Write ``<dist>-<version>.dist-info`` declaring ``entry_points`` ({group: {name: target}})."""
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = []
        for group, items in entry_points.items():
            lines.append(f"[{group}]")
            lines += [f"{name} = {target}" for name, target in items.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")

    def plugin(self, name: str, *, title: str | None = None, version: str = "1.0", depends: tuple[str, ...] = (),
               core_api: str = ">=1.0,<2", body: str = "", dist: str | None = None,
               enabled_by_default: bool = False) -> str:
        """Install a distribution ``crm-<name>`` whose plugin ``name`` is a module."""
        source = f"""
from crmcore import PluginInfo, hookimpl

PLUGIN = PluginInfo(title={title or name.title()!r}, version={version!r}, depends={depends!r},
                    core_api={core_api!r}, enabled_by_default={enabled_by_default!r})
""" + textwrap.dedent(body)
        module = self.module(name, source)
        self.install(dist or f"crm-{name}", {"crmcore.plugins": {name: module}}, version=version)
        return module


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for var in ("CRM_STRICT_PLUGINS", "CRM_TRACE_PLUGINS", "CRM_LOAD_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    made = Site(root)
    yield made
    for name in made.modules:
        sys.modules.pop(name, None)


def ours(registry: PluginRegistry) -> list[str]:
    """Registered plugin names made by the test (the environment may hold others)."""
    return [name for name in registry.plugins if name.startswith("tp-")]


MENU = """
@hookimpl
def crm_admin_menu(ctx):
    return [{"label": __name__, "url": "/x"}]
"""


# -- discovery -----------------------------------------------------------------------------------


def test_discovers_a_plugin_with_its_info(site):
    module = site.plugin("tp-alpha", title="Alpha", version="2.3.1", body=MENU)
    registry = build_registry()
    loaded = registry.plugins["tp-alpha"]
    assert (loaded.info.title, loaded.version, loaded.distribution) == ("Alpha", "2.3.1", "crm-tp-alpha")
    assert loaded.source == "entry_point"
    assert loaded.obj is sys.modules[module]
    assert registry.pm.get_plugin("tp-alpha") is loaded.obj
    assert "tp-alpha" in registry.implementers("crm_admin_menu")
    assert "tp-alpha" not in registry.errors
    # the core's own features go through the same path, first
    assert list(registry.plugins)[: len(DEFAULT_PLUGINS)] == [name for name, _ in DEFAULT_PLUGINS]


def test_a_plugin_that_fails_to_import_is_reported_and_the_others_load(site, caplog):
    site.plugin("tp-broken", body="raise RuntimeError('boom at import')")
    site.plugin("tp-good", body=MENU)
    with caplog.at_level(logging.ERROR, logger="crmcore.plugins"):
        registry = build_registry()
    assert ours(registry) == ["tp-good"]
    assert registry.errors["tp-broken"] == "import failed: RuntimeError: boom at import"
    assert "tp-broken" in caplog.text and "boom at import" in caplog.text
    assert registry.pm.get_plugin("tp-broken") is None


def test_strict_mode_makes_a_load_failure_fatal(site, monkeypatch):
    site.plugin("tp-broken", body="import crmtest_module_that_does_not_exist")
    monkeypatch.setenv("CRM_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError, match=r"tp-broken: import failed: ModuleNotFoundError"):
        build_registry()


def test_a_plugin_whose_dependency_is_not_installed_is_reported_not_registered(site):
    site.plugin("tp-needy", depends=("x",), body=MENU)
    registry = build_registry()
    assert registry.errors["tp-needy"] == "depends on 'x', which is not installed"
    assert "tp-needy" not in registry.plugins
    assert registry.pm.get_plugin("tp-needy") is None


def test_a_dependant_of_a_plugin_that_failed_to_import_says_so(site):
    site.plugin("tp-base", body="raise ImportError('needs libfoo')")
    site.plugin("tp-addon", depends=("tp-base",))
    registry = build_registry()
    assert ours(registry) == []
    assert registry.errors["tp-addon"].startswith("depends on 'tp-base', which failed to load")
    assert "needs libfoo" in registry.errors["tp-addon"]


def test_a_dependant_of_a_plugin_refused_by_the_contract_is_not_registered(site):
    site.plugin("tp-base", core_api=">=9")
    site.plugin("tp-addon", depends=("tp-base",))
    registry = build_registry()
    assert ours(registry) == []
    assert "needs core API >=9" in registry.errors["tp-base"]
    assert registry.errors["tp-addon"] == "depends on 'tp-base', which failed to load"


def test_dependencies_are_registered_before_dependants_whatever_their_names(site):
    # names sort against the dependency order: tp-a needs tp-b, which needs tp-z
    site.plugin("tp-a", depends=("tp-b",), body=MENU)
    site.plugin("tp-b", depends=("tp-z",), body=MENU)
    site.plugin("tp-z", body=MENU)
    site.plugin("tp-m", body=MENU)
    registry = build_registry()
    assert ours(registry) == ["tp-z", "tp-b", "tp-a", "tp-m"]
    # pluggy calls the last registered first: a dependant runs before what it builds on
    impls = [i.plugin_name for i in registry.pm.hook.crm_admin_menu.get_hookimpls() if i.plugin_name in ours(registry)]
    assert impls == ["tp-z", "tp-b", "tp-a", "tp-m"]


def test_a_dependency_cycle_is_reported(site):
    site.plugin("tp-c1", depends=("tp-c2",))
    site.plugin("tp-c2", depends=("tp-c1",))
    site.plugin("tp-free")
    registry = build_registry()
    assert ours(registry) == ["tp-free"]
    assert registry.errors["tp-c1"] == "dependency cycle: tp-c1 -> tp-c2 -> tp-c1"
    assert registry.errors["tp-c2"].startswith("depends on 'tp-c1', which failed to load: dependency cycle")


def test_a_plugin_for_another_core_api_is_reported(site):
    site.plugin("tp-future", core_api=">=2.0")
    site.plugin("tp-bad-range", core_api="one point oh")
    registry = build_registry()
    assert ours(registry) == []
    assert registry.errors["tp-future"] == (
        f"plugin 'tp-future': needs core API >=2.0, this core provides {HOOK_API_VERSION}")
    assert "is not a valid version specifier" in registry.errors["tp-bad-range"]


def test_a_plugin_breaking_the_hook_contract_is_reported_naming_the_hook(site):
    site.plugin("tp-typo", body="""
        @hookimpl
        def crm_after_party_saved(ctx, party):
            pass
    """)
    registry = build_registry()
    assert "crm_after_party_saved matches no hook spec" in registry.errors["tp-typo"]


def test_a_plugin_object_without_plugin_info_is_reported(site):
    module = site.module("tp-odd", "PLUGIN = {'title': 'Odd'}\n")
    site.install("crm-tp-odd", {"crmcore.plugins": {"tp-odd": module}})
    registry = build_registry()
    assert registry.errors["tp-odd"] == "PLUGIN of tp-odd is dict, not crmcore.PluginInfo"


def test_a_name_declared_by_two_distributions_is_refused(site):
    first = site.module("tp-twin-1", "")
    second = site.module("tp-twin-2", "")
    site.install("crm-first", {"crmcore.plugins": {"tp-twin": first}})
    site.install("crm-second", {"crmcore.plugins": {"tp-twin": second}})
    registry = build_registry()
    assert "tp-twin" not in registry.plugins
    assert registry.errors["tp-twin"] == "declared by two distributions (crm-first and crm-second): uninstall one"


def test_names_are_sorted_so_the_order_never_depends_on_the_environment(site):
    # one distribution listing its plugins out of order, two more installed in reverse order
    mods = {name: site.module(name, "") for name in ("tp-k", "tp-c", "tp-q")}
    site.install("crm-bundle", {"crmcore.plugins": {"tp-q": mods["tp-q"], "tp-c": mods["tp-c"]}})
    site.install("crm-k", {"crmcore.plugins": {"tp-k": mods["tp-k"]}})
    site.plugin("tp-b")
    registry = build_registry()
    assert ours(registry) == ["tp-b", "tp-c", "tp-k", "tp-q"]
    assert registry.plugins["tp-c"].distribution == "crm-bundle"


def test_crm_load_plugins_limits_what_is_even_imported(site, monkeypatch):
    site.plugin("tp-a")
    broken = site.plugin("tp-broken", body="raise RuntimeError('must not be imported')")
    site.plugin("tp-c", depends=("tp-b",))
    site.plugin("tp-b")
    monkeypatch.setenv("CRM_LOAD_PLUGINS", "tp-a, tp-c")
    registry = build_registry()
    assert ours(registry) == ["tp-a"]
    assert broken not in sys.modules
    assert "tp-broken" not in registry.errors
    assert registry.errors["tp-c"] == "depends on 'tp-b', which CRM_LOAD_PLUGINS leaves out"
    assert set(registry.plugins) >= CORE


def test_trace_logs_every_hook_call_with_its_duration(site, monkeypatch, caplog, crm, business):
    site.plugin("tp-traced", enabled_by_default=True, body=textwrap.dedent("""
        import flask

        @hookimpl
        def crm_register_blueprints(app):
            return [flask.Blueprint("tp_traced", __name__)]
    """) + MENU)
    monkeypatch.setenv("CRM_TRACE_PLUGINS", "1")
    registry = build_registry()
    assert registry.trace
    with caplog.at_level(logging.INFO, logger="crmcore.plugins.trace"):
        registry.pm.hook.crm_register_blueprints(app=flask.Flask(__name__))
        # tenant-scoped calls go one implementation at a time, and are traced the same way
        traced = Crm(config=crm.config, db=crm.db, registry=registry)
        ctx = Context(traced, business, None, Role.OWNER)
        try:
            assert [p for p, _ in ctx.collect("crm_admin_menu") if not p.startswith("core-")] == ["tp-traced"]
        finally:
            ctx.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "crmcore.plugins.trace"]
    # install-wide calls go through pluggy's monitoring: one line naming every implementation
    assert any(line.startswith("crm_register_blueprints [") and "tp-traced" in line.split("]")[0]
               and line.endswith(" µs") for line in lines)
    assert any(line.startswith("crm_admin_menu [tp-traced] ") and line.endswith(" µs") for line in lines)


def test_no_trace_without_the_setting(site, caplog):
    site.plugin("tp-quiet", body=MENU)
    registry = build_registry()
    with caplog.at_level(logging.DEBUG, logger="crmcore.plugins.trace"):
        registry.pm.hook.crm_admin_menu(ctx=None)
    assert not [r for r in caplog.records if r.name == "crmcore.plugins.trace"]


def test_a_driver_belongs_to_the_plugin_of_its_distribution(site):
    module = site.module("tp-gw", "class Gateway:\n    pass\n")
    site.install("crm-tp-gw", {"crmcore.plugins": {"tp-gw": module},
                               "crmcore.test_gateways": {"fakepay": f"{module}:Gateway"}})
    orphan = site.module("tp-orphan", "class Gateway:\n    pass\n")
    site.install("crm-orphan", {"crmcore.test_gateways": {"orphanpay": f"{orphan}:Gateway"}})
    drivers.reset_cache()
    try:
        found = drivers.load_group("crmcore.test_gateways")
        assert found["fakepay"].plugin == "tp-gw"
        assert found["fakepay"].distribution == "crm-tp-gw"
        assert found["fakepay"].obj is sys.modules[module].Gateway
        assert "orphanpay" not in found
        assert "declares no crmcore.plugins entry point" in drivers.load_errors("crmcore.test_gateways")["orphanpay"]
    finally:
        drivers.reset_cache()


# -- the dependency order, for any graph -------------------------------------------------------

NAMES = [f"p{i}" for i in range(7)]


@settings(max_examples=150, deadline=None)
@given(graph=st.dictionaries(st.sampled_from(NAMES), st.lists(st.sampled_from([*NAMES, "absent"]), max_size=3,
                                                                unique=True), min_size=1),
       seed=st.randoms(use_true_random=False))
def test_dependency_order_for_any_graph(graph, seed):
    registry = PluginRegistry()
    items = list(graph.items())
    seed.shuffle(items)
    candidates = {name: (object(), PluginInfo(title=name, depends=tuple(deps)), None) for name, deps in items}
    failures: dict[str, str] = {}
    order = [name for name, _ in registry._in_dependency_order(candidates, failures)]

    def loadable(name: str, seen: frozenset[str] = frozenset()) -> bool:
        if name not in graph or name in seen:
            return False
        return all(loadable(dep, seen | {name}) for dep in graph[name])

    assert set(order) == {name for name in graph if loadable(name)}
    assert set(failures) == set(graph) - set(order)
    position = {name: i for i, name in enumerate(order)}
    for name in order:
        assert all(position[dep] < position[name] for dep in graph[name])
    # the result depends on the graph only, not on the order it was listed in
    again = [name for name, _ in registry._in_dependency_order(dict(sorted(candidates.items())), {})]
    assert order == again


# -- per-business dispatch -----------------------------------------------------------------------


class Recorder:
    """Implements a validate, a collect and a react hook, recording the businesses it saw."""

    def __init__(self) -> None:
        self.validated: list[int] = []
        self.created: list[int] = []

    @hookimpl
    def crm_before_party_save(self, ctx, party, changes, created):
        self.validated.append(ctx.business_id)

    @hookimpl
    def crm_admin_menu(self, ctx):
        return [{"label": "Recorder", "url": "/recorder"}]

    @hookimpl
    def crm_after_party_created(self, ctx, party):
        self.created.append(ctx.business_id)


@use_case(Role.MEMBER)
def save_party(ctx: Context, name: str) -> Party:
    """The three call paths a service uses: validate in the transaction, write, emit."""
    party = Party(kind="organisation", name=name, name_key=name.casefold())
    ctx.validate("crm_before_party_save", party=party, changes={"name": [None, name]}, created=True)
    ctx.session.add(party)
    ctx.session.flush()
    ctx.emit("crm_after_party_created", party=party)
    return party


def parties(ctx: Context) -> int:
    with ctx.crm.db.session(ctx.business_id) as session:
        return session.scalar(select(func.count()).select_from(Party))


def menu_plugins(ctx: Context) -> list[str]:
    """Plugins that gave menu entries, leaving out the core's own features (they use the hook too)."""
    return [plugin for plugin, _ in ctx.collect("crm_admin_menu") if not plugin.startswith("core-")]


def test_a_plugin_enabled_in_one_business_is_called_there_only(register_plugin, ctx, other_ctx):
    recorder = Recorder()
    name = register_plugin(recorder, enable_for=ctx)
    save_party(ctx, "Acme Tools")
    save_party(other_ctx, "Globex Tools")
    assert recorder.validated == [ctx.business_id]
    assert recorder.created == [ctx.business_id]
    assert menu_plugins(ctx) == [name]
    assert menu_plugins(other_ctx) == []
    assert ctx.is_enabled(name) and not other_ctx.is_enabled(name)
    assert ctx.wants("crm_after_party_created") and not other_ctx.wants("crm_after_party_created")
    with other_ctx.crm.db.session(other_ctx.business_id) as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
    states = {s.name: s.enabled for s in list_plugins(other_ctx)}
    assert states[name] is False and all(states[core] for core in CORE)


def test_disabling_stops_the_plugin_at_once_even_for_a_context_opened_earlier(crm, register_plugin, ctx, business):
    recorder = Recorder()
    name = register_plugin(recorder, enable_for=ctx)
    earlier = Context.open(crm, business.slug, f"owner@{business.slug}.example")
    try:
        assert menu_plugins(earlier) == [name]
        disable_plugin(ctx, name)
        # the earlier context sees the switch with its next transaction (a request's, a use case's)
        save_party(earlier, "After the switch")
        assert recorder.validated == [] and recorder.created == []
        assert menu_plugins(earlier) == []
        enable_plugin(ctx, name)
        save_party(earlier, "Back on")
        assert recorder.validated == [business.id] and recorder.created == [business.id]
    finally:
        earlier.close()


def test_the_relay_is_cached_per_business_and_version(crm, register_plugin, ctx, other_ctx):
    name = register_plugin(Recorder())
    first = ctx.hooks
    assert ctx.hooks is first
    assert crm.registry.cached_relay(ctx.business_id, ctx.business.plugins_version) is first
    assert other_ctx.hooks is not first
    version = ctx.business.plugins_version
    enable_plugin(ctx, name)
    second = ctx.hooks
    assert second is not first and ctx.hooks is second
    assert ctx.business.plugins_version == version + 1
    assert name in second.enabled and name not in first.enabled
    assert other_ctx.hooks.enabled == first.enabled  # the other business did not move


def test_toggles_inside_one_transaction_see_each_other(register_plugin, ctx):
    base = register_plugin(Recorder(), name="tp-base")
    addon = register_plugin(Recorder(), name="tp-addon", info=PluginInfo(title="Addon", depends=("tp-base",)))

    @use_case(Role.ADMIN)
    def enable_both(ctx: Context) -> None:
        enable_plugin(ctx, base)
        enable_plugin(ctx, addon)

    enable_both(ctx)
    assert {base, addon} <= ctx.hooks.enabled


def test_a_rolled_back_toggle_leaves_no_trace_in_the_relay_cache(crm, register_plugin, ctx, business):
    recorder = Recorder()
    name = register_plugin(recorder)

    @use_case(Role.ADMIN)
    def enable_then_fail(ctx: Context) -> None:
        enable_plugin(ctx, name)
        assert ctx.is_enabled(name)  # the transaction sees its own switch
        raise Conflict("changed my mind")

    with pytest.raises(Conflict):
        enable_then_fail(ctx)
    assert not ctx.is_enabled(name)
    with Context.open(crm, business.slug, f"owner@{business.slug}.example") as second:
        assert not second.is_enabled(name)
        enable_plugin(second, name)
    ctx.session.commit()  # end ctx's read transaction, as the end of a request does
    assert ctx.is_enabled(name)


def test_enabling_needs_the_dependencies_enabled_first(register_plugin, ctx):
    base = register_plugin(Recorder(), name="tp-base")
    other = register_plugin(Recorder(), name="tp-other")
    addon = register_plugin(Recorder(), name="tp-addon",
                            info=PluginInfo(title="Addon", depends=("tp-base", "tp-other")))
    enable_plugin(ctx, base)
    with pytest.raises(Conflict, match=r"plugin 'tp-addon' needs 'tp-other' enabled first"):
        enable_plugin(ctx, addon)
    assert not ctx.is_enabled(addon)
    enable_plugin(ctx, other)
    enable_plugin(ctx, addon)
    assert ctx.is_enabled(addon)


def test_a_plugin_cannot_be_disabled_while_an_enabled_plugin_needs_it(register_plugin, ctx):
    base = register_plugin(Recorder(), name="tp-base", enable_for=ctx)
    addon = register_plugin(Recorder(), name="tp-addon", info=PluginInfo(title="Addon", depends=("tp-base",)),
                            enable_for=ctx)
    with pytest.raises(Conflict, match=r"plugin 'tp-base' is needed by 'tp-addon': disable those first"):
        disable_plugin(ctx, base)
    assert ctx.is_enabled(base)
    disable_plugin(ctx, addon)
    disable_plugin(ctx, base)
    assert not ctx.is_enabled(base)


@pytest.mark.parametrize("core", sorted(CORE))
def test_essential_core_plugins_cannot_be_disabled(ctx, core):
    with pytest.raises(Conflict, match="part of the core and cannot be disabled"):
        disable_plugin(ctx, core)
    assert ctx.is_enabled(core)


def test_an_unknown_plugin_is_not_found(ctx):
    for action in (enable_plugin, disable_plugin):
        with pytest.raises(NotFound, match=r"^unknown plugin 'x'$"):
            action(ctx, "x")


@pytest.mark.parametrize("role", ["member", "read_only"])
def test_only_admins_switch_plugins(register_plugin, make_user, business, role):
    name = register_plugin(Recorder())
    user_ctx = make_user(business, role)
    with pytest.raises(PermissionDenied, match="needs the admin role"):
        enable_plugin(user_ctx, name)
    assert not user_ctx.is_enabled(name)


def test_an_admin_switches_plugins(register_plugin, make_user, business):
    name = register_plugin(Recorder())
    admin = make_user(business, "admin")
    enable_plugin(admin, name)
    assert admin.is_enabled(name)


class Broken:
    @hookimpl
    def crm_before_party_save(self, ctx, party, changes, created):
        raise RuntimeError("broken validator")

    @hookimpl
    def crm_admin_menu(self, ctx):
        raise RuntimeError("broken menu")


def test_a_failing_implementation_neither_stops_the_write_nor_the_other_plugins(register_plugin, ctx):
    broken = register_plugin(Broken(), enable_for=ctx)
    recorder = Recorder()
    good = register_plugin(recorder, enable_for=ctx)
    before = len(calls.RECENT_FAILURES)
    save_party(ctx, "Still saved")
    assert parties(ctx) == 1
    assert recorder.validated == [ctx.business_id]
    assert menu_plugins(ctx) == [good]
    failures = list(calls.RECENT_FAILURES)[before:]
    assert [(f["plugin"], f["hook"], f["business_id"], f["error"]) for f in failures] == [
        (broken, "crm_before_party_save", ctx.business_id, "RuntimeError: broken validator"),
        (broken, "crm_admin_menu", ctx.business_id, "RuntimeError: broken menu"),
    ]


class Vetoing:
    @hookimpl
    def crm_before_party_save(self, ctx, party, changes, created):
        if party.name.startswith("Bad"):
            raise Veto(f"{party.name!r} is on the blocklist")


def test_a_veto_stops_the_write_and_names_its_plugin(register_plugin, ctx):
    name = register_plugin(Vetoing(), enable_for=ctx)
    recorder = Recorder()
    register_plugin(recorder, enable_for=ctx)
    with pytest.raises(Veto) as vetoed:
        save_party(ctx, "Bad Corp")
    assert vetoed.value.plugin == name
    assert vetoed.value.message == "'Bad Corp' is on the blocklist"
    assert parties(ctx) == 0
    assert recorder.created == []
    with ctx.crm.db.session(ctx.business_id) as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_a_veto_of_a_plugin_not_enabled_here_does_not_apply(register_plugin, ctx, other_ctx):
    register_plugin(Vetoing(), enable_for=other_ctx)
    save_party(ctx, "Bad but elsewhere")
    assert parties(ctx) == 1


def test_registering_the_same_name_twice_is_refused(register_plugin, crm):
    name = register_plugin(Recorder())
    with pytest.raises(PluginLoadError, match="already registered"):
        crm.registry.register(name, Recorder())


def test_unregistering_drops_cached_relays(crm, register_plugin, ctx):
    name = register_plugin(Recorder(), enable_for=ctx)
    relay = ctx.hooks
    crm.registry.unregister(name)
    assert ctx.hooks is not relay
    assert name not in ctx.hooks.enabled
    assert menu_plugins(ctx) == []


def test_plugins_listing_says_what_is_installed_and_enabled(register_plugin, ctx):
    name = register_plugin(Recorder(), info=PluginInfo(title="Recorder", version="3.1", depends=()))
    by_name = {state.name: state for state in list_plugins(ctx)}
    assert by_name[name].title == "Recorder" and by_name[name].version == "3.1"
    assert by_name[name].enabled is False and by_name[name].source == "test"
    assert by_name["core-parties"].essential and by_name["core-parties"].enabled
    enable_plugin(ctx, name)
    assert {s.name: s.enabled for s in list_plugins(ctx)}[name] is True


def test_enabled_by_default_plugins_are_on_until_switched_off(register_plugin, ctx, other_ctx):
    name = register_plugin(Recorder(), info=PluginInfo(title="Default on", enabled_by_default=True))
    assert ctx.is_enabled(name) and other_ctx.is_enabled(name)
    disable_plugin(ctx, name)
    assert not ctx.is_enabled(name) and other_ctx.is_enabled(name)


def test_unhashable_plugin_object_is_refused_with_a_clear_error(crm):
    import types

    from crmcore.plugins.manager import PluginLoadError

    with pytest.raises(PluginLoadError, match="hashable"):
        crm.registry.register("unhashable", types.SimpleNamespace())
    assert "unhashable" not in crm.registry.plugins
