"""`manage.py demo_staff` and the demo's calls: two teams of one agent each, a supervisor and an all-calls
login, and the emulator's demo calls taken by those agents, seen by exactly the right logins."""

from __future__ import annotations

import re
from collections.abc import Callable
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from calls.management.commands.demo_staff import AGENTS
from calls.models import Agent, Call
from calls.permissions import visible_calls
from emulator.config import DEFAULT_SCRIPT_DIR
from emulator.script import ScriptLibrary
from emulator.synth import ToneSynthesizer
from emulator.testing import RunningEmulator
from tests.calls.acs_servers import ring, wait_for
from tests.calls.conftest import logged_in
from tests.servers import AppServer

DEMO_SCRIPTS = {"sam": "support_call", "priya": "billing_call"}


def demo_staff() -> dict[str, str]:
    out = StringIO()
    call_command("demo_staff", stdout=out)
    return dict(re.findall(r"Log in as:\s+(\S+) / (\S+)", out.getvalue()))


@pytest.mark.django_db
def test_demo_staff_prints_a_login_per_scope_and_resets_them_when_run_again() -> None:
    first, second = demo_staff(), demo_staff()
    assert sorted(first) == sorted(second) == ["demo", "priya", "sam", "sue"]
    for username, password in second.items():
        assert password != first[username]
        assert logged_in(User.objects.get(username=username)).get("/calls/").status_code == 200
    assert User.objects.get(username="demo").has_perm("calls.view_all_calls")
    assert [team.name for team in User.objects.get(username="sue").supervised_teams.all()] == ["Support"]
    assert Agent.objects.count() == 2


def test_the_demo_agents_answer_as_the_agents_of_the_demo_calls() -> None:
    library = ScriptLibrary(DEFAULT_SCRIPT_DIR, ToneSynthesizer())
    for demo in AGENTS:
        script = library.load(DEMO_SCRIPTS[demo.username])
        assert script.callee.raw_id == demo.identity, demo.username


@pytest.mark.django_db(transaction=True)
def test_each_demo_call_is_taken_by_its_agent_and_seen_by_exactly_the_right_logins(
    acs_app: AppServer, emulator: RunningEmulator, end_calls: Callable[[Call], Call]
) -> None:
    demo_staff()
    calls = {}
    for agent, script in DEMO_SCRIPTS.items():
        rang = ring(emulator, acs_app, script=script)
        found = wait_for(lambda rang=rang: Call.objects.filter(server_call_id=rang["server_call_id"]).first())
        calls[agent] = end_calls(found)
    for agent, call in calls.items():
        agent_id = Agent.objects.get(user__username=agent).pk
        wait_for(lambda call=call, agent_id=agent_id: Call.objects.get(pk=call.pk).agent_ids == [agent_id], what=agent)

    sees = {"demo": {"sam", "priya"}, "sam": {"sam"}, "sue": {"sam"}, "priya": {"priya"}}
    for username, agents in sees.items():
        visible = set(visible_calls(User.objects.get(username=username)).filter(pk__in=[c.pk for c in calls.values()]))
        assert visible == {calls[agent] for agent in agents}, username
