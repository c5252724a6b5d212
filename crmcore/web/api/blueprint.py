"""The one blueprint every API route hangs on, and the helpers the resource modules share.

One blueprint named ``api`` (url prefix ``/api/v1``): the request-context hook of the admin
pages skips it, CSRF is exempt for it (bearer tokens, not cookies), and its error handlers answer
every failure as ``application/problem+json``. Each resource module tags its routes.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import marshmallow as ma
from flask import g
from flask_smorest import Blueprint

from crmcore.context import Context

#: the largest id a row can have (BIGINT); larger path ids are simply "not found"
MAX_ID = 2**63 - 1
#: a path segment holding a row id
ID = f"int(min=1, max={MAX_ID})"

bp = Blueprint("api", __name__, url_prefix="/api/v1",
               description="The crmcore JSON API: token auth, cursor pages, problem+json errors.")

#: what any operation may answer besides its success
READ_PROBLEMS = (401, 404, 422)
#: what any write may answer besides its success (400: the body is not JSON)
WRITE_PROBLEMS = (400, 401, 403, 404, 409, 422)


def problems(*codes: int) -> Callable[[Any], Any]:
    """Document the problem responses an operation can give (each a shared problem+json response)."""
    def decorate(func: Any) -> Any:
        for code in sorted(set(codes), reverse=True):
            func = bp.alt_response(code, response=HTTPStatus(code).name)(func)
        return func

    return decorate


def reads(func: Any) -> Any:
    return problems(*READ_PROBLEMS)(func)


def writes(func: Any) -> Any:
    return problems(*WRITE_PROBLEMS)(func)


def query(schema: Any) -> Callable[[Any], Any]:
    """Parse and document the query string with ``schema``; unknown parameters are errors."""
    return bp.arguments(schema, location="query", unknown=ma.RAISE)


def no_body(func: Any) -> Any:
    """For an operation without input: a body, if sent, must be empty (``{}``)."""
    from crmcore.web.api.schemas import NoBody

    return bp.arguments(NoBody, required=False)(func)


def ctx() -> Context:
    """The request's context (set by the bearer-token check)."""
    return g.ctx


def body() -> dict[str, Any]:
    """The request's JSON object as sent: already checked against the operation's schema, and
    handed to the service as the service expects it (services validate and convert themselves)."""
    data = g.get("api_body")
    return dict(data) if isinstance(data, dict) else {}


def route(rule: str, tag: str, **options: Any) -> Callable[[Any], Any]:
    return bp.route(rule, tags=[tag], **options)
