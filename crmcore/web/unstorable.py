"""Refuse request values no database can store, before any view runs.

A NUL character (``%00``) or a lone surrogate in a query, path or form value makes PostgreSQL
raise from deep inside a query (SQLite stores it silently). Rather than guard every filter and
form, one check runs first and answers 422 naming the field, so a page never 500s and nothing
is written. The API and the provider callbacks validate their own input the same way (see
``crmcore.web.api.schemas.input_problems``) and are skipped here.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import Flask, request

from crmcore.errors import ValidationFailed
from crmcore.web.api.schemas import text_problem

#: blueprints that check their input themselves (with their own error shapes)
SELF_CHECKED = frozenset({"api", "api-docs", "sms_hooks"})

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def init_app(app: Flask) -> None:
    app.before_request(refuse_unstorable_input)


def refuse_unstorable_input() -> None:
    if request.blueprint in SELF_CHECKED:
        return
    errors: dict[str, list[str]] = {}
    _check(errors, request.args.items(multi=True))
    _check(errors, (request.view_args or {}).items())
    if request.method not in ("GET", "HEAD", "OPTIONS") and request.mimetype in FORM_TYPES:
        _check(errors, request.form.items(multi=True))
    if errors:
        raise ValidationFailed("the request holds values that cannot be stored", errors)


def _check(errors: dict[str, list[str]], items: Iterable[tuple[str, object]]) -> None:
    for key, value in items:
        key_problem = text_problem(key)
        if key_problem:
            errors.setdefault("_keys", []).append(key_problem)
        elif isinstance(value, str):
            problem = text_problem(value)
            if problem and problem not in errors.get(key, []):
                errors.setdefault(key, []).append(problem)
