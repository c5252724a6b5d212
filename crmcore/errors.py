"""The one error type of the service layer, and its kinds.

Every use case raises a :class:`CrmError` subclass for anything the user can fix or must be
told about. The web layer turns it into a message beside the field (``errors`` maps a field
path to its messages) or a ``problem+json`` document; the CLI prints ``message`` on one line.
"""

from __future__ import annotations

from typing import Any


class CrmError(Exception):
    """Base of every error a service raises on purpose."""

    status = 400
    code = "error"

    def __init__(self, message: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors: dict[str, Any] = errors or {}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.errors:
            out["errors"] = self.errors
        return out

    def __str__(self) -> str:
        if not self.errors:
            return self.message
        details = "; ".join(f"{k}: {_flat(v)}" for k, v in sorted(self.errors.items()))
        return f"{self.message} ({details})"


def _flat(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_flat(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return " ".join(_flat(v) for v in value)
    return str(value)


class ValidationFailed(CrmError):
    """Input was wrong; ``errors`` says where and why. Nothing was written."""

    status = 422
    code = "invalid"


class NotFound(CrmError):
    """The object does not exist *in this business* (another business's object looks missing)."""

    status = 404
    code = "not_found"


class PermissionDenied(CrmError):
    """The user's role in this business does not allow the operation."""

    status = 403
    code = "forbidden"


class Conflict(CrmError):
    """The operation clashes with the current state (duplicate key, already closed, ...)."""

    status = 409
    code = "conflict"


class Veto(CrmError):
    """Raised by a ``crm_before_*`` hook to stop a write; the message is shown to the user.

    The service rolls the transaction back and re-raises the veto with ``plugin`` set to the
    name of the plugin that raised it.
    """

    status = 409
    code = "vetoed"

    def __init__(self, message: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(message, errors)
        self.plugin: str | None = None


class ScopeError(RuntimeError):
    """A programming error: tenant data was touched without a business scope.

    Not a :class:`CrmError`: it is never the user's fault and must surface as a bug.
    """
