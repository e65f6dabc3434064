"""Take docs/screenshots/call-list.png and call-page.png of a realistic support call.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python docs/screenshots/make_screenshots.py

Creates a scratch database `callscribe_screenshots` on that server (dropped at the end), starts a real
daphne on it, streams a call through the media socket as ACS would, and photographs the pages with
Debian's headless Chromium (/usr/bin/chromium).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = Path(__file__).resolve().parent
SCRATCH_DATABASE = "callscribe_screenshots"
SECOND = 10_000_000  # ACS ticks

CONVERSATION = [
    ("caller", "Hi, my internet has been dropping out every few minutes since this morning.", 0.94),
    ("agent", "I'm sorry to hear that. Can you tell me what the lights on your router are doing?", 0.97),
    ("caller", "The power light is green but the one that says DSL keeps blinking orange.", 0.91),
    ("agent", "Thanks. I can see a line fault reported in your area this morning.", 0.95),
    ("caller", "So it's not something on my end?", 0.42),
    ("agent", "No, an engineer is already on site. It should be fixed by two o'clock.", 0.96),
    ("caller", "Great. Will I get a credit on my bill for today?", 0.93),
    ("agent", "Yes, I've added a one day credit to your account.", 0.95),
]


def scratch_database_url() -> str:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {SCRATCH_DATABASE} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {SCRATCH_DATABASE}")
    return urlunsplit(urlsplit(base)._replace(path=f"/{SCRATCH_DATABASE}"))


def drop_scratch_database() -> None:
    base = os.environ["SCREENSHOT_BASE_DATABASE_URL"]
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {SCRATCH_DATABASE} WITH (FORCE)")


def setup_django() -> None:
    os.environ["SCREENSHOT_BASE_DATABASE_URL"] = os.environ.get(
        "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"
    )
    os.environ["DATABASE_URL"] = scratch_database_url()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def make_history() -> None:
    """A few past calls and a second live call, so the list looks like a working day."""
    from django.utils import timezone

    from calls.models import Call, Gap
    from tests.calls.conftest import end, new_call, say

    people = [
        ("4:+14255550142", "Marcus Lee", "My bill shows a charge I don't recognise."),
        ("4:+14255550177", "", "I'd like to move my broadband to a new address."),
        ("4:+14255550103", "Priya Natarajan", "The TV box says no signal on every channel."),
        ("4:+14255550168", "", "Can you explain the early termination fee?"),
    ]
    for index, (number, name, line) in enumerate(people):
        call = new_call(number, caller_display_name=name)
        say(call, number, line, 2000)
        say(call, "8:acs:agent", "Let me look into that for you.", 6000)
        end(call, minutes_ago=40 * (index + 1))
        started = timezone.now() - timedelta(minutes=40 * (index + 1) + 6)
        Call.objects.filter(pk=call.pk).update(created_at=started, connected_at=started)
        if index == 1:
            Gap.objects.create(call=call, reason=Gap.Reason.SOCKET_DROP, started_at=started, detail="socket closed")
    other = new_call("4:+14255550190", caller_display_name="Tom Becker", state=Call.State.CONNECTED)
    say(other, "4:+14255550190", "I'm calling about the outage in Redmond.", 3000)


def stream_featured_call(media, call) -> None:
    """Be ACS for the call: its audio, then the conversation so far as final transcription results."""
    from tests.browser.support import send_audio
    from tests.streaming import acs_packets as acs

    speakers = {"caller": call.caller, "agent": acs.AGENT}
    send_audio(media, call.caller, seconds=6)
    media.send(acs.transcription_metadata())
    for index, (who, text, confidence) in enumerate(CONVERSATION):
        packet = acs.transcription_data(speakers[who], text, (index * 6 + 1) * SECOND, 5 * SECOND)
        media.send(packet.replace('"confidence": 0.93', f'"confidence": {confidence}'))


def main() -> None:
    setup_django()
    from django.contrib.auth.models import Permission, User
    from django.utils import timezone

    from calls import participants
    from calls.models import Agent, AgentIdentity, Call
    from tests.browser.support import chromium, media_socket, session_cookie
    from tests.calls.conftest import new_call
    from tests.servers import run_app_server
    from tests.streaming import acs_packets as acs

    password = "correct horse battery staple"  # noqa: S105 - a scratch database, dropped at the end
    user = User.objects.create_user("alice", password=password, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["watch_call", "control_call", "view_all_calls"]))
    sam = User.objects.create_user("sam", first_name="Sam", last_name="Ortiz", is_staff=True)
    AgentIdentity.objects.create(agent=Agent.objects.create(user=sam), raw_id=acs.AGENT)
    make_history()
    call = new_call(
        "4:+14255550123",
        caller_display_name="Dana Whitfield",
        state=Call.State.CONNECTED,
        connected_at=timezone.now() - timedelta(seconds=3),
    )
    participants.ensure_participant(call_id=call.id, raw_id=call.caller, display_name="Dana Whitfield")
    participants.ensure_participant(call_id=call.id, raw_id=acs.AGENT)  # Agent Sam Ortiz
    audio_dir = tempfile.mkdtemp(prefix="callscribe-screens-")
    try:
        with run_app_server(AUDIO_CAPTURE="True", AUDIO_CAPTURE_DIR=audio_dir, STREAM_STATS_INTERVAL="0.5") as server:
            cookie = session_cookie(user, server)
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop
            with media_socket(server, call.id) as media, chromium() as browser:
                stream_featured_call(media, call)
                time.sleep(1.5)  # the server writes captured audio in batches
                page = browser.new_context(base_url=server.base_url, viewport={"width": 1280, "height": 860}).new_page()
                page.context.add_cookies([cookie])
                page.goto("/calls/")
                page.wait_for_selector('[data-live-status][data-state="live"]')
                page.screenshot(path=str(OUTPUT / "call-list.png"), full_page=True)
                page.goto(f"/calls/{call.id}/")
                page.wait_for_selector('[data-live-status][data-state="live"]')
                media.send(acs.transcription_data(call.caller, "Perfect, thank you so", 50 * SECOND, final=False))
                page.wait_for_selector(".line.partial")
                page.screenshot(path=str(OUTPUT / "call-page.png"), full_page=True)
    finally:
        from django.db import connections

        connections.close_all()
        drop_scratch_database()
    print(f"wrote {OUTPUT / 'call-list.png'} and {OUTPUT / 'call-page.png'}")


if __name__ == "__main__":
    main()
