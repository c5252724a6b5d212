"""The ``manual`` payment gateway: offline (``offline = True``), so the plugin that takes payments
shows :meth:`ManualGateway.payer_instructions` on its payment page instead of a button, and
staff record the money when it arrives. It never calls out and never refunds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crmcore.payments.gateways import PaymentGateway, PaymentRequest, PaymentSession


class ManualGateway(PaymentGateway):
    name = "manual"
    title = "Bank transfer, cheque or cash"
    offline = True

    def create_session(self, request: PaymentRequest, settings: Mapping[str, Any]) -> PaymentSession:
        """Nothing to start: the payer gets the instructions with the reference to mention."""
        text = self.payer_instructions(settings) or "Contact us to pay."
        return PaymentSession(provider_reference=f"manual-{request.attempt_id}",
                              instructions=f"{text}\n\nPlease mention {request.reference}.")

    def payer_instructions(self, settings: Mapping[str, Any]) -> str | None:
        """Plain text, one block per method that has settings (None when none has)."""
        blocks = []
        bank = [line for line in (
            f"Account holder: {settings['account_holder']}" if settings.get("account_holder") else None,
            f"IBAN: {settings['iban']}" if settings.get("iban") else None,
            f"BIC: {settings['bic']}" if settings.get("bic") else None,
            settings.get("bank_transfer_note"),
        ) if line]
        if bank:
            blocks.append("Bank transfer\n" + "\n".join(bank))
        cheque = [line for line in (
            f"Payable to: {settings['cheque_payable_to']}" if settings.get("cheque_payable_to") else None,
            f"Send to:\n{settings['cheque_address']}" if settings.get("cheque_address") else None,
        ) if line]
        if cheque:
            blocks.append("Cheque\n" + "\n".join(cheque))
        if settings.get("cash_instructions"):
            blocks.append("Cash\n" + settings["cash_instructions"])
        return "\n\n".join(blocks) or None
