"""Plugins of the business: which are on, switching them (admins), and their settings (admins)."""

from __future__ import annotations

from typing import Any

from crmcore.plugins import service
from crmcore.web.api.blueprint import bp, ctx, no_body, problems, reads, route, writes
from crmcore.web.api.schemas import EnableInput, PluginSchema, PluginSettingsSchema, SettingsInput

TAG = "plugins"
NAME = "string(maxlength=100):name"


def _plugins() -> list[dict[str, Any]]:
    return [{"name": p.name, "title": p.title, "version": str(p.version), "enabled": p.enabled,
             "essential": p.essential, "depends": list(p.depends), "source": str(p.source)}
            for p in service.list_plugins(ctx())]


def _plugin(name: str) -> dict[str, Any]:
    """One plugin's state (after a toggle, which refused unknown names already)."""
    return next(p for p in _plugins() if p["name"] == name)


@route("/plugins", TAG, methods=["GET"])
@reads
@bp.response(200, PluginSchema(many=True))
def list_plugins() -> list[dict[str, Any]]:
    """List the installed plugins and whether each is on in this business"""
    return _plugins()


@route(f"/plugins/<{NAME}>/enable", TAG, methods=["POST"])
@writes
@bp.arguments(EnableInput, required=False)
@bp.response(200, PluginSchema)
def enable_plugin(args: dict[str, Any], name: str) -> dict[str, Any]:
    """Turn a plugin on for this business (admins)

    Optionally with its settings; the plugins it depends on must be on first.
    """
    service.enable_plugin(ctx(), name, args.get("settings"))
    return _plugin(name)


@route(f"/plugins/<{NAME}>/disable", TAG, methods=["POST"])
@writes
@no_body
@bp.response(200, PluginSchema)
def disable_plugin(_args: dict[str, Any], name: str) -> dict[str, Any]:
    """Turn a plugin off for this business (admins)

    Its data is kept; the core's own plugins cannot be turned off.
    """
    service.disable_plugin(ctx(), name)
    return _plugin(name)


@route(f"/plugins/<{NAME}>/settings", TAG, methods=["GET"])
@reads
@problems(403)
@bp.response(200, PluginSettingsSchema)
def get_settings(name: str) -> dict[str, Any]:
    """Get a plugin's settings (admins; secrets masked)"""
    return {"plugin": name, "settings": service.get_settings(ctx(), name)}


@route(f"/plugins/<{NAME}>/settings", TAG, methods=["PUT"])
@writes
@bp.arguments(SettingsInput)
@bp.response(200, PluginSettingsSchema)
def save_settings(args: dict[str, Any], name: str) -> dict[str, Any]:
    """Replace a plugin's settings (admins)

    Validated by the plugin's settings schema. For a secret, the mask or an empty value keeps the
    stored one; `$env:NAME` reads it from the server's environment.
    """
    return {"plugin": name, "settings": service.save_settings(ctx(), name, args["settings"])}
