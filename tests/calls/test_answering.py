"""Once Event Grid has had its 200, the ring is Callscribe's to answer: retried while ACS cannot be
reached, and marked unanswered, with the reason, when it cannot be answered in time."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

from calls.models import Call, CallEvent
from emulator.testing import RunningEmulator
from tests.calls.acs_servers import INCOMING_CALL_SECRET, emulated_acs_settings, incoming_call_event, wait_for
from tests.conftest import session_cookie
from tests.servers import AppServer, free_port, run_app_server

pytestmark = pytest.mark.django_db(transaction=True)

METRICS_TOKEN = "answering-metrics"


class Forwarder:
    """A TCP port that refuses connections until `open()`, then forwards them to `target_port`:
    ACS unreachable for a while, then back."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self._listener: socket.socket | None = None

    def open(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with source, sink:
        while data := source.recv(65536):
            sink.sendall(data)


@contextmanager
def app_answering_through(endpoint: str, emulator: RunningEmulator, **environment: str) -> Iterator[AppServer]:
    with run_app_server(
        **{
            **emulated_acs_settings(emulator),
            "ACS_CONNECTION_STRING": f"endpoint={endpoint}/;accesskey={emulator.access_key}",
        },
        METRICS_TOKEN=METRICS_TOKEN,
        **environment,
    ) as server:
        yield server


def metric(server: AppServer, line_start: str) -> float:
    page = requests.get(
        f"{server.base_url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
    ).text
    values = [float(line.rsplit(" ", 1)[1]) for line in page.splitlines() if line.startswith(line_start)]
    return sum(values)


def incoming_call(server: AppServer, event_id: str, context: str) -> requests.Response:
    event = incoming_call_event(event_id, context)
    return requests.post(f"{server.base_url}/api/incoming-call?secret={INCOMING_CALL_SECRET}", json=[event], timeout=30)


def test_a_ring_that_acs_refuses_to_answer_shows_as_unanswered_with_the_reason(
    emulator: RunningEmulator, supervisor
) -> None:
    with app_answering_through(emulator.base_url, emulator) as app:
        assert incoming_call(app, "ring-unknown-context", "a context ACS never issued").status_code == 200

        call = wait_for(
            lambda: Call.objects.filter(server_call_id="server-ring-unknown-context", state="unanswered").first(),
            what="the call marked unanswered",
        )
        assert "Answering the call failed: ACS answered HTTP 4" in call.end_reason
        assert CallEvent.objects.filter(call=call, type="Callscribe.CallUnanswered").exists()
        page = requests.get(
            f"{app.base_url}/calls/{call.pk}/", headers={"Cookie": session_cookie(supervisor)}, timeout=10
        ).text
        assert "Unanswered" in page and "Not answered: Answering the call failed" in page
        assert metric(app, 'callscribe_calls_unanswered_total{reason="refused"}') == 1
        assert metric(app, "callscribe_answer_retries_total") == 0  # a refusal is not worth a second try


def test_a_ring_is_answered_once_acs_can_be_reached_again(emulator: RunningEmulator) -> None:
    acs_for_a_moment = Forwarder(int(emulator.base_url.rsplit(":", 1)[1]))
    with app_answering_through(f"http://127.0.0.1:{acs_for_a_moment.port}", emulator) as app:
        rang = emulator.ring(f"{app.base_url}/api/incoming-call?secret={INCOMING_CALL_SECRET}", script="short_call")
        time.sleep(1.5)  # every answer so far found nothing listening
        acs_for_a_moment.open()
        try:
            call = wait_for(
                lambda: Call.objects.filter(server_call_id=rang["server_call_id"], state="connected").first(),
                timeout=15,
                what="the call answered and connected",
            )
            assert CallEvent.objects.filter(call=call, type="Callscribe.CallAnswered").exists()
            assert metric(app, "callscribe_answer_retries_total") >= 2
            assert metric(app, "callscribe_calls_answered_total") == 1
            wait_for(lambda: Call.objects.get(pk=call.pk).state == "disconnected", timeout=20, what="the script's end")
        finally:
            acs_for_a_moment.close()


def test_a_ring_acs_never_answers_in_time_is_given_up_at_the_deadline(emulator: RunningEmulator) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    with app_answering_through(nowhere, emulator, ANSWER_DEADLINE_SECONDS="2") as app:
        started = time.monotonic()
        assert incoming_call(app, "ring-nobody-home", "context-nobody-home").status_code == 200

        call = wait_for(
            lambda: Call.objects.filter(server_call_id="server-ring-nobody-home", state="unanswered").first(),
            timeout=10,
            what="the call marked unanswered",
        )
        assert time.monotonic() - started < 5
        assert "could not be reached" in call.end_reason and "tried" in call.end_reason
        assert metric(app, 'callscribe_calls_unanswered_total{reason="deadline"}') == 1
        assert metric(app, "callscribe_answer_retries_total") >= 2
