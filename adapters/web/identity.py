"""Anonymous web chat identities: a random user id in a signed, HttpOnly cookie.

The cookie holds `<uid>.<signature>`: the uid is 128 random bits, the signature an
HMAC-SHA256 of it with a per-installation secret kept in Redis (created once, shared
by every bot process). The uid alone, which appears in job records, cannot be turned
into a working cookie without the secret. No account, no personal data.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import redis.asyncio as aioredis

COOKIE_NAME = "avatarbot_uid"
COOKIE_MAX_AGE_S = 365 * 24 * 3600
_UID_HEX = 32
_SIG_HEX = 32


class Identities:
    """Issues and checks anonymous web chat user ids."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the cookie secret must be at least 16 bytes")
        self._secret = secret

    @classmethod
    async def load(cls, redis: aioredis.Redis, prefix: str) -> Identities:
        """The installation's secret from Redis, created on first use."""
        key = f"{prefix}:web:cookie-secret"
        await redis.set(key, secrets.token_hex(32), nx=True)
        raw = await redis.get(key)
        if raw is None:  # deleted between the two calls: try once more
            await redis.set(key, secrets.token_hex(32), nx=True)
            raw = await redis.get(key)
        if raw is None:
            raise RuntimeError("could not store the web chat cookie secret in Redis")
        text = raw.decode() if isinstance(raw, bytes) else raw
        return cls(bytes.fromhex(text))

    def _sign(self, uid: str) -> str:
        return hmac.new(self._secret, uid.encode(), hashlib.sha256).hexdigest()[:_SIG_HEX]

    def address_tag(self, address: str) -> str:
        """A stable name for a client address that does not reveal it (rate limits)."""
        message = b"address\0" + address.encode(errors="surrogateescape")
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:_SIG_HEX]

    def issue(self) -> tuple[str, str]:
        """A new (uid, cookie value)."""
        uid = secrets.token_hex(_UID_HEX // 2)
        return uid, f"{uid}.{self._sign(uid)}"

    def check(self, cookie: str | None) -> str | None:
        """The uid in a valid cookie value, else None."""
        if not cookie or len(cookie) != _UID_HEX + 1 + _SIG_HEX:
            return None
        uid, _, sig = cookie.partition(".")
        if len(uid) != _UID_HEX or not all(c in "0123456789abcdef" for c in uid):
            return None
        return uid if hmac.compare_digest(sig, self._sign(uid)) else None
