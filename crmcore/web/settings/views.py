"""The settings blueprint: every page under ``/settings`` is for admins and owners only.

The services check roles on every write already; the blueprint refuses members and read-only
users up front as well, so they cannot even look at the configuration pages. The routes of each
section live in their own module (imported at the bottom, once ``bp`` exists).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from crmcore.errors import PermissionDenied
from crmcore.tenancy.models import Role
from crmcore.web.settings.common import render

bp = Blueprint("settings", __name__, url_prefix="/settings", template_folder="templates")


@bp.before_request
def _admins_only() -> None:
    ctx = g.get("ctx")
    if ctx is None or not ctx.role.allows(Role.ADMIN):
        role = ctx.role.value.replace("_", "-") if ctx is not None else "none"
        raise PermissionDenied(f"the settings are for admins and owners; you are {role}")


@bp.get("/")
def index() -> Any:
    """The sections, and the settings pages other plugins add to the settings menu."""
    from crmcore.web.pages import menu

    extra = [e for e in menu() if e["section"] == "settings" and e["plugin"] != "core-settings"]
    return render("settings/index.html", extra=extra)


# the sections' routes attach themselves to ``bp``
from crmcore.web.settings import (  # noqa: E402
    business_pages,
    field_pages,
    list_pages,
    numbering_pages,
    pipeline_pages,
    plugin_pages,
    token_pages,
    user_pages,
)

__all__ = ["bp", "business_pages", "field_pages", "list_pages", "numbering_pages", "pipeline_pages", "plugin_pages",
           "token_pages", "user_pages"]
