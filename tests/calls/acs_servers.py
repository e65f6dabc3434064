"""The ACS emulator and a daphne app server wired to it, for the call-control, webhook and recovery tests.

Both run once per test session (real processes, real HTTP and websockets). The emulator signs its
callbacks and media-socket connections with a key written here, so tests can also sign callbacks of
their own that the app verifies against the emulator's JWKS.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pytest_django.fixtures import Settings as SettingsWrapper

from calls.models import Call, MediaStream
from emulator.control_client import ControlAPIError
from emulator.testing import RunningEmulator, run_emulator_in_subprocess
from emulator.tokens import TokenIssuer
from tests.conftest import session_cookie
from tests.servers import AppServer, run_app_server

INCOMING_CALL_SECRET = "ring-ring-test-secret"
T = TypeVar("T")


def write_private_key(path: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_bytes(pem)
    return path


@pytest.fixture(scope="session")
def emulator_key_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_private_key(tmp_path_factory.mktemp("acs") / "emulator-key.pem")


@pytest.fixture(scope="session")
def emulator(emulator_key_path: Path) -> Iterator[RunningEmulator]:
    """The emulator; calls it places play the 72 s support_call script unless told otherwise."""
    with run_emulator_in_subprocess(
        default_script="support_call", connect_delay=0.2, private_key_path=emulator_key_path
    ) as running:
        yield running


@pytest.fixture(scope="session")
def emulator_tokens(emulator: RunningEmulator, emulator_key_path: Path) -> TokenIssuer:
    """Mints tokens exactly as the emulator does, with its key."""
    return TokenIssuer(emulator.issuer, emulator.resource_id, emulator_key_path)


def emulated_acs_settings(emulator: RunningEmulator) -> dict[str, str]:
    """The settings that point the app at the emulator as its ACS resource, JWT checks on."""
    return {
        "ACS_CONNECTION_STRING": emulator.connection_string,
        "ACS_RESOURCE_ID": emulator.resource_id,
        "ACS_JWKS_URL": emulator.jwks_url,
        "ACS_JWT_ISSUER": emulator.issuer,
        "INCOMING_CALL_SECRET": INCOMING_CALL_SECRET,
    }


@pytest.fixture(scope="session")
def acs_app(emulator: RunningEmulator, django_db_setup: None, django_db_blocker: object) -> Iterator[AppServer]:
    """daphne serving Callscribe on the test database, talking to the emulator, with its recovery worker."""
    with run_app_server(
        **emulated_acs_settings(emulator),
        RECOVERY_WORKER="True",
        RECOVERY_POLL_INTERVAL="0.2",
    ) as server:
        yield server


@pytest.fixture
def acs_settings(settings: SettingsWrapper, emulator: RunningEmulator) -> SettingsWrapper:
    """This test process's settings pointed at the emulator, as the app server's are."""
    settings.ACS_CONNECTION_STRING = emulator.connection_string
    settings.ACS_RESOURCE_ID = emulator.resource_id
    settings.ACS_JWKS_URL = emulator.jwks_url
    settings.ACS_JWT_ISSUER = emulator.issuer
    settings.INCOMING_CALL_SECRET = INCOMING_CALL_SECRET
    return settings


def wait_for(condition: Callable[[], T], timeout: float = 10.0, what: str = "") -> T:
    """Poll until `condition()` is truthy and return it (each poll reads the database afresh)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")


@pytest.fixture
def end_calls(emulator: RunningEmulator) -> Iterator[Callable[[Call], Call]]:
    """Register calls to hang up at the end of the test, even a failed one, and wait until the app has
    recorded the end: a database flush racing a still-streaming call can deadlock."""
    calls: list[Call] = []

    def register(call: Call) -> Call:
        calls.append(call)
        return call

    yield register
    for call in calls:
        connection_id = Call.objects.filter(pk=call.pk).values_list("call_connection_id", flat=True).first()
        with contextlib.suppress(ControlAPIError):  # already ended
            emulator.hang_up(connection_id or "")
        with contextlib.suppress(AssertionError):
            wait_for(partial(_settled, call.pk), timeout=5, what="the call to end")


def _settled(call_id: object) -> bool:
    ended = not Call.objects.filter(pk=call_id).live().exists()
    return ended and not MediaStream.objects.filter(call_id=call_id, disconnected_at__isnull=True).exists()


def rest_requests(emulator: RunningEmulator, call_connection_id: str = "") -> list[tuple[str, str]]:
    """(method, path) of the Call Automation REST requests the emulator received, for one call if given."""
    return [
        (entry["method"], entry["path"])
        for entry in emulator.requests()
        if entry["path"].startswith("/calling/") and call_connection_id in entry["path"]
    ]


def incoming_call_event(event_id: str, context: str = "") -> dict[str, Any]:
    """Event Grid's IncomingCall from a phone (reference 3.4), as the tests post it themselves; its
    context is one ACS never issued unless one is given."""
    return {
        "id": event_id,
        "eventType": "Microsoft.Communication.IncomingCall",
        "eventTime": "2026-12-06T09:00:00Z",
        "data": {
            "from": {"rawId": "4:+14255550100", "kind": "phoneNumber", "phoneNumber": {"value": "+14255550100"}},
            "to": {"rawId": "8:acs:agent"},
            "incomingCallContext": context or f"context-{event_id}",
            "serverCallId": f"server-{event_id}",
        },
    }


def ring(emulator: RunningEmulator, app: AppServer, script: str = "support_call") -> dict[str, Any]:
    return emulator.ring(f"{app.base_url}/api/incoming-call?secret={INCOMING_CALL_SECRET}", script=script)


class StaffBrowser:
    """A logged-in browser session on the app server: session cookie plus CSRF token, as a page gets them."""

    def __init__(self, app: AppServer, user: Any) -> None:
        self.app = app
        self.session = requests.Session()
        name, _, value = session_cookie(user).partition("=")
        self.session.cookies.set(name, value, domain="127.0.0.1")
        self.get("/calls/new")  # any page with a form sets the CSRF cookie
        self.csrf_token = self.session.cookies.get("csrftoken", "")

    def get(self, path: str) -> requests.Response:
        return self.session.get(self.app.base_url + path, allow_redirects=False, timeout=20)

    def post(self, path: str, *, fetch: bool = True, data: dict[str, str] | None = None) -> requests.Response:
        headers = {"X-CSRFToken": self.csrf_token}
        if fetch:
            headers["Accept"] = "application/json"
        return self.session.post(
            self.app.base_url + path, headers=headers, data=data or {}, allow_redirects=False, timeout=30
        )


def signed_callback_headers(tokens: TokenIssuer) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {tokens.callback_token()}"}


def foreign_token(resource_id: str, issuer: str) -> str:
    """A well-formed ACS-looking JWT signed by a key that is not in the emulator's JWKS."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {"iss": issuer, "aud": resource_id, "exp": int(time.time()) + 300}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "not-a-known-key"})
