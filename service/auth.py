"""API keys: configured as SHA-256 hashes, checked in constant time.

Hash a new key with `python -m service.auth < key.txt` (reads the key on stdin, prints its hash).
Several hashes may be configured at once, which is how keys are rotated.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import sys

from bentoml.exceptions import BentoMLConfigException

HASH_SCHEME = "sha256:"


class AuthConfigError(BentoMLConfigException):
    """The server must not start: keys are missing or malformed.

    A BentoML exception, so that `bentoml serve` reports it as a one-line error and exits 1.
    """


def hash_key(key: str) -> str:
    return HASH_SCHEME + hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKeys:
    """The accepted keys, as digests; `identify` returns a short non-secret id for the logs."""

    def __init__(self, hashes: tuple[str, ...]) -> None:
        digests: list[bytes] = []
        for position, item in enumerate(hashes, start=1):
            hex_digest = item.removeprefix(HASH_SCHEME)
            if not item.startswith(HASH_SCHEME) or len(hex_digest) != 64:
                raise AuthConfigError(
                    f"API key hash #{position} is not 'sha256:<64 hex digits>' "
                    "(hash keys with `python -m service.auth`)"
                )
            try:
                digests.append(bytes.fromhex(hex_digest))
            except ValueError as error:
                raise AuthConfigError(f"API key hash #{position} is not hexadecimal") from error
        self._digests = tuple(digests)

    def __len__(self) -> int:
        return len(self._digests)

    def identify(self, presented_key: str) -> str | None:
        """The matching key's id, or None. Compares against every hash, whatever matches."""
        presented = hashlib.sha256(presented_key.encode("utf-8", errors="replace")).digest()
        matched: bytes | None = None
        for digest in self._digests:
            if hmac.compare_digest(presented, digest):
                matched = digest
        return None if matched is None else matched.hex()[:12]


def configured_api_keys(*, auth_disabled: bool, hashes: tuple[str, ...]) -> ApiKeys | None:
    """The keys to accept, or None when auth is explicitly disabled; never an open server by
    accident."""
    if auth_disabled:
        return None
    if not hashes:
        raise AuthConfigError(
            "no API keys configured: set MODERATION_API_KEY_HASHES or "
            "MODERATION_API_KEY_HASHES_FILE, or MODERATION_AUTH_DISABLED=1 for local development"
        )
    return ApiKeys(hashes)


# RFC 9110 section 11.4 and RFC 6750 section 2.1: credentials = auth-scheme 1*SP b64token, the
# scheme case-insensitive; nothing else (no tab, no trailing parameters).
_BEARER_CREDENTIALS = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*)")


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None unless exactly that syntax."""
    if authorization is None:
        return None
    match = _BEARER_CREDENTIALS.fullmatch(authorization)
    return match.group(1) if match else None


def main() -> int:
    """`python -m service.auth < key.txt`: the key's hash; refuses an empty key."""
    key = sys.stdin.read().strip()
    if not key:
        print(
            "refusing to hash an empty key: pipe the key in, e.g. "
            '`printf %s "$KEY" | python -m service.auth` (is $KEY set?)',
            file=sys.stderr,
        )
        return 2
    print(hash_key(key))
    return 0


if __name__ == "__main__":
    sys.exit(main())
