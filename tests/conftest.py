"""Shared fixtures: personas, calls, signed media-socket paths and real server processes.

Tests run against the real PostgreSQL (DATABASE_URL) and, where marked, the real Redis (REDIS_URL).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Permission, User
from django.test import Client

from calls import services
from calls.authentication import jwks_cache
from calls.models import Agent, AgentIdentity, Call, Team, TeamRoute
from calls.tokens import media_socket_url
from tests.acs_keys import ISSUER, RESOURCE_ID, AcsKeys, serve_acs_keys
from tests.servers import AppServer, run_app_server


def _user(username: str, *, staff: bool, permissions: tuple[str, ...]) -> User:
    user = User.objects.create_user(username, password="correct horse battery staple", is_staff=staff)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="calls", codename__in=permissions))
    return user


@pytest.fixture
def staff_user(db: None) -> User:
    """Alice runs the support floor: she watches and controls every call (tests of scope use the
    personas in tests/calls/test_scope.py)."""
    return _user("alice", staff=True, permissions=("watch_call", "control_call", "view_all_calls"))


@pytest.fixture
def supervisor(db: None) -> User:
    """Bob may watch every call but not start, stop or hang them up."""
    return _user("bob", staff=True, permissions=("watch_call", "view_all_calls"))


@pytest.fixture
def revealer(db: None) -> User:
    """Erin handles disputes: she watches every call and may reveal what redaction hid, giving a reason."""
    return _user("erin", staff=True, permissions=("watch_call", "view_all_calls", "reveal_redacted"))


@pytest.fixture
def outsider(db: None) -> User:
    """Charlie has an account but is not staff: he sees nothing."""
    return _user("charlie", staff=False, permissions=("watch_call",))


def make_agent(username: str, *identities: str, full_name: str = "") -> Agent:
    """A staff user who answers calls as `identities` and may use the dashboard."""
    user = _user(username, staff=True, permissions=("watch_call",))
    user.first_name, _, user.last_name = full_name.partition(" ")
    user.save(update_fields=["first_name", "last_name"])
    agent = Agent.objects.create(user=user)
    for raw_id in identities:
        AgentIdentity.objects.create(agent=agent, raw_id=raw_id)
    return agent


def make_team(name: str, *, members: tuple[Agent, ...] = (), supervisors: tuple[User, ...] = ()) -> Team:
    team = Team.objects.create(name=name)
    team.members.set(members)
    team.supervisors.set(supervisors)
    return team


def watcher(username: str, *permissions: str) -> User:
    """A staff user who may use the dashboard, with these calls permissions besides."""
    return _user(username, staff=True, permissions=("watch_call", *permissions))


SAM = "8:acs:00000000-0000-0000-0000-00000000ac5e_00000021-0000-0000-0000-0000000005a3"  # an ACS user
KIM = "4:+14255550177"  # an agent on the PSTN: her phone number
SUPPORT_LINE = "4:+18005550100"  # the number customers call for support, routed to the Support team


@dataclass(frozen=True)
class ContactCentre:
    """Two teams of one agent each, their supervisors, and quality staff who see every call."""

    sam: Agent  # agent in Support, answers as SAM
    kim: Agent  # agent in Billing, answers as KIM
    sue: User  # supervises Support (and the support line's calls)
    bill: User  # supervises Billing
    quinn: User  # quality and compliance: every call
    support: Team
    billing: Team


@pytest.fixture
def centre(db: None) -> ContactCentre:
    sam = make_agent("sam", SAM, full_name="Sam Ortega")
    kim = make_agent("kim", KIM, full_name="Kim Lee")
    sue, bill, quinn = watcher("sue"), watcher("bill"), watcher("quinn", "view_all_calls")
    support = make_team("Support", members=(sam,), supervisors=(sue,))
    TeamRoute.objects.create(called=SUPPORT_LINE, team=support)
    billing = make_team("Billing", members=(kim,), supervisors=(bill,))
    return ContactCentre(sam, kim, sue, bill, quinn, support, billing)


def session_cookie(user: User) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def browser_headers(user: User | None) -> list[tuple[bytes, bytes]]:
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    if user is not None:
        headers.append((b"cookie", session_cookie(user).encode()))
    return headers


async def abrowser_headers(user: User | None) -> list[tuple[bytes, bytes]]:
    return await database_sync_to_async(browser_headers)(user)


@pytest.fixture
def call(db: None) -> Call:
    return services.create_call(direction=Call.Direction.INBOUND, caller="4:+14255550100", callee="8:acs:agent")


def media_path(call_id: uuid.UUID) -> str:
    """The path part of a call's signed media-socket URL, for WebsocketCommunicator."""
    return urlsplit(media_socket_url(call_id)).path


@pytest.fixture(scope="session")
def app_server(django_db_setup: None, django_db_blocker: object) -> Iterator[AppServer]:
    """A real daphne process serving config.asgi:application on the test database."""
    with run_app_server() as server:
        yield server


@pytest.fixture
def acs_keys(settings) -> Iterator[AcsKeys]:
    """JWT verification switched on, against a real JWKS endpoint with a key playing ACS's."""
    with serve_acs_keys() as keys:
        settings.ACS_RESOURCE_ID = RESOURCE_ID
        settings.ACS_JWT_ISSUER = ISSUER
        settings.ACS_JWKS_URL = keys.jwks_url
        settings.ACS_VERIFY_JWT = True
        jwks_cache.clear()
        yield keys
        jwks_cache.clear()
