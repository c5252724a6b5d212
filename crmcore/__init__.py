"""crmcore: a minimal, plugin-based CRM core.

The public API a plugin may use is what this module exports, plus the documented
service modules (``crmcore.parties.service``, ``crmcore.records.service``, ...),
``crmcore.hookspecs`` and ``crmcore.testing``. Everything else is internal.
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: Version of the hook contract (``crmcore/hookspecs.py``). Plugins declare the range they
#: fit in ``PluginInfo.core_api``; ``crm plugins check`` compares the two.
HOOK_API_VERSION = "1.2"

hookimpl = pluggy.HookimplMarker("crmcore")
hookspec = pluggy.HookspecMarker("crmcore")

from crmcore.errors import (  # noqa: E402
    Conflict,
    CrmError,
    NotFound,
    PermissionDenied,
    ValidationFailed,
    Veto,
)
from crmcore.plugins.info import PluginInfo  # noqa: E402


def __getattr__(name: str) -> object:
    # ``crmcore.Context`` for type hints in plugins, imported lazily (it needs the whole core)
    if name == "Context":
        from crmcore.context import Context

        return Context
    raise AttributeError(f"module 'crmcore' has no attribute {name!r}")


__all__ = [
    "Context",
    "HOOK_API_VERSION",
    "Conflict",
    "CrmError",
    "NotFound",
    "PermissionDenied",
    "PluginInfo",
    "ValidationFailed",
    "Veto",
    "__version__",
    "hookimpl",
    "hookspec",
]
