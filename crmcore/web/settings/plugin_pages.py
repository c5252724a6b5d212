"""Plugins: enable or disable each installed plugin here, and its settings form (generated from
the plugin's schema). Secrets never reach the browser: their inputs are always empty."""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, g, redirect, request

from crmcore.errors import Conflict, CrmError, ValidationFailed, Veto
from crmcore.plugins import service as plugin_service
from crmcore.plugins.settings import settings_schema
from crmcore.web.settings import schema_form
from crmcore.web.settings.common import back, flat_errors, render
from crmcore.web.settings.views import bp


@bp.get("/plugins")
def plugins() -> Any:
    return plugins_page()


def plugins_page(status: int = 200, forms: dict[str, dict[str, Any]] | None = None) -> Any:
    forms = forms or {}
    rows = [_row(state, forms) for state in plugin_service.list_plugins(g.ctx)]
    load_errors = sorted(g.ctx.crm.registry.errors.items())
    return render("settings/plugins.html", status, plugins=rows, load_errors=load_errors, forms=forms)


def _controls(name: str) -> tuple[list[schema_form.Control], str | None]:
    """The plugin's settings controls; a plugin whose schema hook breaks is reported, not fatal."""
    try:
        schema = settings_schema(g.ctx, name)
    except CrmError:
        raise
    except Exception as exc:  # third-party code: one broken plugin must not break the page
        current_app.logger.error("plugin %s: settings schema failed: %s", name, exc)
        return [], f"its settings schema could not be loaded ({type(exc).__name__})"
    return (schema_form.controls(schema) if schema is not None else []), None


def _row(state: plugin_service.PluginState, forms: dict[str, dict[str, Any]]) -> dict[str, Any]:
    controls, schema_error = _controls(state.name)
    form = forms.get(f"settings-{state.name}") or {}
    values = form.get("typed") or schema_form.shown_values(controls, state.settings)
    return {
        "name": state.name, "title": state.title, "version": state.version, "enabled": state.enabled,
        "essential": state.essential, "depends": state.depends, "source": state.source,
        "controls": controls, "values": values, "secrets": schema_form.secret_states(controls, state.settings),
        "schema_error": schema_error,
    }


@bp.post("/plugins/<name>/enable")
def enable_plugin(name: str) -> Any:
    return _toggle(name, plugin_service.enable_plugin, "enabled")


@bp.post("/plugins/<name>/disable")
def disable_plugin(name: str) -> Any:
    return _toggle(name, plugin_service.disable_plugin, "disabled")


def _toggle(name: str, action: Any, what: str) -> Any:
    try:
        action(g.ctx, name)
    except ValidationFailed as exc:  # enabling checks the settings: show them beside the form
        state = {"message": f"Fill in the settings first: {exc.message}", "errors": flat_errors(exc.errors)}
        return plugins_page(422, {f"settings-{name}": state, f"toggle-{name}": {"message": state["message"]}})
    except (Conflict, Veto) as exc:
        return plugins_page(409, {f"toggle-{name}": {"message": exc.message}})
    flash(f"Plugin {name} {what}.", "success")
    return redirect(back("settings.plugins", f"plugin-{name}"))


@bp.post("/plugins/<name>/settings")
def save_plugin_settings(name: str) -> Any:
    controls, _error = _controls(name)
    # lists the form cannot carry keep what is stored (read only when the schema has one)
    stored = (plugin_service.get_settings(g.ctx, name)
              if any(c.kind == "unsupported" for c in controls) else None)
    data = schema_form.read_form(controls, request.form, stored)
    try:
        plugin_service.save_settings(g.ctx, name, data)
    except (ValidationFailed, Conflict, Veto) as exc:
        # what was typed is shown again, except secrets (the service's messages never echo them);
        # a list item's error names the line it was typed on
        errors = schema_form.item_errors(controls, request.form, exc.errors or {})
        state = {"message": exc.message, "errors": flat_errors(errors),
                 "typed": schema_form.typed_values(controls, request.form)}
        return plugins_page(exc.status, {f"settings-{name}": state})
    flash(f"Settings of {name} saved.", "success")
    return redirect(back("settings.plugins", f"plugin-{name}"))
