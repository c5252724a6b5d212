"""``PluginInfo``: what a plugin says about itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PluginInfo:
    """The ``PLUGIN`` object a plugin module exposes next to its hook implementations.

    ``core_api`` is a PEP 440 specifier the core's :data:`crmcore.HOOK_API_VERSION` must satisfy.
    ``depends`` names other plugins (by entry-point name) that must be installed, are registered
    first and must be enabled in a business before this one. ``settings_schema`` is a marshmallow
    ``Schema`` class (fields with ``metadata={"secret": True}`` are encrypted at rest).
    ``migrations`` is a dotted module or a folder path holding the plugin's Alembic versions, and
    ``metadata`` its SQLAlchemy ``MetaData`` (for autogenerate and checks). ``essential`` plugins
    (only the core's own) cannot be disabled. ``hookspecs`` is a module (or class) of
    ``@crmcore.hookspec`` functions: hooks this plugin raises for other plugins (e.g.
    ``crm_after_invoice_paid``); a plugin implementing them lists this one in ``depends``.
    """

    title: str
    version: str = "0"
    core_api: str = ">=1.0,<2"
    depends: tuple[str, ...] = ()
    description: str = ""
    settings_schema: type | None = None
    migrations: str | None = None
    metadata: Any = None
    model_base: Any = None
    essential: bool = False
    enabled_by_default: bool = False
    hookspecs: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
