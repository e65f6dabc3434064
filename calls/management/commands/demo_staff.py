"""`manage.py demo_staff`: the demo's logins, one per kind of scope (README, "Roles and scopes").

Two teams of one agent each, answering as the agents of the demo calls (emulator/scripts/support_call.json
and billing_call.json), a supervisor of the first team, and a quality login that sees every call.
Run again, it resets their passwords and puts everything back as described here.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth.models import Permission, User
from django.core.management.base import BaseCommand, CommandParser

from calls.models import Agent, AgentIdentity, Team


@dataclass(frozen=True)
class DemoAgent:
    username: str
    first_name: str
    last_name: str
    identity: str  # the script's agent: the demo call is answered as this identity
    team: str


AGENTS = (
    DemoAgent(
        "sam",
        "Sam",
        "Ortega",
        "8:acs:00000000-0000-0000-0000-00000000ac5e_00000021-3c8e-5d3a-85f4-343a0d00a1b2",
        "Support",
    ),
    DemoAgent(
        "priya",
        "Priya",
        "Shah",
        "8:acs:00000000-0000-0000-0000-00000000ac5e_00000021-3c8e-5d3a-85f4-343a0d00b17c",
        "Billing",
    ),
)
SUPERVISOR = "sue"  # supervises Support
SUPERVISED_TEAM = "Support"


class Command(BaseCommand):
    help = "Create (or reset) the demo's logins: an all-calls login, two agents in two teams and a supervisor."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="demo", help="The login that sees every call.")

    def handle(self, *args: object, **options: str) -> None:
        logins = [(options["username"], "every call (quality and compliance)", ["view_all_calls"])]
        for demo in AGENTS:
            agent = self._agent(demo)
            team, _ = Team.objects.get_or_create(name=demo.team)
            team.members.set([agent])
            logins.append((demo.username, f"agent in {demo.team}: the calls they take", []))
        logins.append((SUPERVISOR, f"supervisor of {SUPERVISED_TEAM}: its agents' calls", []))
        for username, scope, extra in logins:
            password = self._staff(username, ["watch_call", "control_call", *extra])
            self.stdout.write(f"Log in as:  {username} / {password}   ({scope})")
        Team.objects.get(name=SUPERVISED_TEAM).supervisors.set([User.objects.get(username=SUPERVISOR)])

    def _agent(self, demo: DemoAgent) -> Agent:
        user, _ = User.objects.get_or_create(username=demo.username)
        user.first_name, user.last_name = demo.first_name, demo.last_name
        user.save(update_fields=["first_name", "last_name"])
        agent, _ = Agent.objects.get_or_create(user=user)
        AgentIdentity.objects.update_or_create(raw_id=demo.identity, defaults={"agent": agent})
        return agent

    def _staff(self, username: str, codenames: list[str]) -> str:
        """A staff login with exactly these calls permissions; returns its new password."""
        password = secrets.token_urlsafe(9)
        user, _ = User.objects.get_or_create(username=username)
        user.is_staff = True
        user.set_password(password)
        user.save()
        user.user_permissions.set(Permission.objects.filter(content_type__app_label="calls", codename__in=codenames))
        return password
