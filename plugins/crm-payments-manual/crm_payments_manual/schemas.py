"""The settings: what a payer is told, per method. Every field is optional; a method without
settings is not mentioned. The IBAN is checked (ISO 13616 mod-97) and kept grouped by four."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields

IBAN_RE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")
BIC_RE = re.compile(r"[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?")


class Text(fields.String):
    """Stripped text of at most ``max_length`` characters; empty is None."""

    def __init__(self, max_length: int, **kwargs: Any) -> None:
        kwargs.setdefault("load_default", None)
        kwargs.setdefault("allow_none", True)
        super().__init__(**kwargs)
        self.max_length = max_length

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | None:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if "\x00" in text:
            raise ValidationError("must not contain NUL characters")
        if len(text) > self.max_length:
            raise ValidationError(f"at most {self.max_length} characters")
        return text or None


def iban_ok(compact: str) -> bool:
    """The ISO 13616 check: the country and check digits moved to the end, as a number mod 97 is 1."""
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


class Iban(Text):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | None:
        text = super()._deserialize(value, attr, data, **kwargs)
        if text is None:
            return None
        compact = re.sub(r"[\s-]", "", text).upper()
        if not IBAN_RE.fullmatch(compact) or not iban_ok(compact):
            raise ValidationError("not a valid IBAN (check the country code, the digits and the length)")
        return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))


class Bic(Text):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | None:
        text = super()._deserialize(value, attr, data, **kwargs)
        if text is None:
            return None
        compact = text.replace(" ", "").upper()
        if not BIC_RE.fullmatch(compact):
            raise ValidationError("a BIC has 8 or 11 letters and digits, e.g. ABNANL2A")
        return compact


class ManualSettings(Schema):
    """Per-business settings of the manual gateway."""

    title = Text(60, metadata={"help": "What the payment page calls this way to pay (default: Bank transfer)."})
    account_holder = Text(200)
    iban = Iban(50)
    bic = Bic(11)
    bank_transfer_note = Text(1000)
    cheque_payable_to = Text(200)
    cheque_address = Text(1000)
    cash_instructions = Text(1000)
