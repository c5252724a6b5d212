"""Users and roles: who belongs to this business. Add an existing user, create a new one (a
generated password is shown once), change a role, remove a member."""

from __future__ import annotations

import secrets
from typing import Any

from flask import current_app, g, request

from crmcore.auth import service as auth
from crmcore.errors import Conflict, ValidationFailed, Veto
from crmcore.tenancy import service as tenancy
from crmcore.tenancy.models import Role
from crmcore.web.settings.common import attempt, back, form_state, render, text
from crmcore.web.settings.views import bp

ROLE_LABELS = {Role.OWNER: "Owner", Role.ADMIN: "Admin", Role.MEMBER: "Member", Role.READ_ONLY: "Read-only"}


def _roles() -> list[tuple[str, str]]:
    """The roles the acting user may grant (only owners make owners)."""
    return [(r.value, ROLE_LABELS[r]) for r in Role if r is not Role.OWNER or g.ctx.role is Role.OWNER]


def _role(value: str) -> Role:
    try:
        return Role(value.replace("-", "_"))
    except ValueError as exc:
        choices = ", ".join(r.value for r in Role)
        raise ValidationFailed("unknown role", {"role": [f"pick one of {choices}"]}) from exc


@bp.get("/users")
def users() -> Any:
    return users_page()


def users_page(status: int = 200, forms: dict[str, dict[str, Any]] | None = None) -> Any:
    members = [{"id": user.id, "email": user.email, "name": user.name, "role": role.value,
                "role_label": ROLE_LABELS[role], "active": user.is_active, "me": user.id == g.ctx.user_id}
               for user, role in tenancy.list_members(g.ctx)]
    return render("settings/users.html", status, members=members, roles=_roles(), forms=forms or {})


def _done() -> str:
    return back("settings.users")


@bp.post("/users/add")
def add_member() -> Any:
    return attempt(lambda: tenancy.add_member(g.ctx, request.form.get("email", ""), request.form.get("role", "")),
                   users_page, "add-member", done="Member added.", then=_done())


@bp.post("/users/create")
def create_user() -> Any:
    """Create the user, then add them; with no password typed, one is generated and shown on
    the answer page only (never stored in the session, never shown again)."""
    email = request.form.get("email", "")
    typed = request.form.get("password", "")
    password = typed or secrets.token_urlsafe(12)
    try:
        role = _role(request.form.get("role", ""))
        if role is Role.OWNER:  # checked before the user exists: no user is left without a business
            g.ctx.require(Role.OWNER)
        user = auth.create_user(current_app.extensions["crm"], email, password, name=text("name") or "")
        tenancy.add_member(g.ctx, user.email, role)
    except ValidationFailed as exc:
        return users_page(422, {"create-user": form_state(exc, drop=("password",))})
    except (Conflict, Veto) as exc:
        return users_page(409, {"create-user": form_state(exc, drop=("password",))})
    return render("settings/user_created.html", email=user.email, role=ROLE_LABELS[role],
                  password=None if typed else password)


@bp.post("/users/<int:user_id>/role")
def set_role(user_id: int) -> Any:
    return attempt(lambda: tenancy.set_role(g.ctx, user_id, request.form.get("role", "")), users_page,
                   f"member-{user_id}", done="Role changed.", then=_done())


@bp.post("/users/<int:user_id>/remove")
def remove_member(user_id: int) -> Any:
    return attempt(lambda: tenancy.remove_member(g.ctx, user_id), users_page, f"member-{user_id}",
                   done="Member removed.", then=_done())
