"""The public payment link's token: 192 random bits, never stored in clear.

The database keeps the token's first :data:`PREFIX` characters (an indexed lookup key: 60 of
its bits, leaving 132 that are never stored) and the SHA-256 of the whole token, compared in
constant time. A wrong token and a missing invoice look the same to the caller.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

#: bytes of randomness: 24 bytes = 192 bits = 32 URL-safe characters
TOKEN_BYTES = 24
TOKEN_LENGTH = 32
PREFIX = 10
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{" + str(TOKEN_LENGTH) + "}")


def new_token() -> tuple[str, str, str]:
    """(token, prefix, hash): give the token to the payer, store the prefix and the hash."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, token[:PREFIX], digest(token)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def well_formed(token: object) -> bool:
    return isinstance(token, str) and TOKEN_RE.fullmatch(token) is not None


def matches(token: str, stored_hash: str | None) -> bool:
    if not stored_hash:
        return False
    return hmac.compare_digest(digest(token), stored_hash)
