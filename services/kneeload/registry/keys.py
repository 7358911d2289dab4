"""Device API keys: generated with 256 bits of entropy, stored only as SHA-256 digests.

Why SHA-256 and not bcrypt/scrypt/Argon2: those slow hashes exist to make guessing
*low-entropy human passwords* expensive. A device key here is 32 random bytes from
:func:`secrets.token_urlsafe`; nobody can enumerate 2**256 candidates however fast the
hash is, so a slow hash would only cost CPU on every request (the gateway checks a key
per request, thousands per second) without adding security. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["KEY_BYTES", "generate_key", "hash_key", "key_matches"]

#: Random bytes per key (256 bits).
KEY_BYTES = 32
_PREFIX = "kl_"


def generate_key() -> str:
    """A new API key (``kl_`` + 43 URL-safe characters). Show it once; store :func:`hash_key`."""
    return _PREFIX + secrets.token_urlsafe(KEY_BYTES)


def hash_key(key: str) -> str:
    """SHA-256 of the key as 64 lowercase hex digits (the registry's ``api_key_sha256``)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_matches(key: str, digest: str) -> bool:
    """Whether ``key`` hashes to ``digest`` (constant-time comparison)."""
    return hmac.compare_digest(hash_key(key), digest)
