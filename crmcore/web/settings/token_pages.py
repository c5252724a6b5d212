"""API tokens: list, create (the plain token is shown once, on the answer page), revoke."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import g, request

from crmcore.auth import service as auth
from crmcore.errors import Conflict, ValidationFailed, Veto
from crmcore.tenancy import service as tenancy
from crmcore.web.settings.common import attempt, back, form_state, render, text
from crmcore.web.settings.views import bp


@bp.get("/tokens")
def tokens() -> Any:
    return tokens_page()


def tokens_page(status: int = 200, forms: dict[str, dict[str, Any]] | None = None) -> Any:
    emails = {user.id: user.email for user, _role in tenancy.list_members(g.ctx)}
    rows = [{"id": t.id, "name": t.name, "prefix": t.prefix, "user": emails.get(t.user_id, f"user {t.user_id}"),
             "created_at": t.created_at, "last_used_at": t.last_used_at, "expires_at": t.expires_at}
            for t in auth.list_api_tokens(g.ctx)]
    return render("settings/tokens.html", status, tokens=rows, forms=forms or {})


def _expiry() -> dt.datetime | None:
    """The optional expiry date: the token works until the end of that day (UTC)."""
    raw = text("expires_on")
    if raw is None:
        return None
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError as exc:
        raise ValidationFailed("invalid expiry date", {"expires_on": ["give a date such as 2030-12-31"]}) from exc
    if day < dt.datetime.now(dt.UTC).date():
        raise ValidationFailed("invalid expiry date", {"expires_on": ["give a date that is not in the past"]})
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)


@bp.post("/tokens/new")
def create_token() -> Any:
    """The answer page is the only place the plain token ever appears (no redirect: it must
    not pass through the session)."""
    try:
        row, token = auth.create_api_token(g.ctx, request.form.get("name", ""), _expiry())
    except ValidationFailed as exc:
        return tokens_page(422, {"new-token": form_state(exc)})
    except (Conflict, Veto) as exc:
        return tokens_page(409, {"new-token": form_state(exc)})
    return render("settings/token_created.html", name=row.name, prefix=row.prefix, token=token)


@bp.post("/tokens/<int:token_id>/revoke")
def revoke_token(token_id: int) -> Any:
    return attempt(lambda: auth.revoke_api_token(g.ctx, token_id), tokens_page, f"token-{token_id}",
                   done="Token revoked.", then=back("settings.tokens"))
