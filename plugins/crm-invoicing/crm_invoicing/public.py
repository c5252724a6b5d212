"""The public side: an invoice's payment page and the gateways' webhooks (no login).

``/pay/<business>/<token>`` shows the invoice, its lines, the balance, a button per online
gateway and the instructions of offline ones. A malformed token, a wrong one, a missing invoice
and a business where the plugin is off all get the same 404. The payer's POST (CSRF-protected)
starts an attempt for the server's balance, whatever the form says; the gateway call happens
after the attempt is committed, and its failure only marks the attempt (the payer is asked to
try again); an online gateway's address is then given on a small page that moves on by itself
(``<meta http-equiv=refresh>``, not a 303: Chromium checks a redirect that follows a form POST
against the form page's ``form-action``, which a provider on plain http would fail).
``/hooks/payments/<gateway>/<business>`` takes a provider's webhook: raw body, limited in size,
verified by the gateway (a bad signature is a 400, a temporary failure a 503), then applied.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from flask import Response, abort, render_template, request, url_for
from sqlalchemy.exc import OperationalError

from crm_invoicing import NAME, payments
from crmcore.errors import CrmError
from crmcore.payments.gateways import (
    GatewayError,
    InvalidWebhook,
    PaymentEvent,
    PaymentRequest,
    ReturnRequest,
    TemporaryFailure,
    WebhookRequest,
    get_gateway,
)
from crmcore.web.public import csrf_exempt, public_blueprint, public_context, public_url

if TYPE_CHECKING:
    from crmcore.context import Context

log = logging.getLogger("crm.invoicing.public")

bp = public_blueprint("invoicing_pay", __name__, template_folder="templates", static_folder="static",
                      static_url_path="/pay-static")

#: the core's page policy (crmcore sets it on pages that set none), with room for the provider
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
#: a webhook body larger than this is refused unread (providers send a few KiB)
MAX_WEBHOOK_BYTES = 256 * 1024
#: what a 503 asks the provider to wait before delivering again (providers retry on their own
#: schedule anyway; this is a hint)
RETRY_AFTER_SECONDS = 60
MESSAGES = {
    "succeeded": ("success", "Thank you: your payment was received."),
    "pending": ("info", "Your payment is being processed; this page will show it once it is confirmed."),
    "redirected": ("info", "We are waiting for the payment provider to confirm your payment."),
    "failed": ("error", "The payment did not go through. Please try again."),
    "cancelled": ("info", "You cancelled the payment. You can try again whenever you like."),
    "created": ("error", "The payment could not be started. Please try again."),
}


def _missing() -> Any:
    """The one answer for every token that does not open an invoice."""
    return render_template("invoicing/public_missing.html"), 404


@contextmanager
def _business(slug: str) -> Iterator[Context | None]:
    ctx = public_context(slug, NAME)
    try:
        yield ctx
    finally:
        if ctx is not None:
            ctx.close()


def _csp(form_targets: str = "https:") -> str:
    """The core's policy, but forms may lead to https: providers (and, on the page of a
    gateway's auto-submitted POST form, to that provider's origin)."""
    return CSP.replace("form-action 'self'", f"form-action 'self' {form_targets}")


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", _csp())
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the token is in the URL
    response.headers["X-Frame-Options"] = "DENY"
    return response


bp.after_request(_security_headers)


@bp.get("/pay/<business>/<token>", endpoint="page")
def page(business: str, token: str) -> Any:
    with _business(business) as ctx:
        if ctx is None:
            return _missing()
        shown = payments.public_invoice(ctx, token, request.args.get("attempt"))
        if shown is None:
            return _missing()
        message = MESSAGES.get(shown.attempt_status or "")
        return render_template("invoicing/public_invoice.html", inv=shown, token=token, business=business,
                               message=message)


@bp.post("/pay/<business>/<token>/<gateway>", endpoint="start")
def start(business: str, token: str, gateway: str) -> Any:
    """Pay the balance through ``gateway``: whatever amount the form posts is ignored."""
    with _business(business) as ctx:
        if ctx is None:
            return _missing()
        try:
            started = payments.start_attempt(ctx, token, gateway)
        except CrmError as exc:
            if exc.status == 404:
                return _missing()
            return _back(business, token, error=exc.message)
        pay_request = PaymentRequest(
            attempt_id=started.attempt_id, idempotency_key=started.idempotency_key, amount=started.amount,
            currency=started.currency, reference=started.reference, description=started.description,
            return_url=public_url(url_for("invoicing_pay.returned", business=business, token=token,
                                          attempt_id=started.attempt_id)),
            cancel_url=public_url(url_for("invoicing_pay.cancelled", business=business, token=token,
                                          attempt_id=started.attempt_id)),
            customer_email=started.customer_email, customer_name=started.customer_name, locale=started.locale,
            metadata={"business": business, "attempt_id": str(started.attempt_id), "reference": started.reference})
        try:
            session = started.gateway.gateway.create_session(pay_request, started.settings)
            target = _redirect_target(session.redirect_url)
            if target is None and not session.instructions:
                raise GatewayError("the gateway gave no http(s) address to send the payer to")
        except Exception as exc:  # noqa: BLE001 - any failure of a gateway: the attempt says why
            if not isinstance(exc, GatewayError):
                log.exception("gateway %s failed to create a session", gateway)
            payments.session_failed(ctx, started.attempt_id, _error_text(exc), started.settings)
            return _back(business, token, attempt=started.attempt_id)
        payments.session_created(ctx, started.attempt_id, session.provider_reference)
        if target is None:
            return render_template("invoicing/public_instructions.html", business=business, token=token,
                                   text=session.instructions, reference=started.reference)
        if session.redirect_method.upper() == "POST":
            parts = urlsplit(target)
            page = render_template("invoicing/public_redirect.html", target=target,
                                   fields={str(k): str(v) for k, v in dict(session.redirect_fields).items()})
            return Response(page, mimetype="text/html",
                            headers={"Content-Security-Policy": _csp(f"https: {parts.scheme}://{parts.netloc}")})
        return Response(render_template("invoicing/public_continue.html", target=_refresh_safe(target),
                                        gateway_title=started.gateway.gateway.title), mimetype="text/html")


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, GatewayError):
        return str(exc) or type(exc).__name__
    return f"unexpected error in the gateway ({type(exc).__name__})"


def _refresh_safe(url: str) -> str:
    """``url`` with quotes, spaces and controls percent-encoded: inside ``<meta http-equiv=refresh
    content="0;url=...">`` a quote would end the address early (the template escapes the rest)."""
    return quote(url, safe="/:?#[]@!$&()*+,;=%~-._")


def _redirect_target(url: str | None) -> str | None:
    if not url or not isinstance(url, str):
        return None
    parts = urlsplit(url)
    return url if parts.scheme in ("http", "https") and parts.netloc else None


def _back(business: str, token: str, *, attempt: int | None = None, error: str | None = None) -> Any:
    if error is not None:
        with _business(business) as ctx:
            shown = payments.public_invoice(ctx, token) if ctx is not None else None
            if shown is None:
                return _missing()
            return render_template("invoicing/public_invoice.html", inv=shown, token=token, business=business,
                                   message=("error", error)), 409
    return Response(status=303, headers={"Location": url_for("invoicing_pay.page", business=business, token=token,
                                                              attempt=attempt)})


@bp.get("/pay/<business>/<token>/return/<int:attempt_id>", endpoint="returned")
def returned(business: str, token: str, attempt_id: int) -> Any:
    """The payer is back: ask the gateway what it can confirm, apply it, show the status."""
    with _business(business) as ctx:
        if ctx is None:
            return _missing()
        back = payments.returned(ctx, token, attempt_id)
        if back is None:
            return _missing()
        if back.gateway is not None and back.settings is not None and back.provider_reference:
            try:
                events = back.gateway.gateway.handle_return(ReturnRequest(
                    provider_reference=back.provider_reference, query=request.args.to_dict(),
                    form=request.form.to_dict()), back.settings)
            except Exception as exc:  # noqa: BLE001 - the webhook will tell; the payer sees "processing"
                log.warning("gateway %s could not confirm attempt %s on return: %s", back.gateway.name,
                            back.attempt_id, _error_text(exc))
                events = []
            for event in events if isinstance(events, list) else []:
                if isinstance(event, PaymentEvent):
                    payments.apply_event(ctx, back.gateway.name, event, source="return", attempt_id=back.attempt_id)
        return _back(business, token, attempt=back.attempt_id)


@bp.get("/pay/<business>/<token>/cancel/<int:attempt_id>", endpoint="cancelled")
def cancelled(business: str, token: str, attempt_id: int) -> Any:
    with _business(business) as ctx:
        if ctx is None or not payments.cancel_attempt(ctx, token, attempt_id):
            return _missing()
        return _back(business, token, attempt=attempt_id)


@bp.post("/hooks/payments/<gateway>/<business>", endpoint="webhook")
@csrf_exempt
def webhook(gateway: str, business: str) -> Any:
    """A provider's webhook: 404 unless the gateway is enabled in that business, 413 when too
    large, 400 when the gateway refuses it (a bad signature or body; logged), 503 on a temporary
    failure (the gateway's TemporaryFailure, the database busy or unreachable) so the provider
    retries, else 200 once every event is applied."""
    try:
        return _webhook(gateway, business)
    except OperationalError as exc:  # database busy or gone: the use case rolled its transaction back
        return _retry_later(gateway, business, f"database unavailable ({type(exc.orig).__name__})")


def _webhook(gateway: str, business: str) -> Any:
    with _business(business) as ctx:
        if ctx is None:
            abort(404)
        enabled = get_gateway(ctx, gateway)
        if enabled is None or enabled.gateway.offline:
            abort(404)
        if (request.content_length or 0) > MAX_WEBHOOK_BYTES:
            return Response("too large", status=413, mimetype="text/plain")
        body = request.stream.read(MAX_WEBHOOK_BYTES + 1)
        if len(body) > MAX_WEBHOOK_BYTES:
            return Response("too large", status=413, mimetype="text/plain")
        settings = payments.gateway_settings(ctx, gateway)
        if settings is None:
            return Response("not configured", status=503, mimetype="text/plain")
        query = request.query_string.decode("latin-1")
        hook = WebhookRequest(method=request.method, url=public_url(request.path) + (f"?{query}" if query else ""),
                              headers=dict(request.headers), query=request.args.to_dict(), body=body)
        try:
            events = enabled.gateway.parse_webhook(hook, settings)
        except InvalidWebhook as exc:
            log.warning("webhook of %s for business %s refused: %s", gateway, business, exc)
            return Response("invalid webhook", status=400, mimetype="text/plain")
        except TemporaryFailure as exc:  # the gateway could not ask its provider (Stripe's refund list)
            return _retry_later(gateway, business, _error_text(exc))
        except Exception:  # noqa: BLE001 - a gateway's bug is logged, the provider gets a 400
            log.exception("gateway %s failed to read a webhook", gateway)
            return Response("invalid webhook", status=400, mimetype="text/plain")
        outcomes = [payments.apply_event(ctx, gateway, event, source="webhook")
                    for event in (events if isinstance(events, list) else [])]
        return Response(f"ok {len(outcomes)}", status=200, mimetype="text/plain")


def _retry_later(gateway: str, business: str, why: str) -> Response:
    """A temporary failure: 503, so the provider delivers the webhook again later (events
    applied before it are found again as duplicates then)."""
    log.warning("webhook of %s for business %s not handled now, the provider will retry: %s", gateway, business, why)
    return Response("temporarily unavailable", status=503, mimetype="text/plain",
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
