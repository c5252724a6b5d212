"""Bearer-token authentication and the input checks every API request passes first.

``Authorization: Bearer crm_<prefix>_<secret>`` resolves to a
:class:`~crmcore.context.Context` for the token's business and user (``g.ctx``, closed at
teardown). A missing, malformed, unknown, revoked or expired token is a 401 with a
``WWW-Authenticate: Bearer`` challenge; what the token's user may do is the services' business
(their role checks answer 403).
"""

from __future__ import annotations

import json
import re

from flask import current_app, g, request

from crmcore.errors import PermissionDenied, ValidationFailed
from crmcore.web.api.blueprint import bp
from crmcore.web.api.errors import MalformedBody, Unauthorized
from crmcore.web.api.schemas import input_problems

#: the shape :func:`crmcore.auth.passwords.new_token` gives (checked before any query)
TOKEN_RE = re.compile(r"crm_[0-9A-Za-z]{1,16}_[0-9A-Za-z_\-]{1,200}")


@bp.before_request
def authenticate() -> None:
    from crmcore.auth.service import context_for_token

    header = request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if not header:
        raise Unauthorized("send an API token: Authorization: Bearer <token>", invalid=False)
    if scheme.lower() != "bearer" or not TOKEN_RE.fullmatch(token):
        raise Unauthorized("invalid or expired API token", invalid=True)
    try:
        g.ctx = context_for_token(current_app.extensions["crm"], token)
    except PermissionDenied as exc:
        raise Unauthorized(exc.message, invalid=True) from exc


@bp.before_request
def check_input() -> None:
    """Refuse what no database can store (NUL, lone surrogates, 65-bit numbers) and bodies that
    are not JSON, as field errors, before any schema or service sees the request."""
    errors: dict = {}
    for key in request.args:
        input_problems({key: request.args.getlist(key)}, errors)
    if request.is_json and request.content_length != 0:
        raw = request.get_data(cache=True)
        if raw.strip():
            try:
                g.api_body = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                raise MalformedBody(str(exc)) from exc
            input_problems(g.api_body, errors)
    if errors:
        raise ValidationFailed("the request holds values that cannot be stored", errors)


@bp.teardown_request
def close_context(_exc: BaseException | None) -> None:
    ctx = g.pop("ctx", None)
    if ctx is not None:
        ctx.close()
