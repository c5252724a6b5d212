"""Use cases for per-business plugin enablement and settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from crmcore.audit import service as audit
from crmcore.context import use_case
from crmcore.errors import Conflict, NotFound, ValidationFailed
from crmcore.plugins.models import PluginEnablement
from crmcore.plugins.settings import masked_settings, validate_settings
from crmcore.tenancy.config import read_versions
from crmcore.tenancy.models import Business, Role

if TYPE_CHECKING:
    from crmcore.context import Context
    from crmcore.db import CrmSession
    from crmcore.plugins.manager import HookRelay, PluginRegistry


def hooks_for(ctx: Context) -> HookRelay:
    """The hook relay of ctx's business as of now (what ``ctx.hooks`` returns).

    The business's ``plugins_version`` is read once per transaction of ``ctx.session`` (a use
    case's, or the read transaction that reads outside use cases open and the next use case
    ends; :func:`crmcore.tenancy.config.read_versions`, which reads the configuration version in
    the same statement), so a toggle committed by any process or any other open context is seen
    by the next transaction. Relays are cached per (business, version); a transaction that
    toggled plugins itself gets an uncached relay from its own uncommitted rows (caching it could
    outlive a rollback).
    """
    registry = ctx.crm.registry
    session = ctx.session
    tx = session.get_transaction()
    if tx is not None and getattr(ctx, "_plugins_toggled_in", None) is tx:
        return registry.make_relay(_enablement(registry, session, ctx.business_id)[1])
    read_versions(ctx)
    relay = registry.cached_relay(ctx.business_id, ctx.business.plugins_version)
    if relay is None:
        version, names = _enablement(registry, session, ctx.business_id)
        relay = registry.relay(ctx.business_id, version, names)
    return relay


def _enablement(registry: PluginRegistry, session: CrmSession, business_id: int) -> tuple[int, frozenset[str]]:
    """The business's plugins version and enabled plugins, read in ONE statement (one snapshot)."""
    rows = session.execute(
        select(Business.plugins_version, PluginEnablement.plugin, PluginEnablement.enabled)
        .select_from(Business)
        .outerjoin(PluginEnablement, PluginEnablement.business_id == Business.id)
        .where(Business.id == business_id)
    ).all()
    if not rows:
        raise NotFound(f"business {business_id} no longer exists")
    states = {plugin: enabled for _, plugin, enabled in rows if plugin is not None}
    return rows[0][0], _enabled_names(registry, states)


def _enabled_names(registry: PluginRegistry, states: dict[str, bool]) -> frozenset[str]:
    """Essential plugins, defaults not switched off, and plugins with an enabled row."""
    return frozenset(name for name, plugin in registry.plugins.items()
                     if plugin.essential or states.get(name, plugin.info.enabled_by_default))


@dataclass(frozen=True)
class PluginState:
    name: str
    title: str
    version: str
    enabled: bool
    essential: bool
    depends: tuple[str, ...]
    settings: dict[str, Any]
    source: str


@use_case(Role.READ_ONLY, write=False)
def list_plugins(ctx: Context) -> list[PluginState]:
    rows = {r.plugin: r for r in ctx.session.scalars(select(PluginEnablement))}
    enabled = ctx.hooks.enabled
    out = []
    for name, plugin in sorted(ctx.crm.registry.plugins.items()):
        row = rows.get(name)
        out.append(PluginState(
            name=name, title=plugin.info.title, version=plugin.version, enabled=name in enabled,
            essential=plugin.essential, depends=plugin.info.depends,
            settings=masked_settings(row.settings) if row else {}, source=plugin.source,
        ))
    return out


def _plugin(ctx: Context, name: str) -> Any:
    plugin = ctx.crm.registry.plugins.get(name)
    if plugin is None:
        error = ctx.crm.registry.errors.get(name)
        if error:
            raise NotFound(f"plugin {name!r} is installed but failed to load: {error}")
        raise NotFound(f"unknown plugin {name!r}")
    return plugin


def _row(ctx: Context, name: str) -> PluginEnablement:
    row = ctx.session.scalar(select(PluginEnablement).where(PluginEnablement.plugin == name))
    if row is None:
        row = PluginEnablement(business_id=ctx.business_id, plugin=name, enabled=False, settings={})
        ctx.session.add(row)
    return row


def _bump_version(ctx: Context) -> None:
    """Make every process and context drop its cached relay for this business (at commit)."""
    ctx.session.execute(
        update(Business).where(Business.id == ctx.business_id)
        .values(plugins_version=Business.plugins_version + 1)
    )
    ctx._plugins_toggled_in = ctx.session.get_transaction()


@use_case(Role.ADMIN)
def enable_plugin(ctx: Context, name: str, settings: dict[str, Any] | None = None) -> None:
    """Enable ``name`` for the business. Its ``depends`` must be enabled first; settings (if
    given, or if the schema has required fields) are validated in the same transaction."""
    plugin = _plugin(ctx, name)
    enabled = ctx.hooks.enabled
    if name in enabled and settings is None:
        return
    missing = [dep for dep in plugin.info.depends if dep not in enabled]
    if missing:
        raise Conflict(f"plugin {name!r} needs {', '.join(repr(m) for m in missing)} enabled first")
    row = _row(ctx, name)
    if settings is not None or not row.settings:
        row.settings = validate_settings(ctx, name, settings or {}, row.settings or {})
    was_enabled = name in enabled
    row.enabled = True
    _bump_version(ctx)
    audit.record(ctx, "plugin.enabled", entity_type="plugin", changes={"plugin": name})
    if not was_enabled:
        _emit_toggle(ctx, "crm_after_plugin_enabled", name)
    ctx.session.flush()


@use_case(Role.ADMIN)
def disable_plugin(ctx: Context, name: str) -> None:
    """Disable ``name`` for the business; refused for essential plugins and while an enabled
    plugin depends on it. Data is kept."""
    plugin = _plugin(ctx, name)
    if plugin.essential:
        raise Conflict(f"plugin {name!r} is part of the core and cannot be disabled")
    enabled = ctx.hooks.enabled
    if name not in enabled:
        return
    dependants = sorted(n for n in enabled if name in ctx.crm.registry.plugins[n].info.depends)
    if dependants:
        raise Conflict(f"plugin {name!r} is needed by {', '.join(repr(d) for d in dependants)}: disable those first")
    row = _row(ctx, name)
    row.enabled = False
    _bump_version(ctx)
    audit.record(ctx, "plugin.disabled", entity_type="plugin", changes={"plugin": name})
    _emit_toggle(ctx, "crm_after_plugin_disabled", name)
    ctx.session.flush()


def _emit_toggle(ctx: Context, hook_name: str, name: str) -> None:
    from crmcore.outbox.service import enqueue_hook

    if name in ctx.crm.registry.implementers(hook_name):
        enqueue_hook(ctx, hook_name, [name], {"plugin": name})


@use_case(Role.ADMIN)
def save_settings(ctx: Context, name: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Validate and store the plugin's settings for the business; returns them masked."""
    _plugin(ctx, name)
    if not isinstance(settings, dict):
        raise ValidationFailed("settings must be an object")
    row = _row(ctx, name)
    row.settings = validate_settings(ctx, name, settings, row.settings or {})
    audit.record(ctx, "plugin.settings_changed", entity_type="plugin",
                 changes={"plugin": name, "fields": sorted(settings)})
    return masked_settings(row.settings)


@use_case(Role.ADMIN, write=False)
def get_settings(ctx: Context, name: str) -> dict[str, Any]:
    """The stored settings, masked (safe for a page or an API answer)."""
    _plugin(ctx, name)
    row = ctx.session.scalar(select(PluginEnablement).where(PluginEnablement.plugin == name))
    return masked_settings(row.settings) if row else {}
