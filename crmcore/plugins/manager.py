"""One global pluggy manager, discovery with stevedore, and per-business hook relays.

Every installed plugin, including the core's own features (``DEFAULT_PLUGINS``), goes through
:meth:`PluginRegistry.register`. A call for a business goes through :meth:`PluginRegistry.relay`,
whose attributes are ``pm.subset_hook_caller`` objects without the plugins that business has not
enabled, cached per (business, enablement version, registry generation): a toggle bumps the
business's ``plugins_version`` in the same transaction, and every use case reads that version
when its transaction starts (``crmcore.plugins.service.hooks_for``), so a toggle takes effect
in every process and every open context at their next transaction.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version
from stevedore import ExtensionManager

from crmcore import HOOK_API_VERSION, hookspecs
from crmcore.plugins.info import PluginInfo

log = logging.getLogger("crmcore.plugins")

ENTRY_POINT_GROUP = "crmcore.plugins"

#: The core's own features, registered exactly like discovered plugins (names are their ids).
DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = (
    ("core-records", "crmcore.records.plugin"),
    ("core-parties", "crmcore.parties.plugin"),
    ("core-timeline", "crmcore.timeline.plugin"),
    ("core-settings", "crmcore.web.settings.plugin"),
    ("core-messaging", "crmcore.messaging.plugin"),
    # not essential, off by default: switched on per business by its first notification rule
    ("core-notifications", "crmcore.messaging.rules"),
)


class PluginLoadError(Exception):
    """Raised instead of recording a load error when ``CRM_STRICT_PLUGINS=1``."""


@dataclass
class LoadedPlugin:
    name: str
    obj: Any
    info: PluginInfo
    source: str  # "core", "entry_point" or "test"
    distribution: str | None = None

    @property
    def essential(self) -> bool:
        return self.info.essential

    @property
    def version(self) -> str:
        return self.info.version


class HookRelay:
    """``hooks_for(business)``: attribute access gives the hook caller for that business."""

    def __init__(self, pm: pluggy.PluginManager, remove: frozenset[Any], enabled: frozenset[str]) -> None:
        self._pm = pm
        self._remove = remove
        self.enabled = enabled

    def __getattr__(self, name: str) -> Any:
        orig = getattr(self._pm.hook, name)
        caller = self._pm.subset_hook_caller(name, remove_plugins=self._remove) if self._remove else orig
        self.__dict__[name] = caller
        return caller


def _info_of(obj: Any, name: str) -> PluginInfo:
    info = getattr(obj, "PLUGIN", None)
    if info is None:
        return PluginInfo(title=name)
    if not isinstance(info, PluginInfo):
        raise TypeError(f"PLUGIN of {name} is {type(info).__name__}, not crmcore.PluginInfo")
    return info


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def fresh_entry_points(group: str) -> list[Any]:
    """The entry points of ``group`` in the current ``sys.path``, sorted by name.

    Read from :mod:`importlib.metadata` each time rather than through stevedore's caches: its
    class-level ``ENTRY_POINT_CACHE`` never sees a distribution installed later in the process,
    and its on-disk cache drops ``EntryPoint.dist``, which tells us the owning distribution.
    """
    from importlib.metadata import entry_points

    return sorted(entry_points(group=group), key=lambda ep: (ep.name, _dist_name(ep) or ""))


def _dist_name(entry_point: Any) -> str | None:
    return getattr(getattr(entry_point, "dist", None), "name", None)


def _without_duplicates(entry_points: list[Any], failures: dict[str, str]) -> list[Any]:
    """Refuse a plugin name declared by two distributions (which one wins would be luck)."""
    by_name: dict[str, list[Any]] = {}
    for ep in entry_points:
        by_name.setdefault(ep.name, []).append(ep)
    out = []
    for name, eps in by_name.items():
        if len(eps) > 1:
            dists = " and ".join(sorted(str(_dist_name(ep)) for ep in eps))
            failures[name] = f"declared by two distributions ({dists}): uninstall one"
        else:
            out.append(eps[0])
    return out


class EntryPointManager(ExtensionManager):
    """stevedore's loader over entry points we listed (see :func:`fresh_entry_points`)."""

    def __init__(self, namespace: str, entry_points: list[Any], on_failure: Any) -> None:
        self._chosen = list(entry_points)
        super().__init__(namespace, invoke_on_load=False, on_load_failure_callback=on_failure)

    def list_entry_points(self) -> list[Any]:
        return list(self._chosen)


class PluginRegistry:
    """The process-wide set of installed plugins and the pluggy manager that dispatches to them."""

    def __init__(self, *, strict: bool = False, trace: bool = False) -> None:
        self.pm = pluggy.PluginManager("crmcore")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, LoadedPlugin] = {}
        self.errors: dict[str, str] = {}
        self.strict = strict
        self.trace = trace
        self.generation = 0
        self._relays: dict[tuple[int, int, int], HookRelay] = {}
        self._lock = threading.Lock()
        if trace:
            self._enable_tracing()

    # -- registration --------------------------------------------------------------------

    def register(self, name: str, obj: Any, *, info: PluginInfo | None = None, source: str = "test",
                 distribution: str | None = None) -> LoadedPlugin:
        """Register ``obj`` under ``name`` after checking it against the contract.

        Raises :class:`PluginLoadError` naming what is wrong; nothing stays registered then.
        """
        if name in self.plugins:
            raise PluginLoadError(f"plugin {name!r} is already registered")
        info = info or _info_of(obj, name)
        try:
            hash(obj)
        except TypeError as exc:  # pluggy's per-business subset callers keep plugins in sets
            raise PluginLoadError(f"plugin {name!r}: the plugin object must be hashable (a module, a class "
                                  f"or an instance of a plain class), not {type(obj).__name__}") from exc
        if info.hookspecs is not None:
            self._add_plugin_hookspecs(name, info.hookspecs)
        problems = self.contract_problems(name, obj, info)
        if problems:
            raise PluginLoadError(f"plugin {name!r}: " + "; ".join(problems))
        try:
            self.pm.register(obj, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            raise PluginLoadError(f"plugin {name!r}: {exc}") from exc
        loaded = LoadedPlugin(name=name, obj=obj, info=info, source=source, distribution=distribution)
        self.plugins[name] = loaded
        if info.model_base is not None:
            from crmcore.db import register_model_base

            register_model_base(info.model_base)
        self._changed()
        return loaded

    def _add_plugin_hookspecs(self, name: str, specs: Any) -> None:
        """Add the hooks a plugin raises for others. Names must start with ``crm_`` and may not
        redefine a hook of the core or of another plugin; a spec added before (the same plugin
        registered again) is kept, since pluggy cannot remove one."""
        new = {attr for attr in dir(specs) if self.pm.parse_hookspec_opts(specs, attr) is not None}
        if not new:
            raise PluginLoadError(f"plugin {name!r}: its hookspecs hold no @crmcore.hookspec function")
        for attr in sorted(new):
            if not attr.startswith("crm_"):
                raise PluginLoadError(f"plugin {name!r}: hook spec {attr} must start with crm_")
            caller = getattr(self.pm.hook, attr, None)
            if caller is not None and caller.spec is not None and caller.spec.namespace is not specs:
                raise PluginLoadError(f"plugin {name!r}: hook spec {attr} is already defined elsewhere")
        if all(getattr(self.pm.hook, attr, None) is not None and getattr(self.pm.hook, attr).spec is not None
               for attr in new):
            return
        self.pm.add_hookspecs(specs)

    def unregister(self, name: str) -> None:
        loaded = self.plugins.pop(name, None)
        if loaded is not None:
            self.pm.unregister(name=name)
            self._changed()

    def _changed(self) -> None:
        with self._lock:
            self.generation += 1
            self._relays.clear()

    def contract_problems(self, name: str, obj: Any, info: PluginInfo) -> list[str]:
        """What keeps ``obj`` from fitting this core's hook contract (empty when it fits)."""
        problems: list[str] = []
        try:
            if Version(HOOK_API_VERSION) not in SpecifierSet(info.core_api):
                problems.append(f"needs core API {info.core_api}, this core provides {HOOK_API_VERSION}")
        except InvalidSpecifier:
            problems.append(f"core_api {info.core_api!r} is not a valid version specifier")
        if info.settings_schema is not None:
            from crmcore.plugins.settings import secret_problems

            problems.extend(secret_problems(info.settings_schema))
        for attr in dir(obj):
            opts = self.pm.parse_hookimpl_opts(obj, attr)
            if opts is None:
                continue
            if opts.get("specname"):
                problems.append(f"{attr} uses specname, which crmcore forbids (it leaks across businesses)")
                continue
            hook_name = attr
            caller = getattr(self.pm.hook, hook_name, None)
            if caller is None or caller.spec is None:
                problems.append(f"{attr} matches no hook spec (misspelled? see docs/hooks.md)")
                continue
            func = getattr(obj, attr)
            try:
                params = inspect.signature(func).parameters
            except (TypeError, ValueError):
                continue
            unknown = {p for p in params if p != "self"} - set(caller.spec.argnames)
            if unknown:
                problems.append(f"{attr} takes {', '.join(sorted(unknown))}, which the spec does not pass")
        return problems

    # -- discovery -----------------------------------------------------------------------

    def load_defaults(self) -> None:
        import importlib

        for name, module_name in DEFAULT_PLUGINS:
            module = importlib.import_module(module_name)
            self.register(name, module, source="core")

    def discover(self, only: Iterable[str] | None = None) -> None:
        """Load every ``crmcore.plugins`` entry point, in dependency order, reporting failures.

        ``only`` limits which entry points are even imported (``CRM_LOAD_PLUGINS``). A plugin
        that fails is recorded in :attr:`errors` (and logged) and the others load; with
        ``strict`` the first discovery with errors raises :class:`PluginLoadError`.
        """
        failures: dict[str, str] = {}

        def on_failure(_manager: Any, entry_point: Any, exc: BaseException) -> None:
            failures[entry_point.name] = f"import failed: {type(exc).__name__}: {exc}"

        wanted = frozenset(only) if only is not None else None
        entry_points = fresh_entry_points(ENTRY_POINT_GROUP)
        left_out = {ep.name for ep in entry_points} - wanted if wanted is not None else set()
        chosen = [ep for ep in entry_points if wanted is None or ep.name in wanted]
        chosen = _without_duplicates(chosen, failures)
        manager = EntryPointManager(ENTRY_POINT_GROUP, chosen, on_failure)
        candidates: dict[str, tuple[Any, PluginInfo, str | None]] = {}
        for ext in sorted(manager.extensions, key=lambda e: e.name):
            try:
                info = _info_of(ext.plugin, ext.name)
            except TypeError as exc:
                failures[ext.name] = str(exc)
                continue
            candidates[ext.name] = (ext.plugin, info, _dist_name(ext.entry_point))
        for name, (obj, info, dist) in self._in_dependency_order(candidates, failures, left_out):
            unregistered = [dep for dep in info.depends if dep not in self.plugins]
            if unregistered:
                failures[name] = f"depends on {unregistered[0]!r}, which failed to load"
                continue
            try:
                self.register(name, obj, info=info, source="entry_point", distribution=dist)
            except PluginLoadError as exc:
                failures[name] = str(exc)
        for name, message in sorted(failures.items()):
            self.errors[name] = message
            log.error("plugin %s was not loaded: %s", name, message)
        self.pm.check_pending()
        if self.strict and self.errors:
            raise PluginLoadError("; ".join(f"{k}: {v}" for k, v in sorted(self.errors.items())))

    def _in_dependency_order(self, candidates: dict[str, tuple[Any, PluginInfo, str | None]],
                             failures: dict[str, str], left_out: set[str] | frozenset[str] = frozenset(),
                             ) -> list[tuple[str, tuple[Any, PluginInfo, str | None]]]:
        """Candidates with every plugin after its ``depends`` (names sorted among equals)."""
        order: list[str] = []
        state: dict[str, str] = {}

        def missing_reason(dep: str) -> str:
            if dep in failures:
                return f"depends on {dep!r}, which failed to load: {failures[dep]}"
            if dep in left_out:
                return f"depends on {dep!r}, which CRM_LOAD_PLUGINS leaves out"
            return f"depends on {dep!r}, which is not installed"

        def visit(name: str, chain: tuple[str, ...]) -> bool:
            if state.get(name) == "done":
                return True
            if state.get(name) == "bad":
                return False
            if name in chain:
                cycle = chain[chain.index(name):]
                failures[name] = "dependency cycle: " + " -> ".join((*cycle, name))
                state[name] = "bad"
                return False
            _, info, _ = candidates[name]
            for dep in info.depends:
                if dep in self.plugins:
                    continue
                if dep not in candidates:
                    failures[name] = missing_reason(dep)
                    state[name] = "bad"
                    return False
                if not visit(dep, (*chain, name)):
                    failures.setdefault(name, f"depends on {dep!r}, which failed to load: {failures.get(dep, '?')}")
                    state[name] = "bad"
                    return False
            state[name] = "done"
            order.append(name)
            return True

        for name in sorted(candidates):
            visit(name, ())
        return [(name, candidates[name]) for name in order]

    # -- per-business dispatch -----------------------------------------------------------

    def relay(self, business_id: int, version: int, enabled: frozenset[str] | None = None) -> HookRelay:
        key = (business_id, version, self.generation)
        relay = self._relays.get(key)
        if relay is not None:
            return relay
        if enabled is None:
            raise KeyError(key)
        relay = self.make_relay(enabled)
        with self._lock:
            if len(self._relays) > 10_000:
                self._relays.clear()
            self._relays[key] = relay
        return relay

    def make_relay(self, enabled: frozenset[str]) -> HookRelay:
        """An uncached relay for the plugins ``enabled`` (a transaction that toggled plugins)."""
        remove = frozenset(p.obj for n, p in self.plugins.items() if n not in enabled)
        return HookRelay(self.pm, remove, frozenset(enabled))

    def cached_relay(self, business_id: int, version: int) -> HookRelay | None:
        return self._relays.get((business_id, version, self.generation))

    def implementers(self, hook_name: str) -> list[str]:
        caller = getattr(self.pm.hook, hook_name)
        return [impl.plugin_name for impl in caller.get_hookimpls()]

    # -- tracing -------------------------------------------------------------------------

    def _enable_tracing(self) -> None:
        trace_log = logging.getLogger("crmcore.plugins.trace")
        starts: dict[int, float] = {}

        def before(hook_name: str, hook_impls: Any, kwargs: Any) -> None:
            starts[threading.get_ident()] = time.perf_counter()

        def after(outcome: Any, hook_name: str, hook_impls: Any, kwargs: Any) -> None:
            started = starts.pop(threading.get_ident(), time.perf_counter())
            names = ",".join(i.plugin_name for i in hook_impls)
            trace_log.info("%s [%s] %.1f µs", hook_name, names, (time.perf_counter() - started) * 1e6)

        self.pm.add_hookcall_monitoring(before, after)


_registry: PluginRegistry | None = None
_registry_lock = threading.Lock()


def get_registry() -> PluginRegistry:
    """The process-wide registry, loaded on first use (defaults, then discovered plugins)."""
    global _registry
    if _registry is None:
        with _registry_lock:
            if _registry is None:
                _registry = build_registry()
    return _registry


def build_registry(*, discover: bool = True) -> PluginRegistry:
    registry = PluginRegistry(
        strict=_truthy(os.environ.get("CRM_STRICT_PLUGINS")),
        trace=_truthy(os.environ.get("CRM_TRACE_PLUGINS")),
    )
    registry.load_defaults()
    if discover:
        only = os.environ.get("CRM_LOAD_PLUGINS")
        names = [n.strip() for n in only.split(",") if n.strip()] if only is not None else None
        registry.discover(names)
    return registry


def reset_registry(registry: PluginRegistry | None = None) -> None:
    """Replace the process-wide registry (tests, and ``crm`` after installing plugins)."""
    global _registry
    _registry = registry
