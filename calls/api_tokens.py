"""API tokens: how an integration (an agent desktop, an IVR) authenticates to the JSON API
(calls/api_views.py).

A key is random, shown once when it is made (`manage.py create_api_token`), and only its SHA-256
digest is stored, so the table gives nobody a usable key. It travels as `Authorization: Bearer <key>`,
as ACS's JWTs do to the webhooks (calls/authentication.py) and the metrics token to /metrics. A request
with a valid key acts as the token's user, with that user's permissions, and the access log names them.
ACS's JWTs cannot serve here: ACS signs them for its own requests only.
"""

from __future__ import annotations

import hashlib
import secrets

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from calls.models import ApiToken

KEY_PREFIX = "cs_"


def create_token(*, user: AbstractBaseUser, name: str) -> tuple[ApiToken, str]:
    """A new token for `user`, and its key: the only time the key exists outside the caller's hands."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, prefix=key[:10], digest=_digest(key))
    return token, key


def authenticate(authorization: str | None) -> ApiToken | None:
    """The token an `Authorization: Bearer <key>` header value names, if it is valid: not revoked, and its
    user still active. Notes when it was last used."""
    if not authorization or not authorization.startswith("Bearer "):
        return None
    key = authorization.removeprefix("Bearer ").strip()
    token = ApiToken.objects.select_related("user").filter(digest=_digest(key), revoked_at__isnull=True).first()
    if token is None or not token.user.is_active:
        return None
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token


def _digest(key: str) -> str:
    # A key has 256 random bits: a plain hash is enough, a slow password hash would add nothing.
    return hashlib.sha256(key.encode()).hexdigest()
