"""Pause for sensitive data, end to end: the emulator plays a call into a real daphne that captures audio,
staff pause and resume it from the call page or an integration through the JSON API, and the real SDK
asks the emulator to stop and start transcription."""

from __future__ import annotations

import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import requests
from django.contrib.auth.models import User
from pytest_django.fixtures import Settings as SettingsWrapper

from calls import recovery
from calls.api_tokens import create_token
from calls.audio_files import audio_file_name
from calls.models import AccessLog, Call, CallEvent, Gap, MediaStream, RecoveryJob, TranscriptSegment
from emulator.script import FRAME_SECONDS, ScriptLibrary
from emulator.testing import RunningEmulator
from tests.calls.acs_servers import (
    StaffBrowser,
    emulated_acs_settings,
    rest_requests,
    ring,
    wait_for,
)
from tests.servers import AppServer, run_app_server

pytestmark = pytest.mark.django_db(transaction=True)

Status = Call.StreamStatus
PAUSE_LIMIT = 8  # the app server's SENSITIVE_PAUSE_MAX_SECONDS
SCRIPTS = Path(__file__).resolve().parents[2] / "emulator" / "scripts"


@dataclass
class CapturingApp:
    server: AppServer
    audio_dir: Path


@pytest.fixture(scope="module")
def capturing_app(
    emulator: RunningEmulator,
    django_db_setup: None,
    django_db_blocker: object,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[CapturingApp]:
    """daphne talking to the emulator, capturing audio, without a recovery worker of its own."""
    audio_dir = tmp_path_factory.mktemp("paused-audio")
    with run_app_server(
        **emulated_acs_settings(emulator),
        AUDIO_CAPTURE="True",
        AUDIO_CAPTURE_DIR=str(audio_dir),
        STREAM_STATS_INTERVAL="0.5",
        SENSITIVE_PAUSE_MAX_SECONDS=str(PAUSE_LIMIT),
    ) as server:
        yield CapturingApp(server, audio_dir)


def answered_call(emulator: RunningEmulator, app: AppServer, end_calls: Callable[[Call], Call]) -> Call:
    rang = ring(emulator, app)
    call = end_calls(
        wait_for(lambda: Call.objects.filter(server_call_id=rang["server_call_id"]).first(), what="the call")
    )
    wait_for(lambda: statuses(call) == (Status.ACTIVE, Status.ACTIVE), what="streaming and transcription")
    wait_for(lambda: call.segments.count() >= 1, timeout=15, what="the first line")
    return Call.objects.get(pk=call.pk)


def statuses(call: Call) -> tuple[str, str]:
    call = Call.objects.get(pk=call.pk)
    return call.media_streaming_status, call.transcription_status


def acs_event(call: Call, name: str) -> CallEvent | None:
    return CallEvent.objects.filter(call=call, type=f"Microsoft.Communication.{name}").first()


def run_worker_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Run recovery passes in this process, as a worker in any process would, until `condition()`."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        recovery.run_once()
        time.sleep(0.2)


def lines_received(call: Call, start: datetime, end: datetime) -> list[str]:
    segments = TranscriptSegment.objects.filter(call=call, received_at__gt=start, received_at__lt=end)
    return list(segments.values_list("text", flat=True))


def hang_up_and_settle(emulator: RunningEmulator, call: Call) -> Call:
    emulator.hang_up(call.call_connection_id or "")
    wait_for(lambda: not Call.objects.filter(pk=call.pk).live().exists(), what="the call to end")
    wait_for(
        lambda: not MediaStream.objects.filter(call=call, disconnected_at__isnull=True).exists(),
        what="the media sockets to close",
    )
    return Call.objects.get(pk=call.pk)


def samples(path: Path) -> np.ndarray:
    with wave.open(str(path)) as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")


def test_staff_pause_transcription_and_capture_and_resume_them(
    capturing_app: CapturingApp, emulator: RunningEmulator, staff_user: User, end_calls: Callable[[Call], Call]
) -> None:
    app = capturing_app.server
    call = answered_call(emulator, app, end_calls)
    browser = StaffBrowser(app, staff_user)
    before_pause = max(call.segments.values_list("offset_ticks", flat=True))

    paused = browser.post(f"/calls/{call.id}/pause")

    assert paused.status_code == 200, paused.text
    assert paused.json()["call"]["transcription_status"] == Status.PAUSED
    stopped = wait_for(lambda: acs_event(call, "TranscriptionStopped"), what="TranscriptionStopped")
    assert statuses(call) == (Status.ACTIVE, Status.PAUSED)  # ACS's Stopped is the stop the pause asked for
    gap = Gap.objects.get(call=call, reason=Gap.Reason.SENSITIVE_PAUSE)
    assert gap.ended_at is None and gap.detail.endswith("paused for sensitive data by alice")
    page = browser.get(f"/calls/{call.id}/").text
    assert "paused for sensitive data by alice" in page
    time.sleep(4)  # the caller reads out a card number

    resumed = browser.post(f"/calls/{call.id}/resume")

    assert resumed.status_code == 200, resumed.text
    gap.refresh_from_db()
    assert gap.ended_at is not None and gap.detail.endswith("paused for sensitive data by alice; resumed by alice")
    wait_for(lambda: statuses(call) == (Status.ACTIVE, Status.ACTIVE), what="transcription again")
    after = wait_for(
        lambda: TranscriptSegment.objects.filter(call=call, received_at__gt=gap.ended_at).first(),
        timeout=15,
        what="a line after the pause",
    )
    # Nothing was transcribed from ACS's stop until the resume (a final already on its way may land
    # just after the stop request).
    assert lines_received(call, stopped.received_at + timedelta(seconds=0.5), gap.ended_at) == []
    # The lines after the pause carry on along the call's timeline, though ACS restarted its offsets.
    pause_length = (gap.ended_at - gap.started_at).total_seconds() * 10_000_000
    assert after.offset_ticks > before_pause + pause_length

    base = f"/calling/callConnections/{call.call_connection_id}"
    requested = rest_requests(emulator, call.call_connection_id or "")
    assert requested == [("POST", f"{base}:stopTranscription"), ("POST", f"{base}:startTranscription")]
    actions = AccessLog.objects.filter(call=call, user=staff_user).exclude(action="view").order_by("id")
    assert list(actions.values_list("action", flat=True)) == ["pause", "resume"]
    history = set(CallEvent.objects.filter(call=call).values_list("type", flat=True))
    assert {"Callscribe.SensitivePauseStarted", "Callscribe.SensitivePauseEnded"} <= history
    assert "Microsoft.Communication.TranscriptionStarted" in history

    call = hang_up_and_settle(emulator, call)
    _assert_nothing_captured_while_paused(capturing_app.audio_dir, emulator, call, gap)

    page = browser.get(f"/calls/{call.id}/").text
    assert "Paused for sensitive data" in page  # the gap's kind on the timeline
    assert "for sensitive data)" in page  # coverage counts the pause apart
    text = browser.get(f"/calls/{call.id}/transcript.txt").text
    note = "[Transcription and audio capture paused for sensitive data by alice; resumed by alice]"
    lines = text.splitlines()
    [note_index] = [index for index, line in enumerate(lines) if line.endswith(note)]
    assert 0 < note_index < len(lines) - 1  # between what was said before and after
    assert note in browser.get(f"/calls/{call.id}/transcript.vtt").text


def _assert_nothing_captured_while_paused(audio_dir: Path, emulator: RunningEmulator, call: Call, gap: Gap) -> None:
    """Every participant's file is silent over the pause, though the emulator sent speech then; it was
    written as silence, not left out, so the file stays in step with the call."""
    audio_start = MediaStream.objects.get(call=call, kind=MediaStream.Kind.AUDIO).connected_at
    rate = 16000
    margin = timedelta(seconds=0.3)

    def index(moment: datetime) -> int:
        return round((moment - audio_start).total_seconds() * rate)

    quiet = slice(index(gap.started_at + margin), index(gap.ended_at - margin))
    before = slice(0, index(gap.started_at - margin))
    tracks = [samples(audio_dir / str(call.id) / audio_file_name(p.raw_id)) for p in call.participants.all()]
    assert len(tracks) == 2
    assert all(not track[quiet].any() for track in tracks)
    assert any(track[before].any() for track in tracks)
    assert all(len(track) >= index(gap.ended_at) for track in tracks)

    # The script had someone speaking over the pause (script time 0 is the emulator's CallConnected).
    rendered = ScriptLibrary(SCRIPTS).rendered("support_call", rate)
    connected = emulator.call(call.call_connection_id or "")["timing"]["connected_at"]
    first = int((gap.started_at.timestamp() + margin.total_seconds() - connected) / FRAME_SECONDS)
    last = int((gap.ended_at.timestamp() - margin.total_seconds() - connected) / FRAME_SECONDS)
    spoken = {flags[first:last].count(1) for flags in rendered.speaking.values()}
    assert max(spoken) > 25  # over half a second of speech at least


def test_a_pause_an_integration_forgets_ends_by_itself_through_any_worker(
    capturing_app: CapturingApp,
    emulator: RunningEmulator,
    acs_settings: SettingsWrapper,
    staff_user: User,
    end_calls: Callable[[Call], Call],
) -> None:
    app = capturing_app.server
    call = answered_call(emulator, app, end_calls)
    _, key = create_token(user=staff_user, name="IVR payment flow")

    response = requests.post(
        f"{app.base_url}/api/calls/{call.id}/pause", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["ok"] is True and answer["call"]["paused"] is True
    resumes_by = datetime.fromisoformat(answer["call"]["resumes_by"])
    assert resumes_by - datetime.fromisoformat(answer["call"]["paused_since"]) == timedelta(seconds=PAUSE_LIMIT)
    wait_for(lambda: acs_event(call, "TranscriptionStopped"), what="TranscriptionStopped")
    assert AccessLog.objects.get(call=call, action="pause").detail == "api: IVR payment flow"

    # The app server runs no worker: the pause lives in the database, so a worker in another process
    # (this one, which never saw the pause being made) ends it once it is due, and not before.
    recovery.run_once()
    assert statuses(call)[1] == Status.PAUSED
    job = RecoveryJob.objects.get(call=call, kind=RecoveryJob.Kind.PAUSE_LIMIT)
    run_worker_until(lambda: statuses(call)[1] == Status.ACTIVE, PAUSE_LIMIT + 10, "transcription again")

    gap = Gap.objects.get(call=call, reason=Gap.Reason.SENSITIVE_PAUSE)
    assert gap.detail.endswith(f"by alice; resumed by itself after {PAUSE_LIMIT} s")
    assert gap.ended_at >= job.due_at
    job.refresh_from_db()
    assert job.finished_at is not None
    wait_for(
        lambda: TranscriptSegment.objects.filter(call=call, received_at__gt=gap.ended_at).exists(),
        timeout=15,
        what="a line after the pause",
    )
    assert CallEvent.objects.filter(call=call, type="Microsoft.Communication.TranscriptionStarted").count() == 2
