"""HMAC-SHA256 request signing (acs-protocol.md 5.1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from emulator import hmac_auth

KEY = "ZW11bGF0b3Itc2VjcmV0LWtleS0wMTIzNDU2Nzg5YWI="
SIGNATURE = "5JdSfk/+QkQWxfiLELrxZxmBtFURvczmp68BdgGvGPE="
PATH = "/calling/callConnections/abc:startMediaStreaming?api-version=2026-03-12"
DATE = "Wed, 25 Nov 2026 07:56:10 GMT"
HOST = "127.0.0.1:18080"
SIGNED_AT = datetime(2026, 11, 25, 7, 56, 10, tzinfo=UTC)


def signed_headers(body: bytes = b"{}", key: str = KEY) -> dict[str, str]:
    headers = hmac_auth.sign_headers(key, "POST", PATH, HOST, body, DATE)
    return {"host": HOST, **{name.lower(): value for name, value in headers.items()}}


def test_it_matches_the_reference_test_vector() -> None:
    body_hash = hmac_auth.content_hash(b"{}")
    assert body_hash == "RBNvo1WzZ4oRRq0W9+hknpT7T8If536DEMBg9hyq/4o="
    assert (
        hmac_auth.signature(KEY, "POST", PATH, DATE, HOST, body_hash) == "5JdSfk/+QkQWxfiLELrxZxmBtFURvczmp68BdgGvGPE="
    )
    assert hmac_auth.content_hash(b"") == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


def test_it_accepts_a_correctly_signed_request() -> None:
    headers = signed_headers()
    assert (
        headers["authorization"]
        == f"HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={SIGNATURE}"
    )
    hmac_auth.verify(KEY, "POST", PATH, headers, b"{}", now=SIGNED_AT + timedelta(minutes=1))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda h: h.update(host="127.0.0.1:18080/"), "signature does not match"),
        (lambda h: h.pop("authorization"), "HMAC-SHA256 scheme"),
        (lambda h: h.pop("x-ms-date"), "x-ms-date header is missing"),
        (lambda h: h.update({"x-ms-content-sha256": hmac_auth.content_hash(b"[]")}), "does not match the request body"),
        (lambda h: h.update(authorization=h["authorization"].replace("x-ms-date;", "")), "SignedHeaders"),
    ],
)
def test_it_rejects_a_tampered_request(change, message: str) -> None:
    headers = signed_headers()
    change(headers)
    with pytest.raises(hmac_auth.HmacError, match=message):
        hmac_auth.verify(KEY, "POST", PATH, headers, b"{}")


def test_it_rejects_another_key_and_a_stale_date() -> None:
    with pytest.raises(hmac_auth.HmacError, match="signature does not match"):
        hmac_auth.verify(KEY, "POST", PATH, signed_headers(key="b3RoZXIta2V5"), b"{}")
    with pytest.raises(hmac_auth.HmacError, match="too far"):
        hmac_auth.verify(KEY, "POST", PATH, signed_headers(), b"{}", now=SIGNED_AT + timedelta(hours=1))
