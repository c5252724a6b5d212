"""Users, passwords and API tokens."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from crmcore.auth.models import ApiToken
from crmcore.auth.service import (
    authenticate,
    change_password,
    context_for_token,
    create_api_token,
    create_user,
    list_api_tokens,
    revoke_api_token,
)
from crmcore.db import utcnow
from crmcore.errors import Conflict, PermissionDenied, ValidationFailed
from crmcore.testing import TEST_PASSWORD


def test_passwords_are_hashed_and_checked(crm, business):
    user = create_user(crm, "New.Person@Example.com", "a long password")
    assert user.email == "new.person@example.com"
    assert user.password_hash and "a long password" not in user.password_hash
    assert authenticate(crm, "new.person@example.com", "a long password").id == user.id
    with pytest.raises(PermissionDenied, match="wrong email or password"):
        authenticate(crm, "new.person@example.com", "wrong")
    with pytest.raises(PermissionDenied, match="wrong email or password"):
        authenticate(crm, "nobody@example.com", "a long password")


def test_bad_user_input(crm, business):
    with pytest.raises(ValidationFailed, match="invalid email"):
        create_user(crm, "not an email", "a long password")
    with pytest.raises(ValidationFailed, match="too short"):
        create_user(crm, "short@example.com", "short")
    with pytest.raises(Conflict, match="already exists"):
        create_user(crm, "owner@acme.example", "a long password")


def test_change_password_needs_the_current_one(crm, ctx):
    with pytest.raises(ValidationFailed, match="current password is wrong"):
        change_password(crm, ctx.user_id, "not it", "brand new password")
    change_password(crm, ctx.user_id, TEST_PASSWORD, "brand new password")
    assert authenticate(crm, "owner@acme.example", "brand new password")


def test_api_token_is_stored_hashed_and_resolves_to_its_business(crm, ctx, other_ctx):
    row, token = create_api_token(ctx, "integration")
    assert token.startswith(f"crm_{row.prefix}_")
    stored = ctx.session.scalar(select(ApiToken).where(ApiToken.id == row.id))
    assert token not in (stored.token_hash, stored.prefix) and len(stored.token_hash) == 64
    with context_for_token(crm, token) as api_ctx:
        assert api_ctx.business_id == ctx.business_id and api_ctx.user_id == ctx.user_id
    assert [t.name for t in list_api_tokens(other_ctx)] == []


@pytest.mark.parametrize("bad", ["", "crm_", "crm_nope_nope", "Bearer x", "crm_abc"])
def test_malformed_or_unknown_tokens_are_refused_alike(crm, business, bad):
    with pytest.raises(PermissionDenied, match="invalid or expired API token"):
        context_for_token(crm, bad)


def test_revoked_and_expired_tokens_are_refused(crm, ctx):
    row, token = create_api_token(ctx, "old")
    revoke_api_token(ctx, row.id)
    with pytest.raises(PermissionDenied):
        context_for_token(crm, token)
    _row, token = create_api_token(ctx, "expired", expires_at=utcnow() - dt.timedelta(seconds=1))
    with pytest.raises(PermissionDenied):
        context_for_token(crm, token)


def test_last_use_is_recorded_at_most_once_a_minute(crm, ctx):
    row, token = create_api_token(ctx, "reader")

    def last_used():
        ctx.session.commit()
        return ctx.session.scalar(select(ApiToken.last_used_at).where(ApiToken.id == row.id))

    context_for_token(crm, token).close()
    first = last_used()
    assert first is not None
    context_for_token(crm, token).close()
    assert last_used() == first  # a read a few ms later writes nothing
    ctx.session.execute(update(ApiToken).where(ApiToken.id == row.id)
                        .values(last_used_at=first - dt.timedelta(minutes=5)))
    ctx.session.commit()
    context_for_token(crm, token).close()
    assert last_used() > first - dt.timedelta(minutes=5)
