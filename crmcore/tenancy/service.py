"""Businesses and memberships."""

from __future__ import annotations

import importlib
import re
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from crmcore.audit import service as audit
from crmcore.auth.models import User
from crmcore.auth.service import normalize_email
from crmcore.context import Context, use_case
from crmcore.errors import Conflict, NotFound, ValidationFailed
from crmcore.tenancy.models import Business, Membership, Role

if TYPE_CHECKING:
    from crmcore.runtime import Crm

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

#: called in order, in the creating transaction, to give a new business its starting data
BUSINESS_SEEDERS: list[str] = [
    "crmcore.parties.service:seed_defaults",
    "crmcore.pipelines.service:seed_defaults",
    "crmcore.numbering.service:seed_defaults",
]


def _seeders() -> list:
    out = []
    for path in BUSINESS_SEEDERS:
        module, _, attr = path.partition(":")
        out.append(getattr(importlib.import_module(module), attr))
    return out


def create_business(crm: Crm, slug: str, name: str, *, currency: str = "EUR", language: str = "en",
                    owner_email: str | None = None) -> Business:
    """Create a business with its starting pipelines, lists and numbering rules.

    ``owner_email`` (an existing user) becomes its owner.
    """
    slug = (slug or "").strip().lower()
    name = (name or "").strip()
    errors = {}
    if not SLUG_RE.match(slug):
        errors["slug"] = ["use 1-63 lowercase letters, digits and dashes, starting with a letter or digit"]
    if not name or len(name) > 200:
        errors["name"] = ["give a name of 1 to 200 characters"]
    currency = (currency or "").strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", currency):
        errors["currency"] = ["use a three-letter ISO 4217 code such as EUR"]
    if errors:
        raise ValidationFailed("invalid business", errors)
    with crm.db.transaction(unscoped=True) as session:  # the business does not exist yet
        if session.scalar(select(Business.id).where(Business.slug == slug)) is not None:
            raise Conflict(f"a business with slug {slug!r} already exists")
        owner = None
        if owner_email:
            owner = session.scalar(select(User).where(User.email == normalize_email(owner_email)))
            if owner is None:
                raise NotFound(f"unknown user {owner_email!r}")
        business = Business(slug=slug, name=name, currency=currency, language=language)
        session.add(business)
        session.flush()
        if owner is not None:
            session.add(Membership(business_id=business.id, user_id=owner.id, role=Role.OWNER.value))
        session.expunge(business)
    ctx = Context(crm, business, owner, Role.OWNER)
    try:
        _seed(ctx)
    finally:
        ctx.close()
    return business


@use_case(Role.OWNER)
def _seed(ctx: Context) -> None:
    for seed in _seeders():
        seed(ctx)
    audit.record(ctx, "business.created", ctx.business)


@use_case(Role.ADMIN)
def add_member(ctx: Context, email: str, role: Role | str = Role.MEMBER) -> Membership:
    """Give an existing user a role in this business (admins; only owners grant owner)."""
    role = _role(role)
    if role is Role.OWNER:
        ctx.require(Role.OWNER)
    email = normalize_email(email)
    user = ctx.session.scalar(select(User).where(User.email == email))
    if user is None:
        raise NotFound(f"unknown user {email!r}")
    existing = ctx.session.scalar(select(Membership).where(Membership.user_id == user.id))
    if existing is not None:
        raise Conflict(f"{email} is already a member of {ctx.business.slug!r}")
    membership = Membership(business_id=ctx.business_id, user_id=user.id, role=role.value)
    ctx.session.add(membership)
    ctx.session.flush()
    audit.record(ctx, "member.added", membership, changes={"email": email, "role": role.value})
    return membership


@use_case(Role.ADMIN)
def set_role(ctx: Context, user_id: int, role: Role | str) -> Membership:
    role = _role(role)
    membership = ctx.session.scalar(select(Membership).where(Membership.user_id == user_id))
    if membership is None:
        raise NotFound(f"user {user_id} is not a member of this business")
    if Role.OWNER in (role, Role(membership.role)):
        ctx.require(Role.OWNER)
    if membership.role == Role.OWNER.value and role is not Role.OWNER:
        _keep_one_owner(ctx)
    old = membership.role
    membership.role = role.value
    audit.record(ctx, "member.role_changed", membership, changes={"role": [old, role.value]})
    return membership


@use_case(Role.ADMIN)
def remove_member(ctx: Context, user_id: int) -> None:
    membership = ctx.session.scalar(select(Membership).where(Membership.user_id == user_id))
    if membership is None:
        raise NotFound(f"user {user_id} is not a member of this business")
    if membership.role == Role.OWNER.value:
        ctx.require(Role.OWNER)
        _keep_one_owner(ctx)
    ctx.session.delete(membership)
    audit.record(ctx, "member.removed", entity_type="membership", entity_id=membership.id,
                 changes={"user_id": user_id})


def _keep_one_owner(ctx: Context) -> None:
    owners = ctx.session.scalar(
        select(func.count()).select_from(Membership).where(Membership.role == Role.OWNER.value)
    )
    if owners <= 1:
        raise Conflict("a business needs at least one owner")


@use_case(Role.READ_ONLY, write=False)
def list_members(ctx: Context) -> list[tuple[User, Role]]:
    rows = ctx.session.execute(
        select(User, Membership.role).join(Membership, Membership.user_id == User.id).order_by(User.email)
    ).all()
    return [(u, Role(r)) for u, r in rows]


def _role(role: Role | str) -> Role:
    try:
        return Role(str(getattr(role, "value", role)).replace("-", "_"))
    except ValueError as exc:
        raise ValidationFailed("unknown role", {"role": [f"use one of {', '.join(r.value for r in Role)}"]}) from exc


def list_businesses(crm: Crm) -> list[Business]:
    with crm.db.session() as session:
        rows = list(session.scalars(select(Business).order_by(Business.slug)))
        session.expunge_all()
    return rows
