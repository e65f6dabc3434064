"""The emulator's signing key, its JWKS, and the RS256 tokens on callbacks and media sockets (acs-protocol.md 2)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

CALLBACK_TOKEN_LIFETIME = 5 * 60
WEBSOCKET_TOKEN_LIFETIME = 24 * 60 * 60


class TokenIssuer:
    def __init__(self, issuer: str, audience: str, private_key_path: Path | None = None) -> None:
        self.issuer = issuer
        self.audience = audience
        self._key = _load_key(private_key_path) if private_key_path else _new_key()
        self._public_jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        self.kid = _thumbprint(self._public_jwk)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{**self._public_jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def openid_configuration(self, base_url: str) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{base_url}/calling/keys",
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
        }

    def mint(self, lifetime: int) -> str:
        now = int(time.time())
        # jti makes every token unique, even two minted in the same second for the same socket.
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})

    def callback_token(self) -> str:
        return self.mint(CALLBACK_TOKEN_LIFETIME)

    def websocket_token(self) -> str:
        return self.mint(WEBSOCKET_TOKEN_LIFETIME)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _load_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key.")
    return key


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint, a stable key id for a given key."""
    canonical = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
