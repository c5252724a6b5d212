"""Vehicle identification numbers (ISO 3779) and their check digit (North American rule).

A VIN has 17 characters from 0-9 and A-Z without I, O and Q (too easily read as 1 and 0). In
North America the 9th character is a check digit: each character is transliterated to a number,
multiplied by the weight of its position, and the sum modulo 11 is the digit (10 is written X).
Elsewhere the check digit is optional, so a field may turn the check off. Product identification
numbers of construction and farm machines (ISO 10261) use the same 17-character shape.
"""

from __future__ import annotations

LENGTH = 17
CHECK_POSITION = 8  # 0-based: the 9th character
ALPHABET = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"
FORBIDDEN = "IOQ"

_VALUES = {str(d): d for d in range(10)}
_VALUES.update(zip("ABCDEFGH", range(1, 9), strict=True))
_VALUES.update(zip("JKLMN", range(1, 6), strict=True))
_VALUES.update({"P": 7, "R": 9})
_VALUES.update(zip("STUVWXYZ", range(2, 10), strict=True))
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def normalize(value: str) -> str:
    """Upper case, without surrounding blanks and inner spaces or hyphens (as often typed)."""
    return "".join(ch for ch in value.strip().upper() if ch not in " -")


def check_digit(vin: str) -> str:
    """The check digit the 17-character ``vin`` should carry in position 9 ("0"-"9" or "X")."""
    total = sum(_VALUES[ch] * weight for ch, weight in zip(vin, _WEIGHTS, strict=True))
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def problem(vin: str, *, verify_check_digit: bool = True) -> str | None:
    """Why the normalized ``vin`` is not valid, or None when it is."""
    if len(vin) != LENGTH:
        return f"a VIN has {LENGTH} characters, this one has {len(vin)}"
    bad = sorted({ch for ch in vin if ch not in _VALUES})
    if bad:
        forbidden = [ch for ch in bad if ch in FORBIDDEN]
        if forbidden:
            return f"a VIN never contains I, O or Q (found {', '.join(forbidden)})"
        return f"a VIN has only letters and digits (found {', '.join(repr(ch) for ch in bad)})"
    if verify_check_digit:
        expected = check_digit(vin)
        if vin[CHECK_POSITION] != expected:
            return f"check digit (9th character) is {vin[CHECK_POSITION]}, expected {expected}: mistyped?"
    return None
