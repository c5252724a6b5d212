"""Typed drivers (field types, record types, gateways, ...) declared in entry-point groups.

A driver belongs to the plugin declared in the ``crmcore.plugins`` group of the *same
distribution*; it is usable in a business only while that plugin is enabled there. Drivers of
the core's own distribution belong to no plugin and are always available.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crmcore.plugins.manager import ENTRY_POINT_GROUP, EntryPointManager, fresh_entry_points

if TYPE_CHECKING:
    from crmcore.context import Context

log = logging.getLogger("crmcore.plugins")

CORE_DISTRIBUTION = "crmcore"


@dataclass(frozen=True)
class Driver:
    name: str
    obj: Any
    #: the plugin that must be enabled for the driver to be usable (None: the core's own)
    plugin: str | None
    distribution: str | None


_cache: dict[str, dict[str, Driver]] = {}
_errors: dict[str, dict[str, str]] = {}
_extra: dict[str, dict[str, Driver]] = {}
_lock = threading.Lock()


def _dist_name(entry_point: Any) -> str | None:
    dist = getattr(entry_point, "dist", None)
    return getattr(dist, "name", None)


def _plugins_by_distribution() -> dict[str, str]:
    from importlib.metadata import entry_points

    out: dict[str, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        name = _dist_name(ep)
        if name:
            out.setdefault(_norm(name), ep.name)
    return out


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


def load_group(group: str) -> dict[str, Driver]:
    """All drivers of ``group`` installed in this process, by name (loaded once, then cached)."""
    cached = _cache.get(group)
    if cached is not None:
        return {**cached, **_extra.get(group, {})}
    errors: dict[str, str] = {}

    def on_failure(_manager: Any, entry_point: Any, exc: BaseException) -> None:
        errors[entry_point.name] = f"{type(exc).__name__}: {exc}"
        log.error("driver %s in %s failed to load: %s", entry_point.name, group, exc)

    # listed with their distributions (stevedore's cached listing drops ``dist``, which says
    # which plugin owns a driver)
    manager = EntryPointManager(group, fresh_entry_points(group), on_failure)
    owners = _plugins_by_distribution()
    drivers: dict[str, Driver] = {}
    for ext in sorted(manager.extensions, key=lambda e: e.name):
        dist = _dist_name(ext.entry_point)
        plugin = None if dist is None or _norm(dist) == CORE_DISTRIBUTION else owners.get(_norm(dist))
        if dist is not None and _norm(dist) != CORE_DISTRIBUTION and plugin is None:
            errors[ext.name] = f"distribution {dist} declares no {ENTRY_POINT_GROUP} entry point to own it"
            continue
        if ext.name in drivers:
            errors[ext.name] = f"declared twice ({drivers[ext.name].distribution} and {dist})"
            continue
        drivers[ext.name] = Driver(ext.name, ext.plugin, plugin, dist)
    with _lock:
        _cache[group] = drivers
        _errors[group] = errors
    return {**drivers, **_extra.get(group, {})}


def load_errors(group: str) -> dict[str, str]:
    load_group(group)
    return dict(_errors.get(group, {}))


def available(ctx: Context, group: str) -> dict[str, Driver]:
    """Drivers of ``group`` usable in ctx's business (core ones, and those of enabled plugins)."""
    enabled = ctx.hooks.enabled
    return {name: d for name, d in load_group(group).items() if d.plugin is None or d.plugin in enabled}


def register_driver(group: str, name: str, obj: Any, plugin: str | None) -> None:
    """Add a driver without an entry point (tests; ``crmcore.testing`` undoes it)."""
    with _lock:
        _extra.setdefault(group, {})[name] = Driver(name, obj, plugin, None)


def unregister_driver(group: str, name: str) -> None:
    with _lock:
        _extra.get(group, {}).pop(name, None)


def reset_cache() -> None:
    with _lock:
        _cache.clear()
        _errors.clear()
