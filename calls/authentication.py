"""Verify the JWT that ACS puts on every webhook and media-socket request (reference section 2).

Tokens are RS256, issued by ACS_JWT_ISSUER for the audience ACS_RESOURCE_ID, signed by a key from
the JWKS at ACS_JWKS_URL. Keys are cached; an unknown `kid` refetches the set at most once a minute.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import jwt
from django.conf import settings

logger = logging.getLogger(__name__)

JWKS_REFRESH_INTERVAL = 60.0


class AcsAuthenticationError(Exception):
    pass


def jwt_verification_enabled() -> bool:
    return bool(settings.ACS_VERIFY_JWT and settings.ACS_RESOURCE_ID)


class _JwksCache:
    """Signing keys by `kid`, refreshed when an unknown `kid` shows up, at most once a minute."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, Any] = {}
        self._url = ""
        self._fetched_at = float("-inf")

    def key_for(self, kid: str, url: str) -> Any:
        with self._lock:
            if url != self._url:
                self._keys, self._url, self._fetched_at = {}, url, float("-inf")
            if kid not in self._keys and time.monotonic() - self._fetched_at >= JWKS_REFRESH_INTERVAL:
                self._refresh()
            key = self._keys.get(kid)
        if key is None:
            raise AcsAuthenticationError(f"unknown signing key {kid!r}")
        return key

    def _refresh(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            jwk_set = jwt.PyJWKClient(self._url, cache_jwk_set=False, timeout=5).get_jwk_set()
        except jwt.PyJWKClientError as error:
            logger.warning("Could not fetch ACS signing keys from %s: %s", self._url, error)
            return
        self._keys = {key.key_id: key.key for key in jwt_keys(jwk_set) if key.key_id}

    def clear(self) -> None:
        with self._lock:
            self._keys, self._url, self._fetched_at = {}, "", float("-inf")


def jwt_keys(jwk_set: jwt.PyJWKSet) -> list[jwt.PyJWK]:
    return [key for key in jwk_set.keys if key.key_type == "RSA"]


jwks_cache = _JwksCache()


def verify_acs_authorization(authorization: str | None) -> dict[str, Any]:
    """Check an `Authorization: Bearer <JWT>` header value and return the token's claims.

    May fetch the JWKS over the network: call it from a thread, not the event loop.
    """
    if not authorization or not authorization.startswith("Bearer "):
        raise AcsAuthenticationError("missing Bearer token")
    token = authorization.removeprefix("Bearer ").strip()
    try:
        header = jwt.get_unverified_header(token)
        key = jwks_cache.key_for(str(header.get("kid", "")), settings.ACS_JWKS_URL)
        return jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            issuer=settings.ACS_JWT_ISSUER,
            audience=settings.ACS_RESOURCE_ID,
            options={"require": ["exp", "iss", "aud"]},
            leeway=30,
        )
    except jwt.PyJWTError as error:
        raise AcsAuthenticationError(str(error)) from None
