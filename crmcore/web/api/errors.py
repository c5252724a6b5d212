"""Every API failure as ``application/problem+json``: ``{type, title, status, detail, code, errors}``.

Service errors keep their status and field errors; webargs' validation errors (422) and
malformed JSON (400) get the same shape; anything unexpected is logged and answered as a 500
problem that reveals nothing. The handlers sit on the API blueprint, so the admin pages keep
their HTML errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from flask import Response, current_app, request
from werkzeug.exceptions import HTTPException

from crmcore.errors import CrmError
from crmcore.web.api.blueprint import bp

PROBLEM_JSON = "application/problem+json"


class Unauthorized(Exception):
    """No usable bearer token: answered 401 with a ``WWW-Authenticate: Bearer`` challenge."""

    def __init__(self, message: str, *, invalid: bool) -> None:
        super().__init__(message)
        self.message = message
        self.invalid = invalid


class MalformedBody(Exception):
    """The body claims to be JSON but is not (or is nested beyond what a parser takes)."""


def problem(status: int, detail: str | None = None, *, code: str | None = None,
            errors: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"type": "about:blank", "title": _phrase(status), "status": status}
    if detail:
        body["detail"] = detail
    if code:
        body["code"] = code
    if errors:
        body["errors"] = errors
    response = current_app.response_class(current_app.json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    response.headers.update(headers or {})
    return response


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _flatten(messages: Any) -> dict[str, Any]:
    """webargs nests errors under their location (``{"json": {...}, "query": {...}}``); a client
    wants the field paths."""
    if not isinstance(messages, Mapping):
        return {"_schema": messages if isinstance(messages, list) else [str(messages)]}
    out: dict[str, Any] = {}
    for errors in messages.values():
        if isinstance(errors, Mapping):
            out.update({str(key): value for key, value in errors.items()})
        else:
            out.setdefault("_schema", []).extend(errors if isinstance(errors, list) else [errors])
    return out


@bp.errorhandler(Unauthorized)
def _unauthorized(exc: Unauthorized) -> Response:
    challenge = 'Bearer realm="crmcore"' + (', error="invalid_token"' if exc.invalid else "")
    return problem(401, exc.message, code="unauthorized", headers={"WWW-Authenticate": challenge})


@bp.errorhandler(MalformedBody)
def _malformed(_exc: MalformedBody) -> Response:
    return problem(400, "The request body is not valid JSON.", code="malformed")


@bp.errorhandler(CrmError)
def _crm_error(exc: CrmError) -> Response:
    return problem(exc.status, exc.message, code=exc.code, errors=exc.errors or None)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    if "messages" in data:  # webargs: a body or query string that does not fit its schema
        if status == 400:
            return problem(400, "The request body is not valid JSON.", code="malformed")
        return problem(status, "The request does not fit the operation's schema.", code="invalid",
                       errors=_flatten(data["messages"]))
    detail = {404: "Not found.", 405: "Method not allowed.", 413: "The request is too large."}.get(
        status, exc.description)
    return problem(status, detail, code=_phrase(status).lower().replace(" ", "_"))


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    current_app.logger.exception("unhandled error on %s %s", request.method, request.path)
    return problem(500, "Something went wrong on our side; nothing was saved. The error has been logged.",
                   code="server_error")
