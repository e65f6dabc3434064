"""The dashboard in a real browser: Debian's headless Chromium against a real daphne, fed by a real
media-socket client playing ACS."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from django.contrib.auth.models import User

from calls.audio_files import audio_file_name
from calls.models import Call
from calls.tokens import callback_url
from tests.browser.support import logged_in_page, media_socket, off_the_loop, send_audio, session_cookie, wait_until
from tests.calls import conftest as given
from tests.servers import AppServer
from tests.streaming import acs_packets as acs

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SECOND = 10_000_000  # ACS ticks


def new_call() -> Call:
    return off_the_loop(given.new_call)


def end(call: Call) -> Call:
    return off_the_loop(given.end, call)


def say(call: Call, participant: str, text: str, at_ms: int) -> object:
    return off_the_loop(given.say, call, participant, text, at_ms)


@pytest.fixture
def page(browser: object, dashboard_server: AppServer, staff_user: User) -> Iterator[object]:
    with logged_in_page(browser, dashboard_server, staff_user, accept_downloads=True) as page:
        yield page


def live_status(page: object) -> object:
    return page.locator("[data-live-status]").first


def test_staff_log_in_and_watch_a_call_live(browser: object, dashboard_server: AppServer, staff_user: User) -> None:
    from playwright.sync_api import expect

    call = new_call()
    context = browser.new_context(base_url=dashboard_server.base_url)
    page = context.new_page()
    page.goto("/calls/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/calls/$"))
    row = page.locator(f'tr[data-call-id="{call.id}"]')
    expect(row).to_be_visible()
    expect(live_status(page)).to_have_attribute("data-state", "live")

    with media_socket(dashboard_server, call.id) as media:
        media.send(acs.transcription_metadata())
        media.send(acs.transcription_data(acs.CALLER, "My internet is down.", 1 * SECOND))
        expect(row.locator('[data-field="last"]')).to_have_text("Customer +14255550100: My internet is down.")
        expect(row.locator('[data-field="transcription_status"]')).to_have_text("Active")

        row.get_by_role("link").click()
        expect(page.locator(".line[data-sequence]")).to_have_count(1)
        expect(live_status(page)).to_have_attribute("data-state", "live")
        media.send(acs.transcription_data(acs.AGENT, "let me", 4 * SECOND, final=False))
        partial = page.locator(".line.partial")
        expect(partial).to_have_text(re.compile("let me"))
        media.send(acs.transcription_data(acs.AGENT, "let me check", 4 * SECOND, final=False))
        expect(partial).to_have_text(re.compile("let me check"))
        assert partial.evaluate("line => getComputedStyle(line).color") != "rgb(29, 35, 48)"  # greyed
        media.send(acs.transcription_data(acs.AGENT, "Let me check that for you.", 4 * SECOND))
        expect(page.locator(".line.partial")).to_have_count(0)
        lines = page.locator(".line[data-sequence] .text")
        expect(lines).to_have_text(["My internet is down.", "Let me check that for you."])
        # The agent's turn began with intermediate text, named from the raw id; the final names them as a reload would.
        expect(page.locator(".turn .speaker")).to_have_text(["Customer +14255550100", "Customer ACS user …00000001"])
        expect(page.locator(".turn .speaker").last).to_have_attribute("title", acs.AGENT)
    context.close()


def test_search_and_jump_to_the_moment(page: object) -> None:
    from playwright.sync_api import expect

    call = end(new_call())
    for index in range(40):
        say(call, acs.CALLER, f"Filler line number {index} about nothing much.", index * 3000)
    target = say(call, acs.AGENT, "Your router is blinking because of the firmware update.", 130_000)
    page.goto("/calls/")
    page.get_by_label("Search transcripts").fill('"router is blinking" -modem')
    page.get_by_role("button", name="Search").click()
    hit = page.locator(".hit").first
    expect(hit.locator("mark").first).to_have_text(re.compile("router", re.IGNORECASE))
    hit.get_by_role("link").click()
    expect(page).to_have_url(re.compile(rf"/calls/{call.id}/\?t=130000#segment-{target.sequence}$"))
    line = page.locator(f"#segment-{target.sequence}")
    expect(line).to_have_class(re.compile(r"\btarget\b"))
    expect(line).to_be_in_viewport()
    expect(page.locator(".line[data-sequence]").first).not_to_be_in_viewport()


def test_audio_plays_from_a_clicked_word_and_highlights_the_word_spoken(
    page: object, dashboard_server: AppServer, audio_dir: Path
) -> None:
    from playwright.sync_api import expect

    call = new_call()
    with media_socket(dashboard_server, call.id) as media:
        send_audio(media, acs.CALLER, seconds=4)
        media.send(acs.transcription_metadata())
        media.send(acs.transcription_data(acs.CALLER, "one two three four five six seven eight", 0, 4 * SECOND))
    wav = audio_dir / str(call.id) / audio_file_name(acs.CALLER)
    wait_until(lambda: wav.is_file() and wav.stat().st_size >= 44 + 4 * 32000, message="the captured WAV")

    page.goto(f"/calls/{call.id}/")
    audio = page.locator("audio[data-audio]")
    expect(audio).to_be_attached()
    page.wait_for_function("() => document.querySelector('audio').readyState >= 1")
    assert page.evaluate("document.querySelector('audio').duration") == pytest.approx(4.0, abs=0.1)
    words = page.locator(".word")
    expect(words).to_have_count(8)
    words.nth(2).click()  # "three", 1.0 s to 1.5 s
    expect(page.locator(".word.current")).to_have_text(re.compile("three|four"))
    expect(page.locator(".word.current")).to_have_text(re.compile("five|six|seven"), timeout=5000)
    assert page.evaluate("document.querySelector('audio').paused") is False


def test_each_export_downloads(page: object) -> None:
    call = end(new_call())
    say(call, acs.CALLER, "Hello, I need help with my bill.", 1000)
    say(call, acs.AGENT, "Sure, let me look.", 4000)
    page.goto(f"/calls/{call.id}/")
    expected = {
        "txt": "[00:00:01.000] Customer +14255550100: Hello, I need help with my bill.",
        "json": '"text": "Sure, let me look."',
        "vtt": "00:00:04.000 --> 00:00:06.000",
        "srt": "2\n00:00:04,000 --> 00:00:06,000",
    }
    for export_format, content in expected.items():
        with page.expect_download() as download:
            page.locator(f'[data-export="{export_format}"]').click()
        assert download.value.suggested_filename == f"call-{call.id}.{export_format}"
        assert content in Path(download.value.path()).read_text()


def test_a_dropped_socket_reconnects_without_losing_or_repeating_lines(
    page: object, dashboard_server: AppServer
) -> None:
    from playwright.sync_api import expect

    call = new_call()
    say(call, acs.CALLER, "First line.", 1000)
    page.goto(f"/calls/{call.id}/")
    expect(live_status(page)).to_have_attribute("data-state", "live")
    lines = page.locator(".line[data-sequence] .text")
    with media_socket(dashboard_server, call.id) as media:
        media.send(acs.transcription_metadata())
        media.send(acs.transcription_data(acs.CALLER, "Second line.", 3 * SECOND))
        expect(lines).to_have_text(["First line.", "Second line."])

        page.evaluate("window.callscribeLive.socket.close()")
        media.send(acs.transcription_data(acs.AGENT, "Said while the page was away.", 6 * SECOND))
        page.wait_for_function("() => window.callscribeLive.connections === 2")
        media.send(acs.transcription_data(acs.AGENT, "Said after it came back.", 9 * SECOND))
        expect(lines).to_have_text(
            ["First line.", "Second line.", "Said while the page was away.", "Said after it came back."]
        )
    sequences = page.eval_on_selector_all(".line[data-sequence]", "lines => lines.map(line => line.dataset.sequence)")
    assert len(sequences) == len(set(sequences)) == 4
    assert Call.objects.get(pk=call.pk).segments.count() == 4


def test_the_admin_change_page_shows_the_transcript_live(
    browser: object, dashboard_server: AppServer, django_user_model: type[User]
) -> None:
    from playwright.sync_api import expect

    admin = django_user_model.objects.create_superuser("erin", password="x")
    call = new_call()
    context = browser.new_context(base_url=dashboard_server.base_url)
    context.add_cookies([session_cookie(admin, dashboard_server)])
    page = context.new_page()
    page.goto(f"/admin/calls/call/{call.id}/change/")
    expect(live_status(page)).to_have_attribute("data-state", "live")
    with media_socket(dashboard_server, call.id) as media:
        media.send(acs.transcription_metadata())
        media.send(acs.transcription_data(acs.CALLER, "Hello from the admin.", 1 * SECOND))
        expect(page.locator(".callscribe-live .line[data-sequence] .text")).to_have_text(["Hello from the admin."])
    context.close()


def acs_ends_the_call(server: AppServer, call: object) -> None:
    """ACS's CallDisconnected, posted to the call's signed callback URL as ACS would."""
    disconnected = {
        "id": str(uuid.uuid4()),
        "source": "calling/callConnections/acs-call-1",
        "type": "Microsoft.Communication.CallDisconnected",
        "data": {"callConnectionId": "acs-call-1", "serverCallId": "server-1", "correlationId": "corr-1"},
        "time": "2026-11-25T10:00:00.1234567+00:00",
        "specversion": "1.0",
    }
    callback = server.base_url + "/api/callbacks?" + urlsplit(callback_url(call.id)).query
    assert requests.post(callback, json=[disconnected], timeout=10).status_code == 200


def test_the_end_of_a_call_reads_the_same_live_and_after_a_reload(page: object, dashboard_server: AppServer) -> None:
    from playwright.sync_api import expect

    call = new_call()
    page.goto(f"/calls/{call.id}/")
    expect(live_status(page)).to_have_attribute("data-state", "live")
    started = page.locator("dt:text-is('Started') + dd").text_content()
    acs_ends_the_call(dashboard_server, call)

    ended = page.locator('[data-call-field="ended_at"]')
    expect(ended).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))  # as "Started" reads
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", started.strip())
    shown_live = ended.text_content()
    page.reload()
    expect(ended).to_have_text(shown_live)


# What a reader sees on the call page: every visible call fact, participant, audio track, gap and the
# live-feed status, as text.
VISIBLE_FACTS = """() => {
  const shown = (node) => Boolean(node) && node.checkVisibility();
  const texts = (selector) =>
    [...document.querySelectorAll(selector)].filter(shown).map((node) => node.textContent.trim().replace(/\\s+/g, " "));
  const audio = document.querySelector("[data-audio-panel]");
  return {
    facts: texts(".call-facts > div"),
    participants: texts(".participants .participant"),
    audio: shown(audio) ? [...audio.querySelectorAll("option")].map((option) => option.textContent) : null,
    gaps: texts(".gaps tr, .gaps p"),
    controls: shown(document.querySelector("[data-controls]")),
    live_status: texts("[data-live-status]"),
  };
}"""


def test_a_call_ended_while_watched_reads_the_same_as_the_page_reloaded(
    page: object, dashboard_server: AppServer, audio_dir: Path
) -> None:
    """The page opened before anyone spoke, then the call streamed (two speakers, audio with a gap) and
    ended through ACS's sockets and callback: the live page must show what a reload shows."""
    from playwright.sync_api import expect

    call = new_call()
    page.goto(f"/calls/{call.id}/")
    expect(live_status(page)).to_have_attribute("data-state", "live")

    with media_socket(dashboard_server, call.id) as audio, media_socket(dashboard_server, call.id) as text:
        send_audio(audio, acs.CALLER, seconds=1)
        for frame in range(150, 200):  # two seconds of the caller's audio never arrived
            audio.send(acs.audio_data(acs.CALLER, frame))
        for frame in range(50):
            audio.send(acs.audio_data(acs.AGENT, frame))
        text.send(acs.transcription_metadata())
        text.send(acs.transcription_data(acs.CALLER, "My internet is down.", 1 * SECOND))
        text.send(acs.transcription_data(acs.AGENT, "Let me check.", 3 * SECOND))
        expect(page.locator(".line[data-sequence]")).to_have_count(2)
    wavs = [audio_dir / str(call.id) / audio_file_name(who) for who in (acs.CALLER, acs.AGENT)]
    wait_until(lambda: all(wav.is_file() for wav in wavs), message="both captured WAVs")
    wait_until(
        lambda: not call.streams.filter(disconnected_at__isnull=True).exists() and call.streams.count() == 2,
        message="both sockets closed",
    )
    acs_ends_the_call(dashboard_server, call)
    expect(page.locator('[data-call-field="state"]')).to_have_text("Disconnected")
    expect(page.locator('[data-call-field="ended_at"]')).not_to_have_text("still live")
    seen_live = page.evaluate(VISIBLE_FACTS)

    page.reload()
    expect(page.locator(".line[data-sequence]")).to_have_count(2)
    page.wait_for_function("() => window.callscribeLive.connections === 1")
    seen_after_reload = page.evaluate(VISIBLE_FACTS)

    assert seen_after_reload["gaps"] != ["No gaps recorded."]  # the audio gap is there to compare
    assert len(seen_after_reload["participants"]) == 2
    assert seen_after_reload["audio"] is not None
    assert seen_live == seen_after_reload


PAUSE_FACTS = """() => {
  const shown = (node) => Boolean(node) && node.checkVisibility();
  const texts = (selector) =>
    [...document.querySelectorAll(selector)].filter(shown).map((node) => node.textContent.trim().replace(/\\s+/g, " "));
  return {
    // A live call's duration and coverage move on between events: left out.
    facts: texts(".call-facts > div").filter((fact) => !/^(Duration|Coverage)/.test(fact)),
    gaps: texts(".gaps td, .gaps p"),
    enabled: [...document.querySelectorAll("form[data-control]")]
      .filter((form) => !form.querySelector("button").disabled)
      .map((form) => form.dataset.control),
  };
}"""


def test_pausing_and_resuming_from_the_page_reads_the_same_live_and_after_a_reload(page: object) -> None:
    """Staff press Pause, then Resume; the page shows each as a reload would (the call's transcription
    was stopped, so neither asks ACS anything)."""
    from playwright.sync_api import expect

    call = off_the_loop(
        given.new_call,
        state=Call.State.CONNECTED,
        call_connection_id="acs-call-1",
        transcription_status=Call.StreamStatus.INACTIVE,
        transcription_wanted=False,
    )
    page.goto(f"/calls/{call.id}/")
    expect(live_status(page)).to_have_attribute("data-state", "live")
    paused_fact = page.locator('[data-call-field="pause"]')
    expect(paused_fact).to_be_hidden()

    page.get_by_role("button", name="Pause for sensitive data").click()

    expect(page.locator("[data-control-feedback]")).to_have_text(re.compile("^Paused for sensitive data"))
    expect(paused_fact).to_have_text(re.compile(r"paused for sensitive data by alice at \d\d:\d\d:\d\d; resumes"))
    expect(page.get_by_role("button", name="Resume")).to_be_enabled()
    expect(page.locator(".gaps tr.gap-sensitive_pause")).to_contain_text("Paused for sensitive data")
    seen_live = page.evaluate(PAUSE_FACTS)
    page.reload()
    page.wait_for_function("() => window.callscribeLive.connections === 1")
    assert page.evaluate(PAUSE_FACTS) == seen_live
    assert "resume" in seen_live["enabled"] and "pause" not in seen_live["enabled"]

    page.get_by_role("button", name="Resume").click()

    expect(paused_fact).to_be_hidden()
    expect(page.get_by_role("button", name="Pause for sensitive data")).to_be_enabled()
    expect(page.locator(".gaps tr.gap-sensitive_pause")).to_contain_text("resumed by alice")
    seen_live = page.evaluate(PAUSE_FACTS)
    page.reload()
    page.wait_for_function("() => window.callscribeLive.connections === 1")
    assert page.evaluate(PAUSE_FACTS) == seen_live
