"""HMAC-SHA256 request signing as the Call Automation SDK does it (acs-protocol.md 5.1)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

SIGNED_HEADERS = "x-ms-date;host;x-ms-content-sha256"
MAX_CLOCK_SKEW = timedelta(minutes=15)


class HmacError(Exception):
    """The request is not signed, or not signed with our access key."""


def content_hash(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def signature(access_key: str, method: str, path_and_query: str, date: str, host: str, body_hash: str) -> str:
    string_to_sign = f"{method.upper()}\n{path_and_query}\n{date};{host};{body_hash}"
    digest = hmac.new(base64.b64decode(access_key), string_to_sign.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def sign_headers(
    access_key: str, method: str, path_and_query: str, host: str, body: bytes, date: str
) -> dict[str, str]:
    """The headers a client adds to sign a request; used by tests to build requests by hand."""
    body_hash = content_hash(body)
    sig = signature(access_key, method, path_and_query, date, host, body_hash)
    return {
        "x-ms-date": date,
        "x-ms-content-sha256": body_hash,
        "Authorization": f"HMAC-SHA256 SignedHeaders={SIGNED_HEADERS}&Signature={sig}",
    }


def verify(
    access_key: str,
    method: str,
    path_and_query: str,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime | None = None,
) -> None:
    """Raise HmacError unless the request carries a valid signature; `now=None` skips the clock check."""
    body_hash = headers.get("x-ms-content-sha256", "")
    if not hmac.compare_digest(body_hash, content_hash(body)):
        raise HmacError("x-ms-content-sha256 does not match the request body.")
    date = headers.get("x-ms-date", "")
    if not date:
        raise HmacError("The x-ms-date header is missing.")
    if now is not None:
        _check_clock(date, now)
    expected = signature(access_key, method, path_and_query, date, headers.get("host", ""), body_hash)
    if not hmac.compare_digest(_signature_from(headers.get("authorization", "")), expected):
        raise HmacError("The request signature does not match.")


def _signature_from(authorization: str) -> str:
    scheme, _, params = authorization.partition(" ")
    if scheme != "HMAC-SHA256":
        raise HmacError("The Authorization header must use the HMAC-SHA256 scheme.")
    fields = dict(part.split("=", 1) for part in params.split("&") if "=" in part)
    if fields.get("SignedHeaders", "").lower() != SIGNED_HEADERS:
        raise HmacError(f"SignedHeaders must be {SIGNED_HEADERS}.")
    return fields.get("Signature", "")


def _check_clock(date: str, now: datetime) -> None:
    try:
        sent = parsedate_to_datetime(date)
    except (TypeError, ValueError) as error:
        raise HmacError("The x-ms-date header is not an RFC 1123 date.") from error
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)
    if abs(now - sent) > MAX_CLOCK_SKEW:
        raise HmacError("The x-ms-date header is too far from the server clock.")
