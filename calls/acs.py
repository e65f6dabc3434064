"""Call Automation REST calls through the official SDK. The only module that imports it.

Every function takes plain values and returns plain values; every SDK or transport failure becomes
one `AcsError` with a message staff can read.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from azure.communication.callautomation import (
    CallAutomationClient,
    CallConnectionClient,
    MediaStreamingOptions,
    TranscriptionOptions,
)
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import AzureError, HttpResponseError
from django.conf import settings

from calls import tokens
from compat.azure_sdk import identifier_from_raw_id

logger = logging.getLogger(__name__)

# REST calls run inside staff requests and the recovery worker: fail within seconds, retry little.
CLIENT_OPTIONS = {"connection_timeout": 5, "read_timeout": 15, "retry_total": 2, "retry_backoff_factor": 0.5}


class AcsError(Exception):
    """A Call Automation request that failed: refused by ACS, or ACS could not be reached."""

    def __init__(self, message: str, *, status_code: int | None = None, error_code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.error_code = error_code

    @property
    def call_is_gone(self) -> bool:
        """ACS answers 404 for a call that ended (it forgets calls once they end)."""
        return self.status_code == 404


@dataclass(frozen=True)
class ConnectionInfo:
    """What ACS says about a call connection (CallConnectionProperties, reference 4.4)."""

    call_connection_id: str
    server_call_id: str
    correlation_id: str
    state: str
    media_streaming_state: str = ""
    transcription_state: str = ""


def parse_connection_string(connection_string: str) -> tuple[str, str]:
    """Return (endpoint, access key) from `endpoint=...;accesskey=...`.

    Parsed here because `from_connection_string()` forces https even for an http:// endpoint, and the
    endpoint must lose its trailing slash or the HMAC signature is wrong (reference 4.1, 6.12).
    """
    parts = {}
    for part in connection_string.split(";"):
        name, separator, value = part.strip().partition("=")
        if separator:
            parts[name.strip().lower()] = value.strip()
    endpoint, access_key = parts.get("endpoint", ""), parts.get("accesskey", "")
    if not endpoint or not access_key:
        raise AcsError("ACS_CONNECTION_STRING must look like endpoint=https://...;accesskey=... (it is empty or not)")
    if "://" not in endpoint:
        endpoint = f"https://{endpoint}"
    return endpoint.rstrip("/"), access_key


_clients: dict[str, CallAutomationClient] = {}
_clients_lock = threading.Lock()


def client() -> CallAutomationClient:
    """The client for the configured ACS resource, built once per connection string (it is thread-safe)."""
    connection_string = settings.ACS_CONNECTION_STRING
    with _clients_lock:
        if connection_string not in _clients:
            endpoint, access_key = parse_connection_string(connection_string)
            credential = AzureKeyCredential(access_key)
            _clients[connection_string] = CallAutomationClient(endpoint, credential, **CLIENT_OPTIONS)
        return _clients[connection_string]


def _connection(call_connection_id: str) -> CallConnectionClient:
    if not call_connection_id:
        raise AcsError("ACS has not given this call a call connection id yet.")
    return client().get_call_connection(call_connection_id)


@contextmanager
def _translated_errors(action: str) -> Iterator[None]:
    try:
        yield
    except HttpResponseError as error:
        code = getattr(error.error, "code", None) or ""
        detail = getattr(error.error, "message", None) or error.reason or str(error)
        answer = f"HTTP {error.status_code} ({code})" if code else f"HTTP {error.status_code}"
        message = f"{action} failed: ACS answered {answer}: {detail}"
        raise AcsError(message, status_code=error.status_code, error_code=code) from None
    except AzureError as error:
        raise AcsError(f"{action} failed: ACS could not be reached ({error.message})") from None


def _media_streaming_options(call_id: uuid.UUID) -> MediaStreamingOptions:
    return MediaStreamingOptions(
        transport_url=tokens.media_socket_url(call_id),
        transport_type="websocket",
        content_type="audio",
        audio_channel_type="unmixed",
        start_media_streaming=settings.START_MEDIA_STREAMING_ON_ANSWER,
    )


def _transcription_options(call_id: uuid.UUID, locale: str) -> TranscriptionOptions:
    return TranscriptionOptions(
        transport_url=tokens.media_socket_url(call_id),
        transport_type="websocket",
        locale=locale or settings.TRANSCRIPTION_LOCALE,
        start_transcription=settings.START_TRANSCRIPTION_ON_ANSWER,
        enable_intermediate_results=True,
    )


def _connection_info(properties: object) -> ConnectionInfo:
    media = getattr(properties, "media_streaming_subscription", None)
    transcription = getattr(properties, "transcription_subscription", None)
    return ConnectionInfo(
        call_connection_id=getattr(properties, "call_connection_id", None) or "",
        server_call_id=getattr(properties, "server_call_id", None) or "",
        correlation_id=getattr(properties, "correlation_id", None) or "",
        state=_text(getattr(properties, "call_connection_state", None)),
        media_streaming_state=_text(getattr(media, "state", None)),
        transcription_state=_text(getattr(transcription, "state", None)),
    )


def _text(value: object) -> str:
    """An SDK enum member or plain string as its wire value ("connected", "active")."""
    return str(getattr(value, "value", value) or "")


def answer_call(*, call_id: uuid.UUID, incoming_call_context: str, locale: str = "") -> ConnectionInfo:
    """Answer an incoming call with media streaming and transcription set up to our signed socket URL."""
    with _translated_errors("Answering the call"):
        properties = client().answer_call(
            incoming_call_context,
            tokens.callback_url(call_id),
            cognitive_services_endpoint=settings.COGNITIVE_SERVICES_ENDPOINT or None,
            media_streaming=_media_streaming_options(call_id),
            transcription=_transcription_options(call_id, locale),
        )
    return _connection_info(properties)


def create_call(
    *, call_id: uuid.UUID, target_raw_id: str, source_caller_id_number: str = "", locale: str = ""
) -> ConnectionInfo:
    """Place an outbound call to a raw ACS identifier (`4:+1425...` for a phone, `8:acs:...` for a user)."""
    source = identifier_from_raw_id(f"4:{source_caller_id_number}") if source_caller_id_number else None
    with _translated_errors("Placing the call"):
        properties = client().create_call(
            identifier_from_raw_id(target_raw_id),
            tokens.callback_url(call_id),
            source_caller_id_number=source,
            cognitive_services_endpoint=settings.COGNITIVE_SERVICES_ENDPOINT or None,
            media_streaming=_media_streaming_options(call_id),
            transcription=_transcription_options(call_id, locale),
        )
    return _connection_info(properties)


def get_call_properties(call_connection_id: str) -> ConnectionInfo:
    with _translated_errors("Reading the call's state"):
        return _connection_info(_connection(call_connection_id).get_call_properties())


def hang_up(call_connection_id: str) -> None:
    """End the call for everyone (POST :terminate), not just leave it."""
    with _translated_errors("Hanging up"):
        _connection(call_connection_id).hang_up(is_for_everyone=True)


def start_media_streaming(call_connection_id: str, *, operation_context: str = "") -> None:
    with _translated_errors("Starting media streaming"):
        _connection(call_connection_id).start_media_streaming(operation_context=operation_context or None)


def stop_media_streaming(call_connection_id: str, *, operation_context: str = "") -> None:
    with _translated_errors("Stopping media streaming"):
        _connection(call_connection_id).stop_media_streaming(operation_context=operation_context or None)


def start_transcription(call_connection_id: str, *, locale: str = "", operation_context: str = "") -> None:
    with _translated_errors("Starting transcription"):
        _connection(call_connection_id).start_transcription(
            locale=locale or None, operation_context=operation_context or None
        )


def stop_transcription(call_connection_id: str, *, operation_context: str = "") -> None:
    with _translated_errors("Stopping transcription"):
        _connection(call_connection_id).stop_transcription(operation_context=operation_context or None)


def update_transcription(call_connection_id: str, *, locale: str, operation_context: str = "") -> None:
    with _translated_errors("Changing the transcription language"):
        _connection(call_connection_id).update_transcription(locale=locale, operation_context=operation_context or None)
