"""RS256 tokens that verify against the emulator's JWKS, like ACS's (acs-protocol.md 2)."""

from __future__ import annotations

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from emulator.tokens import TokenIssuer

ISSUER = "https://acscallautomation.communication.azure.com"
AUDIENCE = "00000000-0000-0000-0000-00000000ac5e"


def decode(issuer: TokenIssuer, token: str) -> dict:
    key = jwt.PyJWKSet.from_dict(issuer.jwks())[jwt.get_unverified_header(token)["kid"]]
    return jwt.decode(token, key, algorithms=["RS256"], issuer=ISSUER, audience=AUDIENCE)


def test_it_mints_tokens_that_verify_against_its_jwks() -> None:
    issuer = TokenIssuer(ISSUER, AUDIENCE)
    callback, socket = issuer.callback_token(), issuer.websocket_token()
    assert jwt.get_unverified_header(callback) == {"alg": "RS256", "kid": issuer.kid, "typ": "JWT"}
    claims = decode(issuer, callback)
    assert claims["exp"] - claims["iat"] == 300
    assert claims["nbf"] == claims["iat"]
    assert decode(issuer, socket)["exp"] - decode(issuer, socket)["iat"] == 24 * 3600
    assert callback != issuer.callback_token()


def test_it_serves_an_openid_configuration() -> None:
    config = TokenIssuer(ISSUER, AUDIENCE).openid_configuration("http://127.0.0.1:8089")
    assert config["issuer"] == ISSUER
    assert config["jwks_uri"] == "http://127.0.0.1:8089/calling/keys"


def test_it_loads_a_pem_key_and_keeps_its_key_id(tmp_path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path = tmp_path / "acs.pem"
    path.write_bytes(pem)
    first, second = TokenIssuer(ISSUER, AUDIENCE, path), TokenIssuer(ISSUER, AUDIENCE, path)
    assert first.kid == second.kid
    assert decode(second, first.websocket_token())["aud"] == AUDIENCE
