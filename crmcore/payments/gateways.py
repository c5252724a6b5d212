"""The interface a payment gateway implements, and how a plugin finds the enabled ones.

A gateway is a driver (docs/plugins.md): declared in the ``crmcore.payment_gateways``
entry-point group by a distribution that also declares the plugin owning it, usable in a
business while that plugin is enabled there, configured by that plugin's settings (validated by
its marshmallow schema, secrets encrypted at rest) which every call receives decrypted.

The flow (docs/payments.md), as the plugin that takes payments drives it:

1. it saves a payment attempt with a fresh ``idempotency_key`` and commits, THEN calls
   :meth:`PaymentGateway.create_session` with the amount the server computed; a retry of the
   same attempt reuses the key, so the provider creates one session, not two;
2. it sends the payer to :attr:`PaymentSession.redirect_url` (GET, or an auto-submitted POST of
   :attr:`PaymentSession.redirect_fields`), or shows :attr:`PaymentSession.instructions`;
3. the payer comes back to ``return_url``: :meth:`PaymentGateway.handle_return` reports what it
   can confirm with the provider (PayPal captures the order here);
4. the provider calls the webhook: :meth:`PaymentGateway.parse_webhook` verifies the signature
   on the raw body, refuses stale timestamps and reports :class:`PaymentEvent` s. The same
   ``provider_payment_id`` reported twice (webhook and return, a redelivery) is ONE payment:
   the owning plugin dedupes on it.

No exception message may contain a secret: they are shown to admins and stored. A call must
finish within :attr:`PaymentGateway.timeout` seconds.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from crmcore.messaging.providers import DeliveryError, PermanentFailure, TemporaryFailure

if TYPE_CHECKING:
    from crmcore.context import Context

PAYMENT_GATEWAYS_GROUP = "crmcore.payment_gateways"

#: re-exported: the failure classes are those of messaging providers, so that
#: :func:`crmcore.messaging.http.call` (one bounded HTTP request) serves gateways too
GatewayError = DeliveryError
__all__ = ["PAYMENT_GATEWAYS_GROUP", "EnabledGateway", "EventKind", "GatewayError", "InvalidWebhook", "PaymentEvent",
           "PaymentGateway", "PaymentRequest", "PaymentSession", "PermanentFailure", "RefundResult",
           "ReturnRequest", "TemporaryFailure", "WebhookRequest", "enabled_gateways", "from_minor_units",
           "get_gateway", "minor_units"]


class InvalidWebhook(Exception):
    """A webhook that fails its signature check, is stale or cannot be read: answered 400 and
    ignored (the message, without secrets, goes to the log for the admin)."""


class EventKind:
    SUCCEEDED = "succeeded"   # money was taken: record a payment
    PENDING = "pending"       # accepted but not settled yet (bank debit, review): nothing to record
    FAILED = "failed"         # the attempt failed or was cancelled: no payment
    REFUNDED = "refunded"     # money was given back: ONE event per refund, ``amount`` is that refund's
    #                           amount (not a running total), ``provider_refund_id`` names it


@dataclass(frozen=True)
class PaymentRequest:
    """Ask the provider for a payment of ``amount`` (the server's balance, > 0)."""

    attempt_id: int               # the owning plugin's attempt row: echo it to the provider
    idempotency_key: str          # saved before the call; the same for every retry of this attempt
    amount: Decimal
    currency: str                 # ISO 4217, upper case
    reference: str                # what the payer pays, e.g. the invoice number "INV-2026-0007"
    description: str
    return_url: str               # where the provider sends the payer after paying
    cancel_url: str               # where the provider sends a payer who gives up
    customer_email: str | None = None
    customer_name: str | None = None
    locale: str | None = None     # e.g. "nl", for the provider's page
    metadata: Mapping[str, str] = field(default_factory=dict)  # business/invoice ids, echoed back


@dataclass(frozen=True)
class PaymentSession:
    """Where the payer goes next."""

    provider_reference: str       # the provider's id of this session / order / token
    redirect_url: str | None = None
    redirect_method: str = "GET"  # "POST": an auto-submitted form of ``redirect_fields``
    redirect_fields: Mapping[str, str] = field(default_factory=dict)
    instructions: str | None = None  # plain text for the payer (offline gateways: bank details)


@dataclass(frozen=True)
class PaymentEvent:
    """A fact the provider reported, by webhook or on the payer's return."""

    kind: str                     # an :class:`EventKind` value
    provider_reference: str | None  # the session / order reference from create_session, when known
    provider_payment_id: str | None  # the charge / capture / transaction id: one payment per id
    amount: Decimal | None = None
    currency: str | None = None
    attempt_id: int | None = None  # from the metadata echoed back, when the provider keeps it
    provider_event_id: str | None = None
    occurred_at: dt.datetime | None = None
    detail: str | None = None     # shown to admins (a decline reason), no secrets
    #: REFUNDED only: the provider's id of this refund; the owning plugin counts a refund once per id
    provider_refund_id: str | None = None


@dataclass(frozen=True)
class WebhookRequest:
    """A provider's webhook call as received: verify signatures on ``body``, the raw bytes."""

    method: str
    url: str
    headers: Mapping[str, str]    # case-insensitive lookups: use ``header()``
    query: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None


@dataclass(frozen=True)
class ReturnRequest:
    """The payer's browser coming back to ``return_url`` (its query and form, unverified)."""

    provider_reference: str       # the session this return belongs to (from the attempt row)
    query: Mapping[str, str]
    form: Mapping[str, str]


@dataclass(frozen=True)
class RefundResult:
    provider_refund_id: str
    amount: Decimal
    status: str = "succeeded"     # or "pending"


class PaymentGateway(abc.ABC):
    """Takes payments through one provider. One instance per installation; per-business
    ``settings`` come with each call."""

    name: ClassVar[str]
    title: ClassVar[str]
    timeout: ClassVar[float] = 20.0
    #: an offline gateway (cash, bank transfer) takes no money itself: staff record payments
    offline: ClassVar[bool] = False

    @abc.abstractmethod
    def create_session(self, request: PaymentRequest, settings: Mapping[str, Any]) -> PaymentSession:
        """Start a payment; send ``request.idempotency_key`` where the provider dedupes.
        Raise :class:`TemporaryFailure` (timeout, 5xx) or :class:`PermanentFailure`."""

    def handle_return(self, request: ReturnRequest, settings: Mapping[str, Any]) -> list[PaymentEvent]:
        """What can be confirmed with the provider when the payer comes back (never trust the
        query alone). Default: nothing; the webhook will tell."""
        return []

    def parse_webhook(self, request: WebhookRequest, settings: Mapping[str, Any], *,
                      now: dt.datetime | None = None) -> list[PaymentEvent]:
        """Verify and read a webhook; raise :class:`InvalidWebhook` on a bad signature or a
        timestamp outside the provider's tolerance. Gateways without webhooks keep this."""
        raise InvalidWebhook(f"{self.name} does not take webhooks")

    def refund(self, provider_payment_id: str, amount: Decimal, currency: str, idempotency_key: str,
               settings: Mapping[str, Any]) -> RefundResult:
        """Give back ``amount`` of a payment. Offline gateways keep this default."""
        raise PermanentFailure(f"{self.title} cannot refund through the provider: refund by hand")

    def payer_instructions(self, settings: Mapping[str, Any]) -> str | None:
        """Text shown on the public payment page beside this gateway's button (optional)."""
        return None


# --------------------------------------------------------------------------------------------
# money in the provider's smallest unit


def _exponent(currency: str) -> int:
    from babel.numbers import get_currency_precision

    return get_currency_precision(currency.upper())


def minor_units(amount: Decimal, currency: str) -> int:
    """``amount`` in the currency's smallest unit (cents; yen are whole): 12.34 EUR -> 1234."""
    exponent = _exponent(currency)
    return int((amount * (10 ** exponent)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def from_minor_units(units: int, currency: str) -> Decimal:
    """The inverse of :func:`minor_units`: 1234 EUR cents -> Decimal("12.34")."""
    exponent = _exponent(currency)
    return (Decimal(units) / (10 ** exponent)).quantize(Decimal(1).scaleb(-exponent))


# --------------------------------------------------------------------------------------------
# the gateways of a business


@dataclass(frozen=True)
class EnabledGateway:
    name: str                     # the driver name, e.g. "stripe"
    gateway: PaymentGateway
    plugin: str | None            # the plugin whose settings configure it

    def settings(self, ctx: Context) -> Mapping[str, Any]:
        return ctx.plugin_settings(self.plugin) if self.plugin else {}


_instances: dict[type, PaymentGateway] = {}


def enabled_gateways(ctx: Context) -> dict[str, EnabledGateway]:
    """The gateways usable in ctx's business (their plugin enabled), by driver name."""
    import logging

    from crmcore.plugins.drivers import available

    out: dict[str, EnabledGateway] = {}
    for name, driver in sorted(available(ctx, PAYMENT_GATEWAYS_GROUP).items()):
        obj = driver.obj
        if isinstance(obj, type):
            obj = _instances.get(obj) or _instances.setdefault(obj, obj())
        if not isinstance(obj, PaymentGateway):
            logging.getLogger("crmcore.payments").error(
                "payment gateway %s of %s is not a PaymentGateway; ignored", name, driver.plugin)
            continue
        out[name] = EnabledGateway(name, obj, driver.plugin)
    return out


def get_gateway(ctx: Context, name: str) -> EnabledGateway | None:
    """The gateway ``name`` if it is enabled in ctx's business, else None."""
    return enabled_gateways(ctx).get(name)
