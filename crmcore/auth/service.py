"""Users (install-wide), authentication and API tokens (per business)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, update

from crmcore.audit import service as audit
from crmcore.auth.models import ApiToken, User
from crmcore.auth.passwords import (
    MIN_PASSWORD_LENGTH,
    digest_matches,
    hash_password,
    needs_rehash,
    new_token,
    verify_password,
)
from crmcore.context import Context, get_or_404, use_case
from crmcore.db import utcnow
from crmcore.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from crmcore.tenancy.models import Business, Membership, Role

if TYPE_CHECKING:
    from crmcore.runtime import Crm


def normalize_email(email: str, field: str = "email") -> str:
    try:
        return validate_email(str(email or "").strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValidationFailed("invalid email address", {field: [str(exc)]}) from exc


def check_password(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed("password too short",
                               {"password": [f"use at least {MIN_PASSWORD_LENGTH} characters"]})


def create_user(crm: Crm, email: str, password: str | None = None, name: str = "") -> User:
    """Create an install-wide user. Raises Conflict when the email is taken."""
    email = normalize_email(email)
    if password is not None:
        check_password(password)
    with crm.db.transaction() as session:
        if session.scalar(select(User.id).where(User.email == email)) is not None:
            raise Conflict(f"a user with email {email} already exists")
        user = User(email=email, name=name.strip()[:200],
                    password_hash=hash_password(password) if password else None)
        session.add(user)
        session.flush()
    return user


def get_user(crm: Crm, email: str) -> User:
    with crm.db.session() as session:
        user = session.scalar(select(User).where(User.email == str(email).strip().lower()))
        if user is None:
            raise NotFound(f"unknown user {email!r}")
        session.expunge(user)
        return user


def authenticate(crm: Crm, email: str, password: str) -> User:
    """Check a login. Same error whether the email or the password was wrong."""
    failure = PermissionDenied("wrong email or password")
    with crm.db.transaction() as session:
        user = session.scalar(select(User).where(User.email == str(email or "").strip().lower()))
        if user is None:
            hash_password("timing-equaliser")  # same cost as a real check
            raise failure
        if not user.is_active or not verify_password(user.password_hash, password or ""):
            raise failure
        if needs_rehash(user.password_hash or ""):
            user.password_hash = hash_password(password)
        user.last_login_at = utcnow()
        session.flush()
        session.expunge(user)
    return user


def change_password(crm: Crm, user_id: int, current: str, new: str) -> None:
    check_password(new)
    with crm.db.transaction() as session:
        user = session.get(User, user_id)
        if user is None:
            raise NotFound(f"unknown user {user_id}")
        if user.password_hash and not verify_password(user.password_hash, current or ""):
            raise ValidationFailed("current password is wrong", {"current_password": ["wrong password"]})
        user.password_hash = hash_password(new)


def set_password(crm: Crm, email: str, new: str) -> None:
    """Administrative reset (CLI)."""
    check_password(new)
    with crm.db.transaction() as session:
        user = session.scalar(select(User).where(User.email == str(email).strip().lower()))
        if user is None:
            raise NotFound(f"unknown user {email!r}")
        user.password_hash = hash_password(new)


def businesses_of(crm: Crm, user_id: int) -> list[tuple[Business, Role]]:
    """The businesses a user belongs to, with the role in each (for the business switcher)."""
    with crm.db.session(unscoped=True) as session:  # deliberately across businesses
        rows = session.execute(
            select(Business, Membership.role).join(Membership, Membership.business_id == Business.id)
            .where(Membership.user_id == user_id).order_by(Business.name)
        ).all()
        session.expunge_all()
    return [(b, Role(r)) for b, r in rows]


# -- API tokens (per business) -------------------------------------------------------------


@use_case(Role.MEMBER)
def create_api_token(ctx: Context, name: str, expires_at: dt.datetime | None = None) -> tuple[ApiToken, str]:
    """Create a token for the acting user in this business. The plain token is returned once."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ValidationFailed("invalid token name", {"name": ["give a name of 1 to 100 characters"]})
    if ctx.user_id is None:
        raise PermissionDenied("API tokens belong to a user")
    token, prefix, digest = new_token()
    row = ApiToken(business_id=ctx.business_id, user_id=ctx.user_id, name=name, prefix=prefix,
                   token_hash=digest, expires_at=expires_at)
    ctx.session.add(row)
    ctx.session.flush()
    audit.record(ctx, "api_token.created", row, changes={"name": name})
    return row, token


@use_case(Role.READ_ONLY, write=False)
def list_api_tokens(ctx: Context) -> list[ApiToken]:
    stmt = select(ApiToken).where(ApiToken.revoked_at.is_(None)).order_by(ApiToken.id)
    if not ctx.role.allows(Role.ADMIN):
        stmt = stmt.where(ApiToken.user_id == ctx.user_id)
    return list(ctx.session.scalars(stmt))


@use_case(Role.MEMBER)
def revoke_api_token(ctx: Context, token_id: int) -> None:
    row = get_or_404(ctx, ApiToken, token_id, "API token")
    if row.user_id != ctx.user_id and not ctx.role.allows(Role.ADMIN):
        raise NotFound(f"API token {token_id} not found")
    row.revoked_at = utcnow()
    audit.record(ctx, "api_token.revoked", row)


def context_for_token(crm: Crm, token: str) -> Context:
    """Resolve ``Authorization: Bearer <token>`` to a context; one generic error for any failure."""
    failure = PermissionDenied("invalid or expired API token")
    parts = (token or "").split("_")
    if len(parts) < 3 or parts[0] != "crm":
        raise failure
    prefix = parts[1]
    with crm.db.transaction(unscoped=True, write=False) as session:
        row = session.scalar(select(ApiToken).where(ApiToken.prefix == prefix))
        if row is None or row.revoked_at is not None or not digest_matches(token, row.token_hash):
            raise failure
        now = utcnow()
        if row.expires_at is not None and row.expires_at <= now:
            raise failure
        stale = row.last_used_at is None or now - row.last_used_at > dt.timedelta(minutes=1)
        token_id, business_id, user_id = row.id, row.business_id, row.user_id
    if stale:  # at most one short write a minute per token: API reads stay reads
        with crm.db.transaction(unscoped=True) as session:
            session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))
    try:
        return Context.open(crm, business_id, user_id)
    except (NotFound, PermissionDenied) as exc:
        raise failure from exc
