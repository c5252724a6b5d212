"""Errors for people (an HTML page with the message) and for programs (problem+json)."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from crmcore.errors import CrmError


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def problem(status: int, message: str, errors: dict[str, Any] | None = None, code: str | None = None) -> Any:
    """An RFC 9457 problem document: ``title`` is the status phrase, ``detail`` the message (the
    same shape as the API's own errors)."""
    from http import HTTPStatus

    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": message}
    if code:
        body["code"] = code
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(CrmError)
    def _crm_error(exc: CrmError) -> Any:
        if wants_json():
            return problem(exc.status, exc.message, errors=exc.errors or None, code=exc.code)
        return render_template("error.html", status=exc.status, message=exc.message,
                               errors=exc.errors), exc.status

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> Any:
        message = "This form has expired or did not come from this site. Reload the page and try again."
        if wants_json():
            return problem(400, message, code="csrf")
        return render_template("error.html", status=400, message=message, errors={}), 400

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        status = exc.code or 500
        message = {404: "Not found.", 403: "You may not do this.", 405: "Method not allowed.",
                   413: "The upload is too large."}.get(status, exc.description or exc.name)
        if wants_json():
            return problem(status, message)
        return render_template("error.html", status=status, message=message, errors={}), status

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        message = "Something went wrong on our side; nothing was saved. The error has been logged."
        if wants_json():
            return problem(500, message)
        return render_template("error.html", status=500, message=message, errors={}), 500
