"""The service context and the ``use_case`` decorator every service function wears.

A :class:`Context` says who acts (user and role) for which business, and owns the session whose
every query is scoped to that business (see :mod:`crmcore.db`). Web requests, CLI commands,
outbox jobs and tests all open one; plugins receive it as the ``ctx`` argument of every
tenant-scoped hook.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError

from crmcore.db import CrmSession, begin_write
from crmcore.errors import Conflict, CrmError, NotFound, PermissionDenied
from crmcore.plugins import calls
from crmcore.plugins.manager import HookRelay
from crmcore.tenancy import config as _config  # noqa: F401  (its listeners bump config_version in every process)
from crmcore.tenancy.models import Business, Membership, Role

if TYPE_CHECKING:
    from crmcore.auth.models import User
    from crmcore.runtime import Crm

log = logging.getLogger("crmcore")

P = ParamSpec("P")
T = TypeVar("T")


class Context:
    """Who acts, for which business, through which session."""

    def __init__(self, crm: Crm, business: Business, user: User | None, role: Role) -> None:
        self.crm = crm
        self.business = business
        self.business_id: int = business.id
        self.user = user
        self.user_id: int | None = user.id if user is not None else None
        self.role = role
        self._session: CrmSession | None = None
        self._depth = 0
        #: ids of the outbox rows this transaction queued, run after commit when inline
        self._pending: list[int] = []
        #: the transaction in which ``business.plugins_version`` and ``config_version`` were read
        self._versions_read_in: Any = None

    # -- opening -----------------------------------------------------------------------

    @classmethod
    def open(cls, crm: Crm, business: str | int | Business, user: str | int | User | None = None,
             *, system: bool = False, fresh_user: bool = False) -> Context:
        """Open a context; raises NotFound for an unknown business, PermissionDenied for a
        user who is not a member. ``system=True`` acts as owner without a user (CLI, jobs).
        ``fresh_user=True`` says ``user`` is a :class:`User` read in this same request (the web's
        session user), so it is used as read instead of read again."""

        with crm.db.session(unscoped=True) as session:  # membership lookup spans businesses
            found_user: User | None = None
            role = Role.OWNER
            if user is None:
                biz = _find_business(session, business)
                if not system:
                    raise PermissionDenied("no user given")
            else:
                found_user = user if fresh_user and _is_user(user) else _find_user(session, user)
                # the business and the user's role in it, in one statement (every request opens one)
                biz, member_role = _business_and_role(session, business, found_user.id)
                if member_role is None:
                    if not system:
                        raise PermissionDenied(f"{found_user.email} is not a member of business {biz.slug!r}")
                else:
                    role = Role(member_role)
                if not found_user.is_active:
                    raise PermissionDenied(f"user {found_user.email} is deactivated")
            session.expunge_all()
        return cls(crm, biz, found_user, role)

    # -- session -----------------------------------------------------------------------

    @property
    def session(self) -> CrmSession:
        if self._session is None:
            self._session = self.crm.db.session(self.business_id)
        return self._session

    @property
    def in_use_case(self) -> bool:
        return self._depth > 0

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- roles -------------------------------------------------------------------------

    def require(self, role: Role) -> None:
        if not self.role.allows(role):
            raise PermissionDenied(
                f"this needs the {role.value.replace('_', '-')} role; you are {self.role.value.replace('_', '-')}"
            )

    # -- hooks -------------------------------------------------------------------------

    @property
    def hooks(self) -> HookRelay:
        """Hook callers limited to the plugins enabled in this business (as of this transaction)."""
        from crmcore.plugins.service import hooks_for

        return hooks_for(self)

    def is_enabled(self, plugin: str) -> bool:
        return plugin in self.hooks.enabled

    def wants(self, hook_name: str) -> bool:
        """True when an enabled plugin implements ``hook_name`` (skip building costly args)."""
        return bool(getattr(self.hooks, hook_name).get_hookimpls())

    def validate(self, hook_name: str, **kwargs: Any) -> None:
        """Call a ``crm_before_*`` hook; a Veto propagates (with ``plugin`` set), other errors are logged."""
        calls.call_validate(self, hook_name, kwargs)

    def collect(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call a provide/default/page hook: ``(plugin, result)`` for every non-None result."""
        return calls.call_collect(self, hook_name, kwargs)

    def emit(self, hook_name: str, *, plugin: str | None = None, **kwargs: Any) -> None:
        """Queue a ``crm_after_*`` hook: one outbox row per enabled implementer (or ``plugin``),
        in the current transaction; run after commit."""
        from crmcore.outbox.service import enqueue_hook

        if plugin is not None:
            names = [plugin] if plugin in self.crm.registry.implementers(hook_name) else []
        else:
            names = [impl.plugin_name for impl in getattr(self.hooks, hook_name).get_hookimpls()]
        if not names:
            return
        enqueue_hook(self, hook_name, names, kwargs)

    def plugin_settings(self, plugin: str) -> dict[str, Any]:
        """The plugin's settings for this business, secrets decrypted (``$env:`` resolved)."""
        from crmcore.plugins.settings import load_settings

        return load_settings(self, plugin)

    def _run_pending(self) -> None:
        """After commit: run the jobs this transaction queued (``outbox_inline``), or wake the
        workers of this process (``crm serve --with-worker``); others find them when they poll."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        if not self.crm.config.outbox_inline:
            from crmcore.outbox.service import notify_workers

            notify_workers()
            return
        from crmcore.outbox.service import run_messages

        try:
            run_messages(self.crm, pending)
        except Exception:  # the write is committed; the worker retries what did not run
            log.exception("running react-hook jobs inline failed; the worker will pick them up")

    def new_key(self) -> str:
        return uuid.uuid4().hex


def _find_business(session: CrmSession, business: str | int | Business) -> Business:
    if isinstance(business, Business):
        business = business.id
    if isinstance(business, int):
        found = session.get(Business, business)
    else:
        found = session.scalar(select(Business).where(Business.slug == business))
    if found is None:
        raise NotFound(f"unknown business {business!r}")
    return found


def _is_user(value: Any) -> bool:
    from crmcore.auth.models import User

    return isinstance(value, User)


def _business_and_role(session: CrmSession, business: str | int | Business, user_id: int) -> tuple[Business, str | None]:
    if isinstance(business, Business):
        business = business.id
    stmt = select(Business, Membership.role).outerjoin(
        Membership, and_(Membership.business_id == Business.id, Membership.user_id == user_id))
    stmt = stmt.where(Business.id == business) if isinstance(business, int) else stmt.where(Business.slug == business)
    row = session.execute(stmt).first()
    if row is None:
        raise NotFound(f"unknown business {business!r}")
    return row[0], row[1]


def _find_user(session: CrmSession, user: Any) -> User:
    from crmcore.auth.models import User

    if isinstance(user, User):
        user = user.id
    if isinstance(user, int):
        found = session.get(User, user)
    else:
        found = session.scalar(select(User).where(User.email == str(user).strip().lower()))
    if found is None:
        raise NotFound(f"unknown user {user!r}")
    return found


def use_case(role: Role = Role.MEMBER, *, write: bool = True) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Make a service function one transaction with a role check.

    The outermost use case begins the transaction (SQLite: ``BEGIN IMMEDIATE`` for writes),
    commits on success and rolls back on any exception, then runs the react-hook jobs it queued.
    A use case called from another joins the caller's transaction. Database integrity errors
    become :class:`~crmcore.errors.Conflict`.
    """

    def decorate(fn: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            ctx = args[0]
            if not isinstance(ctx, Context):
                raise TypeError(f"{fn.__qualname__} needs a Context as its first argument")
            ctx.require(role)
            if ctx._depth:
                ctx._depth += 1
                try:
                    return fn(*args, **kwargs)
                finally:
                    ctx._depth -= 1
            session = ctx.session
            if session.in_transaction():
                session.commit()
            # rows kept from earlier transactions may have changed since (another context, another
            # process): reload them on first use instead of acting on stale values
            session.expire_all()
            begin_write(session, write)
            ctx._depth = 1
            try:
                # nearly every use case needs the versions (hooks, configuration); read first, they
                # carry the transaction's BEGIN on PostgreSQL (crmcore.db)
                _config.read_versions(ctx)
                result = fn(*args, **kwargs)
                session.commit()
            except IntegrityError as exc:
                session.rollback()
                ctx._pending.clear()
                log.info("integrity error in %s: %s", fn.__qualname__, exc.orig)
                raise Conflict("this conflicts with data that already exists") from exc
            except BaseException:
                session.rollback()
                ctx._pending.clear()
                raise
            finally:
                ctx._depth = 0
            ctx._run_pending()
            return result

        wrapper.__crm_use_case__ = {"role": role, "write": write}  # type: ignore[attr-defined]
        return wrapper

    return decorate


def get_or_404(ctx: Context, model: type[T], obj_id: Any, what: str | None = None) -> T:
    """Load ``model`` by id within the business; another business's row is simply not found."""
    obj = None
    if obj_id is not None:
        try:
            key = int(obj_id)
            # beyond 64 bits no row can match, and PostgreSQL would refuse the value (a 500)
            obj = ctx.session.get(model, key) if -2**63 <= key < 2**63 else None
        except (TypeError, ValueError):
            obj = None
    if obj is None:
        raise NotFound(f"{what or model.__name__.lower()} {obj_id} not found")
    return obj


__all__ = ["Context", "CrmError", "get_or_404", "use_case"]
