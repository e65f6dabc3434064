"""daphne's HTTP requests, built with Twisted's form parsing off.

daphne hands a request's body to Django untouched, but its `WebRequest` is a Twisted `http.Request`
made with Twisted's default, `parsePOSTFormSubmission=True`: before daphne passes a POST on, Twisted
parses a multipart or URL-encoded body into `request.args`, which nothing reads, on the event loop.
Twisted's parser took 0.45 s over a 21 MB multipart body (timed in one process, the parser alone),
time the loop would hold every live call's audio and transcript; a malformed body got Twisted's bare
400 instead of the application's answer. Every other POST paid 32 us (timed alike) for reading its
Content-Type through `email.headerregistry`, which makes two classes each time (garbage for the
collector: docs/performance.md, "Garbage collection").

`install()` (config/asgi.py) turns that parsing off with Twisted's public constructor argument. The
reach into daphne is where to pass it: `HTTPFactory.buildProtocol` names its request class through
the module's global `WebRequest`, replaced here by a subclass.
"""

from __future__ import annotations

import inspect
from typing import Any

from daphne import http_protocol
from twisted.web import http

from compat import incompatible, require_source

# sha256 of daphne 4.2.3's HTTPFactory.buildProtocol (compat.source_fingerprint).
BUILD_PROTOCOL_FINGERPRINT = "35e878a6e0e41af2"

_daphnes_request = http_protocol.WebRequest


class UnparsedWebRequest(_daphnes_request):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, parsePOSTFormSubmission=False, **kwargs)


def install() -> None:
    http_protocol.WebRequest = UnparsedWebRequest


def check() -> None:
    require_source("daphne", http_protocol.HTTPFactory.buildProtocol, BUILD_PROTOCOL_FINGERPRINT)
    if "parsePOSTFormSubmission" not in inspect.signature(http.Request.__init__).parameters:
        raise incompatible("Twisted", "http.Request no longer takes parsePOSTFormSubmission")
