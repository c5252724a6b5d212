"""The JSON API at ``/api/v1`` (flask-smorest): routes over the services, bearer tokens, cursor
pages, ``application/problem+json`` errors, and its OpenAPI 3 document at
``/api/v1/openapi.json``, generated from the same schemas that check the requests.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.common import resolve_schema_cls
from flask import Flask
from flask_smorest import Api

import crmcore
from crmcore.web.api.blueprint import bp

OPENAPI_VERSION = "3.0.3"
SECURITY_SCHEME = "bearerAuth"
TAGS = {
    "parties": "Organisations and persons, with their contact mechanisms and addresses",
    "contacts": "People at a party, or unassigned",
    "records": "Leads, deals, incidents, actions, ...: lists, changes and pipeline moves",
    "pipelines": "Pipelines per record type and their stages",
    "notes": "Notes on parties and records",
    "fields": "Custom-field definitions",
    "plugins": "Plugins of the business and their settings",
    "outbox": "Side-effect jobs of the business (admins): waiting, failed, parked; retry or discard",
}


class CrmApi(Api):
    """flask-smorest's Api with problem+json error responses and no app-wide error handler (the
    admin pages keep theirs; the API blueprint has its own)."""

    #: no catch-all "default" response: every status an operation gives is documented
    DEFAULT_ERROR_RESPONSE_NAME = None

    def _register_error_handlers(self) -> None:
        """The handlers live on the API blueprint (:mod:`crmcore.web.api.errors`)."""

    def _register_pagination_header(self) -> None:
        """Pages are in the body (``next_cursor``, ``total``), not in an X-Pagination header."""

    def _register_responses(self) -> None:
        from crmcore.web.api.errors import PROBLEM_JSON
        from crmcore.web.api.schemas import ProblemSchema

        for status in HTTPStatus:
            if status < 400:
                continue
            response: dict[str, Any] = {"description": status.phrase,
                                        "content": {PROBLEM_JSON: {"schema": ProblemSchema}}}
            if status == 401:
                response["headers"] = {"WWW-Authenticate": {
                    "description": "the Bearer challenge", "schema": {"type": "string"}}}
            self.spec.components.response(status.name, response, lazy=True)


def schema_name(schema: Any) -> str:
    """Component names: the API's schemas by their class name; the features' input schemas
    (documented as request bodies) get "Input", partial (PATCH) variants "Patch"."""
    cls = resolve_schema_cls(schema)
    name = cls.__name__.removesuffix("Schema")
    if not cls.__module__.startswith("crmcore.web.api") and not name.endswith("Input"):
        name += "Input"
    if getattr(schema, "partial", False) is True:
        name += "Patch"
    return name


def init_api(app: Flask) -> Any:
    """Register the API on ``app``; returns its blueprint (for the CSRF exemption)."""
    from crmcore.web.api import (  # noqa: F401 - the modules attach their routes to ``bp``
        auth,
        contacts,
        errors,
        fields,
        notes,
        outbox,
        parties,
        pipelines,
        plugins,
        records,
    )

    app.config.update(
        API_TITLE="crmcore API",
        API_VERSION=crmcore.__version__,
        OPENAPI_VERSION=OPENAPI_VERSION,
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "security": [{SECURITY_SCHEME: []}],
            "info": {"description": (
                "Every request carries `Authorization: Bearer <token>` (an API token of a user in "
                "one business). Lists page with `cursor`/`limit` and answer `next_cursor` and a "
                "capped `total`. Errors are `application/problem+json`.")},
        },
    )
    api = CrmApi(app, spec_kwargs={"marshmallow_plugin": MarshmallowPlugin(schema_name_resolver=schema_name)})
    api.spec.components.security_scheme(SECURITY_SCHEME, {"type": "http", "scheme": "bearer",
                                                          "description": "an API token: crm_<prefix>_<secret>"})
    api.register_blueprint(bp)
    for name, description in TAGS.items():
        api.spec.tag({"name": name, "description": description})
    app.extensions["crm_api"] = api
    return bp


__all__ = ["CrmApi", "init_api"]
