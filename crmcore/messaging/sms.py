"""SMS rules that do not depend on a provider (numbers in E.164, how a text splits into parts),
and finding a business's provider driver.

Providers bill per segment, and the segment size depends on the encoding: a text made only of
GSM 03.38 characters travels as 7-bit septets (160 per single SMS, 153 per part of a
concatenated one, 7 septets going to the concatenation header); one other character forces
UCS-2 for the whole text (70 UTF-16 code units, 67 per part). Characters of the GSM extension
table (``€ [ ] { } | ~ ^ \\`` and form feed) cost two septets (an escape and the character), and
an escape pair or a UTF-16 surrogate pair is never split across two parts, as phones and
providers do — so a part may hold one unit less than the limit.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import phonenumbers

from crmcore.messaging.providers import SMS_PROVIDERS_GROUP, SmsProvider

if TYPE_CHECKING:
    from crmcore.context import Context

#: GSM 03.38 basic character set (the escape 0x1B itself is not a character a text may hold).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: GSM 03.38 extension table: each costs two septets (escape + character).
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7 = "GSM-7"
UCS2 = "UCS-2"

#: (single-message limit, per-part limit) in septets or UTF-16 code units
LIMITS = {GSM7: (160, 153), UCS2: (70, 67)}


@dataclass(frozen=True)
class SmsParts:
    """How a text is sent: its encoding, how many SMS it is billed as, and its size."""

    encoding: str         # 'GSM-7' or 'UCS-2'
    segments: int         # 0 for an empty text
    characters: int       # characters as the user sees them (code points)
    units: int            # septets (GSM-7) or UTF-16 code units (UCS-2)
    per_segment: int      # the unit limit of one part: 160/153 or 70/67


def is_gsm7(body: str) -> bool:
    """True when every character of ``body`` exists in the GSM 03.38 basic or extension table."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in body)


def _unit_sizes(body: str, encoding: str) -> list[int]:
    """Each character's size in units; an escape or surrogate pair is one unsplittable item."""
    if encoding == GSM7:
        return [2 if ch in GSM7_EXTENSION else 1 for ch in body]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in body]


def sms_parts(body: str) -> SmsParts:
    """Count the encoding, segments and size of ``body`` as an SMS."""
    encoding = GSM7 if is_gsm7(body) else UCS2
    sizes = _unit_sizes(body, encoding)
    units = sum(sizes)
    single, multi = LIMITS[encoding]
    if units == 0:
        return SmsParts(encoding, 0, 0, 0, single)
    if units <= single:
        return SmsParts(encoding, 1, len(body), units, single)
    segments, used = 1, 0
    for size in sizes:
        if used + size > multi:
            segments += 1
            used = 0
        used += size
    return SmsParts(encoding, segments, len(body), units, multi)


def normalize_number(raw: str, default_region: str | None) -> str:
    """``raw`` as E.164 (``+32470123456``), or :class:`ValueError` saying why it cannot be sent to.

    ``default_region`` (ISO 3166 alpha-2, e.g. ``BE``) reads national numbers (``0470 12 34 56``);
    without it only international ones (``+32 ...``, ``0032 ...``) can be read. The number must be
    valid for its country, not only of a possible length: an SMS to a number that cannot exist
    is billed and lost.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError("no phone number given")
    text = raw.strip()
    region = default_region.strip().upper() if default_region else None
    if region and region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown country code {default_region!r} for phone numbers")
    compact = re.sub(r"[\s().\-/]", "", text)
    if compact.startswith("00"):
        text = "+" + compact[2:]
    elif not compact.startswith("+") and region is None:
        raise ValueError(
            f"{raw.strip()!r} is not in international form: write it as +<country code> <number>, "
            "or set a default country")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"{raw.strip()!r} is not a phone number ({_parse_error(exc)})") from None
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason not in (phonenumbers.ValidationResult.IS_POSSIBLE,
                      phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY):
        raise ValueError(f"{raw.strip()!r} is not a possible phone number ({_possible_error(reason)})")
    if not phonenumbers.is_valid_number(number):
        where = phonenumbers.region_code_for_number(number) or f"+{number.country_code}"
        raise ValueError(f"{raw.strip()!r} is not a valid phone number for {where}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _parse_error(exc: phonenumbers.NumberParseException) -> str:
    kinds = phonenumbers.NumberParseException
    return {
        kinds.INVALID_COUNTRY_CODE: "unknown country code",
        kinds.NOT_A_NUMBER: "not a number",
        kinds.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
        kinds.TOO_SHORT_NSN: "too short",
        kinds.TOO_LONG: "too long",
    }.get(exc.error_type, "unreadable")


def _possible_error(reason: int) -> str:
    results = phonenumbers.ValidationResult
    return {
        results.INVALID_COUNTRY_CODE: "unknown country code",
        results.TOO_SHORT: "too few digits",
        results.TOO_LONG: "too many digits",
        results.INVALID_LENGTH: "wrong number of digits",
    }.get(reason, "wrong number of digits")


# -- providers -----------------------------------------------------------------------------------

_instances: dict[type, SmsProvider] = {}
_instances_lock = threading.Lock()


def sms_provider(ctx: Context, name: str) -> tuple[SmsProvider, str | None] | None:
    """The SMS provider driver ``name`` and the plugin that owns it, if it is installed and usable
    in ctx's business (its plugin enabled there); else None.

    A driver's entry point names a :class:`SmsProvider` subclass (instantiated once per process:
    per-business settings come with each call) or an instance.
    """
    from crmcore.plugins.drivers import available

    driver = available(ctx, SMS_PROVIDERS_GROUP).get(name)
    if driver is None:
        return None
    obj = driver.obj
    if isinstance(obj, type):
        if not issubclass(obj, SmsProvider):
            return None
        with _instances_lock:
            instance = _instances.get(obj)
            if instance is None:
                instance = _instances[obj] = obj()
        obj = instance
    if not isinstance(obj, SmsProvider):
        return None
    return obj, driver.plugin


def sms_provider_settings(ctx: Context, plugin: str | None) -> dict[str, Any]:
    """The owning plugin's settings in ctx's business, secrets decrypted (empty for a core driver)."""
    return ctx.plugin_settings(plugin) if plugin else {}
