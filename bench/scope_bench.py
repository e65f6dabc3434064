"""Does scoped access slow the call list or search? Issue #17: 100,000 calls, 1,000 agents in 50 teams.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/scope_bench.py \\
        --output results/scope.jsonl [--explain]

Re-creates a database of its own (`callscribe_scope_bench`, or keeps it with --reuse), migrates it and
fills it with COPY: ended calls spread over --days days (one agent each, some two, some none: IVR only),
each with its participants, a few transcript segments and now and then a gap, 1,000 agents (users, Agent,
AgentIdentity) in 50 teams of 20 with one supervisor each and a number routed to each team (TeamRoute).

Then it times, through the code the views run (calls/views.py, calls/search.py, calls/permissions.py,
streaming/live.py), each surface for five viewers: no scope at all (plain Call.objects, the reference),
an all-calls user, the supervisor of one team, a supervisor of ten teams and an agent of the first team
(the ratio to the reference is the cost of scoping). A viewer's user is read afresh
for every run and its permissions loaded (`can_watch`, as every view and the live feed do first), so
"scope" is what `visible_calls` adds to a request. Then `scope_of` alone, the live feed's per-event check
(in memory: it must make no query), and whole requests to /calls/ through Django's test Client.

Prints the median and 95th percentile of each over --repeats runs (after one warm-up, whose queries are
counted and, with --explain, EXPLAIN ANALYZEd); --output appends the run's JSON to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import fresh_bench_database, migrate, percentile, setup_django
from bench.search_bench import sentence

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.db.models import QuerySet

    from calls.models import Call
    from calls.search import CallFilters

BENCH_DATABASE = "callscribe_scope_bench"
TICKS_PER_SECOND = 10_000_000
ACS_RESOURCE = "8:acs:00000000-0000-0000-0000-00000000be4c"
MAIN_LINE = "4:+18005550000"  # routed to no team: its IVR-only calls are seen with all calls only
COMMON_WORD = "account"  # in about one segment in seven, the most frequent word search_bench's sentences have
RARE_WORD = "chargeback"
RARE_SENTENCE = "I want to raise a chargeback with my bank."
RARE_SHARE = 0.001  # of segments
GAP_SHARE = 0.02  # of ended calls: the list's has_gaps column has some to find
ALL_CALLS_USERNAME = "bench-all-calls"
HEAD_USERNAME = "bench-head"  # supervises HEAD_TEAMS teams: a scope of 200 agents
HEAD_TEAMS = 10


def agent_username(index: int) -> str:
    return f"agent-{index:04}"


def supervisor_username(team: int) -> str:
    return f"supervisor-{team:02}"


def team_line(team: int) -> str:
    return f"4:+1800555{team + 1:04}"


# --- the data ------------------------------------------------------------------------------------------


@dataclass
class Staff:
    """The agents as calls pick them: their Agent pk, the identity they answer as, their team."""

    agent_pks: list[int] = field(default_factory=list)
    identities: list[str] = field(default_factory=list)
    teams: list[int] = field(default_factory=list)


@dataclass
class PlannedCall:
    id: uuid.UUID
    created_at: datetime
    live: bool
    callee: str
    agent_ids: list[int]
    participants: list[tuple[int, str, int | None]]  # participant pk, raw id, Agent pk


def fill_staff(agents: int, teams: int) -> Staff:
    """Agents in teams of equal size (agent 0 in team 0), one supervisor and one routed number per team,
    and the logins measured: an all-calls user, the supervisor of team 0, a supervisor of the first
    HEAD_TEAMS teams and agent 0."""
    per_team = -(-agents // teams)
    staff = fill_agents(agents, per_team)
    fill_teams(teams, staff)
    fill_logins()
    return staff


def fill_agents(agents: int, per_team: int) -> Staff:
    from django.contrib.auth.models import User

    from calls.models import Agent, AgentIdentity

    users = User.objects.bulk_create(
        User(username=agent_username(i), first_name="Agent", last_name=f"{i:04}", is_staff=True, password="!")
        for i in range(agents)
    )
    staff = Staff()
    identities = []
    for index, agent in enumerate(Agent.objects.bulk_create(Agent(user=user) for user in users)):
        staff.agent_pks.append(agent.pk)
        staff.identities.append(f"{ACS_RESOURCE}_{index:08}")
        staff.teams.append(index // per_team)
        identities.append(AgentIdentity(agent=agent, raw_id=staff.identities[-1]))
        if index % 10 == 0:  # some also answer in Teams
            identities.append(AgentIdentity(agent=agent, raw_id=f"8:orgid:{uuid.UUID(int=index)}"))
    AgentIdentity.objects.bulk_create(identities)
    return staff


def fill_teams(teams: int, staff: Staff) -> None:
    from django.contrib.auth.models import User

    from calls.models import Team, TeamRoute

    team_rows = Team.objects.bulk_create(Team(name=f"Team {team:02}") for team in range(teams))
    Team.members.through.objects.bulk_create(
        Team.members.through(team=team_rows[team], agent_id=agent_pk)
        for agent_pk, team in zip(staff.agent_pks, staff.teams, strict=True)
    )
    supervisors = User.objects.bulk_create(
        User(username=supervisor_username(team), is_staff=True, password="!") for team in range(teams)
    )
    Team.supervisors.through.objects.bulk_create(
        Team.supervisors.through(team=team, user=user) for team, user in zip(team_rows, supervisors, strict=True)
    )
    TeamRoute.objects.bulk_create(TeamRoute(called=team_line(index), team=team) for index, team in enumerate(team_rows))
    head = User.objects.create(username=HEAD_USERNAME, is_staff=True, password="!")
    head.supervised_teams.set(team_rows[:HEAD_TEAMS])


def fill_logins() -> None:
    """Only the measured users may watch calls: the all-calls user, two supervisors and agent 0."""
    from django.contrib.auth.models import Permission, User

    all_calls = User.objects.create(username=ALL_CALLS_USERNAME, is_staff=True, password="!")
    permissions = Permission.objects.filter(content_type__app_label="calls")
    all_calls.user_permissions.set(permissions.filter(codename__in=["watch_call", "view_all_calls"]))
    for username in (supervisor_username(0), HEAD_USERNAME, agent_username(0)):
        User.objects.get(username=username).user_permissions.set(permissions.filter(codename="watch_call"))


def plan_calls(calls: int, live: int, days: int, staff: Staff, rng: random.Random) -> list[PlannedCall]:
    """Ended calls at random moments over `days` days (and `live` calls from the last half hour): 85 %
    answered by one agent, 5 % by two (a transfer), 10 % by none (IVR only); half of them to their team's
    routed number, the rest to the main line."""
    now = datetime.now().astimezone()
    planned = []
    next_participant = 1
    for index in range(calls + live):
        seconds_ago = rng.uniform(60, 1800) if index >= calls else rng.uniform(3600, days * 86400)
        draw = rng.random()
        count = 0 if draw < 0.10 else 2 if draw < 0.15 else 1
        agents = rng.sample(range(len(staff.agent_pks)), count)
        team = staff.teams[agents[0]] if agents else rng.randrange(max(staff.teams) + 1)
        callee = team_line(team) if rng.random() < 0.5 else MAIN_LINE
        caller = f"4:+1425{rng.randrange(10**7):07}"
        others = [(staff.identities[a], staff.agent_pks[a]) for a in agents] or [("28:orgid:ivr-bot", None)]
        participants = []
        for raw_id, agent_pk in [(caller, None), *others]:
            participants.append((next_participant, raw_id, agent_pk))
            next_participant += 1
        planned.append(
            PlannedCall(
                id=uuid.UUID(int=rng.getrandbits(128), version=4),
                created_at=now - timedelta(seconds=seconds_ago),
                live=index >= calls,
                callee=callee,
                agent_ids=sorted(staff.agent_pks[a] for a in agents),
                participants=participants,
            )
        )
    return planned


CALL_COLUMNS = (
    "id, call_connection_id, server_call_id, correlation_id, direction, caller, callee, caller_display_name, "
    "state, locale, media_streaming_status, transcription_status, created_at, connected_at, ended_at, end_reason, "
    "media_streaming_wanted, transcription_wanted, last_event_at, last_sequence, agent_ids"
)
PARTICIPANT_COLUMNS = (
    "id, call_id, raw_id, kind, display_name, role, agent_id, is_muted, is_on_hold, in_call, first_seen_at"
)
SEGMENT_COLUMNS = (
    "call_id, participant_id, subscription_id, participant_raw_id, text, confidence, offset_ticks, duration_ticks, "
    "words, result_status, received_at, sequence"
)


def call_rows(planned: list[PlannedCall], segments_per_call: int, rng: random.Random) -> Iterator[tuple]:
    for call in planned:
        ended_at = None if call.live else call.created_at + timedelta(seconds=rng.uniform(120, 1200))
        status = "active" if call.live else "inactive"
        state = "connected" if call.live else "disconnected"
        yield (
            call.id, str(call.id), "", "", "inbound", call.participants[0][1], call.callee, "", state, "en-US",
            status, status, call.created_at, call.created_at, ended_at, "", True, True,
            ended_at or call.created_at, segments_per_call, call.agent_ids,
        )  # fmt: skip


def participant_rows(planned: list[PlannedCall]) -> Iterator[tuple]:
    from calls.models import participant_kind

    for call in planned:
        for pk, raw_id, agent_pk in call.participants:
            role = "agent" if agent_pk else "customer"
            kind = participant_kind(raw_id)
            yield (pk, call.id, raw_id, kind, "", role, agent_pk, False, False, True, call.created_at)


def segment_rows(planned: list[PlannedCall], segments_per_call: int, rng: random.Random) -> Iterator[tuple]:
    """Caller and agent (or IVR) take turns; about one segment in a thousand says RARE_WORD."""
    for call in planned:
        for sequence in range(1, segments_per_call + 1):
            pk, raw_id, _ = call.participants[(sequence - 1) % len(call.participants)]
            text = RARE_SENTENCE if rng.random() < RARE_SHARE else sentence(rng)
            yield (
                call.id, pk, "bench", raw_id, text, round(rng.uniform(0.5, 0.99), 2),
                sequence * 4 * TICKS_PER_SECOND, 3 * TICKS_PER_SECOND, "[]", "final",
                call.created_at + timedelta(seconds=sequence * 4), sequence,
            )  # fmt: skip


def gap_rows(planned: list[PlannedCall], rng: random.Random) -> Iterator[tuple]:
    for call in planned:
        if not call.live and rng.random() < GAP_SHARE:
            started_at = call.created_at + timedelta(seconds=30)
            yield (call.id, "socket_drop", started_at, started_at + timedelta(seconds=5), "")


def copy_rows(table: str, columns: str, rows: Iterator[tuple]) -> None:
    from django.db import connection

    with connection.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def fill(options: argparse.Namespace) -> None:
    from django.db import connection, transaction

    rng = random.Random(options.seed)
    with transaction.atomic():
        staff = fill_staff(options.agents, options.teams)
        planned = plan_calls(options.calls, options.live, options.days, staff, rng)
        copy_rows("calls_call", CALL_COLUMNS, call_rows(planned, options.segments_per_call, rng))
        copy_rows("calls_participant", PARTICIPANT_COLUMNS, participant_rows(planned))
        copy_rows("calls_transcriptsegment", SEGMENT_COLUMNS, segment_rows(planned, options.segments_per_call, rng))
        copy_rows("calls_gap", "call_id, reason, started_at, ended_at, detail", gap_rows(planned, rng))
        with connection.cursor() as cursor:  # participants were given their ids: carry on after them
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence('calls_participant', 'id'), max(id)) FROM calls_participant"
            )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


# --- the viewers and what the views do ----------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    label: str
    username: str | None  # None: no scope at all, plain Call.objects (the reference)


VIEWERS = (
    Viewer("unscoped", None),
    Viewer("all calls", ALL_CALLS_USERNAME),
    Viewer("supervisor", supervisor_username(0)),
    Viewer(f"{HEAD_TEAMS} teams", HEAD_USERNAME),
    Viewer("agent", agent_username(0)),
)


class Access:
    """A viewer's calls and scope as a request has them: its user read afresh, permissions loaded; and the
    scope a live socket keeps (read when it connects and every LIVE_SESSION_CHECK_SECONDS, not per snapshot).
    The socket's scope is read with a user object of its own: `scope_of` keeps a scope on the user object
    it read it for, and the request's user must come to the timed steps without one."""

    def __init__(self, viewer: Viewer) -> None:
        from calls.permissions import Scope, can_watch, scope_of

        self.user = read_user(viewer)
        if self.user is not None:
            assert can_watch(self.user), viewer
        self.kept_scope = Scope(all_calls=True) if self.user is None else scope_of(read_user(viewer))

    def calls(self) -> QuerySet[Call]:
        from calls.models import Call
        from calls.permissions import visible_calls

        return Call.objects.all() if self.user is None else visible_calls(self.user)


def read_user(viewer: Viewer) -> User | None:
    from django.contrib.auth.models import User

    return None if viewer.username is None else User.objects.get(username=viewer.username)


class Steps:
    """Times named steps of one run: `steps("count", function)` runs function and adds its time."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    def __call__(self, name: str, function: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        result = function()
        self.ms[name] = self.ms.get(name, 0.0) + (time.perf_counter() - start) * 1000
        return result


Surface = Callable[[Access, Steps], int]  # runs one surface for a viewer; returns its row count


def past_calls(filters_of: Callable[[], CallFilters]) -> Surface:
    """The call list without a search (calls/views.py call_list): page 1 of ended calls, and its count."""

    def run(access: Access, steps: Steps) -> int:
        from calls.pagination import LimitedCountPaginator
        from calls.search import filter_calls, with_summary
        from calls.views import PAGE_SIZE

        calls = steps("scope", access.calls)
        past = with_summary(filter_calls(calls.ended(), filters_of())).order_by("-created_at")
        paginator = LimitedCountPaginator(past, PAGE_SIZE, 1)
        count = steps("count", lambda: paginator.count)
        steps("page", lambda: list(paginator.requested()))
        return count

    return run


def live_calls(access: Access, steps: Steps) -> int:
    """The call list's live calls, as the page is first rendered."""
    from calls.search import with_summary
    from calls.views import LIVE_CALLS_SHOWN

    calls = steps("scope", access.calls)
    return len(steps("page", lambda: list(with_summary(calls.live()).order_by("-created_at")[:LIVE_CALLS_SHOWN])))


def live_feed_snapshot(access: Access, steps: Steps) -> int:
    """What the live call list's socket sends on connecting (streaming/live.py calls_state)."""
    from streaming import live

    return len(steps("page", lambda: live.calls_state(access.kept_scope)["calls"]))


def search(text: str) -> Surface:
    """The call list with a search: count the matches, page 1, its snippets (calls/views.py call_list)."""

    def run(access: Access, steps: Steps) -> int:
        from calls.pagination import LimitedCountPaginator
        from calls.search import CallFilters, filter_calls, matching_segments, search_hits
        from calls.views import PAGE_SIZE

        calls = steps("scope", access.calls)
        paginator = LimitedCountPaginator(matching_segments(text, filter_calls(calls, CallFilters())), PAGE_SIZE, 1)
        count = steps("count", lambda: paginator.count)
        page = steps("page", lambda: list(paginator.requested()))
        steps("snippets", lambda: search_hits(text, page))
        return count

    return run


def no_filters() -> CallFilters:
    from calls.search import CallFilters

    return CallFilters()


def last_week() -> CallFilters:
    from django.utils import timezone

    from calls.search import CallFilters

    today = timezone.localdate()
    return CallFilters(date_from=today - timedelta(days=6), date_to=today)


SURFACES: dict[str, Surface] = {
    "call list, page 1": past_calls(no_filters),
    "call list, last 7 days": past_calls(last_week),
    "live calls (list page)": live_calls,
    "live feed snapshot": live_feed_snapshot,
    f"search, common word ({COMMON_WORD})": search(COMMON_WORD),
    f"search, rare word ({RARE_WORD})": search(RARE_WORD),
}
STEPS = ("scope", "count", "page", "snippets")


# --- measuring -----------------------------------------------------------------------------------------


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "p95": round(percentile(values, 0.95), 3)}


def measure_surface(surface: Surface, viewer: Viewer, repeats: int) -> dict[str, Any]:
    """One warm-up run, its queries captured (for counting and --explain), then `repeats` timed runs."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    access = Access(viewer)
    with CaptureQueriesContext(connection) as captured:
        rows = surface(access, Steps())
    sql = [query["sql"] for query in captured]
    runs = []
    for _ in range(repeats):
        access = Access(viewer)  # outside the timing: a request has its user before the view runs
        steps = Steps()
        surface(access, steps)
        runs.append(steps.ms)
    return {
        "rows": rows,
        "queries": len(sql),
        "sql": sql,
        "steps": {name: summary([run[name] for run in runs]) for name in STEPS if name in runs[0]},
        "total": summary([sum(run.values()) for run in runs]),
        "without_scope_of": summary([sum(run.values()) - run.get("scope", 0.0) for run in runs]),
    }


def measure_scope_of(viewer: Viewer, repeats: int) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from calls.permissions import scope_of

    user = Access(viewer).user
    with CaptureQueriesContext(connection) as captured:
        scope = scope_of(user)
    queries = len(captured)
    times = []
    for _ in range(repeats):
        user = Access(viewer).user  # read afresh, with no scope of its own yet, as a request's user
        start = time.perf_counter()
        scope_of(user)
        times.append((time.perf_counter() - start) * 1000)
    return {
        "queries": queries,
        "agents": len(scope.agent_ids),
        "routes": len(scope.team_called),
        **summary(times),
    }


def measure_live_check(viewer: Viewer, repeats: int, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The live call list's per-event decision (streaming/live_feed.py `_lists`): Scope.includes on the
    agents and callee the event carries, for every event, per viewer. Must make no query."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    scope = Access(viewer).kept_scope
    times = []
    with CaptureQueriesContext(connection) as captured:
        for _ in range(repeats):
            start = time.perf_counter()
            shown = sum(scope.includes(event["call"]["agent_ids"], event["call"]["callee"]) for event in events)
            times.append((time.perf_counter() - start) * 1e6 / len(events))
    queries = len(captured)
    return {"queries": queries, "events": len(events), "shown": shown, **summary(times)}


def call_events(count: int) -> list[dict[str, Any]]:
    """Call events as calls/live_events.py builds them, for the newest `count` calls."""
    from calls import live_events
    from calls.models import Call

    return [
        {"type": "call", "call": live_events.call_payload(call)}
        for call in Call.objects.order_by("-created_at")[:count]
    ]


def http_urls() -> dict[str, str]:
    week = last_week()
    return {
        "GET /calls/": "/calls/",
        "GET /calls/ last 7 days": f"/calls/?date_from={week.date_from}&date_to={week.date_to}",
        f"GET /calls/?q={COMMON_WORD}": f"/calls/?q={COMMON_WORD}",
        f"GET /calls/?q={RARE_WORD}": f"/calls/?q={RARE_WORD}",
    }


def measure_http(viewer: Viewer, url: str, repeats: int) -> dict[str, Any]:
    """The whole request through Django (middleware, session, view, template), logged in as `viewer`."""
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(User.objects.get(username=viewer.username))
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    queries = len(captured)  # now: the next request empties the connection's query log
    assert response.status_code == 200, (viewer, url, response.status_code)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - start) * 1000)
    return {"queries": queries, "bytes": len(response.content), **summary(times)}


# --- EXPLAIN -------------------------------------------------------------------------------------------


def ratio(measured: dict[str, float], reference: dict[str, float]) -> float:
    return round(measured["median"] / reference["median"], 2)


def explain(sql: str) -> dict[str, Any]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    return {
        "sql": sql,
        "plan": plan,
        "agent_ids_index": "call_agent_ids_idx" in plan,
        "seq_scans": sorted(
            {line.split("Seq Scan on ")[1].split()[0] for line in plan.splitlines() if "Seq Scan on" in line}
        ),
    }


def explain_surface(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The plans of the warm-up's queries on calls and segments (scope_of's own small ones left out)."""
    return [
        explain(sql)
        for sql in result["sql"]
        if sql.lstrip().upper().startswith("SELECT") and ("calls_call" in sql or "calls_transcriptsegment" in sql)
    ]


# --- the report ----------------------------------------------------------------------------------------


def data_sizes() -> dict[str, int]:
    from calls.models import Agent, Call, Gap, Participant, Team, TeamRoute, TranscriptSegment

    return {
        "calls": Call.objects.count(),
        "ended calls": Call.objects.ended().count(),
        "IVR-only calls": Call.objects.filter(agent_ids=[]).count(),
        "participants": Participant.objects.count(),
        "segments": TranscriptSegment.objects.count(),
        "gaps": Gap.objects.count(),
        "agents": Agent.objects.count(),
        "teams": Team.objects.count(),
        "team routes": TeamRoute.objects.count(),
    }


def cell(stats: dict[str, float]) -> str:
    return f"{stats['median']:.2f} / {stats['p95']:.2f}"


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    """Left-aligned first two columns (what and who), the rest right-aligned; a blank line after."""
    texts = [[f"{value:,}" if isinstance(value, int) else str(value) for value in row] for row in [header, *rows]]
    widths = [max(len(row[column]) for row in texts) for column in range(len(header))]
    print(title)
    for row in texts:
        cells = [
            text.ljust(width) if column < 2 else text.rjust(width)
            for column, (text, width) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells))
    print()


def print_surfaces(surfaces: dict[str, dict[str, Any]]) -> None:
    rows = []
    for name, by_viewer in surfaces.items():
        for label, result in by_viewer.items():
            steps = [f"{result['steps'][step]['median']:.2f}" if step in result["steps"] else "-" for step in STEPS]
            first = name if label == VIEWERS[0].label else ""
            rows.append([first, label, result["rows"], result["queries"], *steps, cell(result["total"])])
            rows[-1] += [f"{result['ratio_to_unscoped']:.2f}", f"{result['ratio_to_unscoped_without_scope_of']:.2f}"]
    header = ["surface", "viewer", "rows", "queries", *STEPS, "total ms: median / p95", "vs unscoped", "w/o scope_of"]
    print_table("Through the views' functions (step columns: medians, ms)", header, rows)


def print_report(result: dict[str, Any], repeats: int) -> None:
    print(", ".join(f"{count:,} {name}" for name, count in result["data"].items()))
    print(f"{repeats} runs of each after one warm-up (whose queries are counted)\n")
    print_surfaces(result["surfaces"])
    rows = [[label, s["agents"], s["routes"], s["queries"], cell(s)] for label, s in result["scope_of"].items()]
    print_table("scope_of(user)", ["viewer", "agents", "routes", "queries", "ms: median / p95"], rows)
    rows = [[label, s["events"], s["shown"], s["queries"], cell(s)] for label, s in result["live_check"].items()]
    header = ["viewer", "events", "shown", "queries", "µs per event: median / p95"]
    print_table("Live feed: the per-event scope check (Scope.includes)", header, rows)
    rows = []
    for url, by_viewer in result["http"].items():
        for label, s in by_viewer.items():
            first = url if label == "all calls" else ""
            rows.append([first, label, s["bytes"], s["queries"], cell(s), f"{s['ratio_to_all_calls']:.2f}"])
    header = ["request", "viewer", "bytes", "queries", "ms: median / p95", "vs all calls"]
    print_table("Whole requests (Django test Client: middleware, session, view, template)", header, rows)


def print_explains(surfaces: dict[str, dict[str, Any]]) -> None:
    for name, by_viewer in surfaces.items():
        for label, result in by_viewer.items():
            for plan in result.get("explain", []):
                used = "uses call_agent_ids_idx" if plan["agent_ids_index"] else "no call_agent_ids_idx"
                scans = f"seq scans: {', '.join(plan['seq_scans'])}" if plan["seq_scans"] else "no seq scan"
                print(f"=== {name} · {label} · {used} · {scans}\n{plan['sql'][:300]}…\n{plan['plan']}\n")


def run(options: argparse.Namespace) -> dict[str, Any]:
    surfaces: dict[str, dict[str, Any]] = {}
    for name, surface in SURFACES.items():
        surfaces[name] = {viewer.label: measure_surface(surface, viewer, options.repeats) for viewer in VIEWERS}
        reference = surfaces[name]["unscoped"]
        for label, result in surfaces[name].items():
            result["ratio_to_unscoped"] = ratio(result["total"], reference["total"])
            result["ratio_to_unscoped_without_scope_of"] = ratio(
                result["without_scope_of"], reference["without_scope_of"]
            )
            if options.explain and label != "all calls":
                result["explain"] = explain_surface(result)
            if not options.keep_sql:
                del result["sql"]
    viewers = [viewer for viewer in VIEWERS if viewer.username]
    events = call_events(options.events)
    http = {
        url: {v.label: measure_http(v, path, options.repeats) for v in viewers} for url, path in http_urls().items()
    }
    for by_viewer in http.values():
        reference = by_viewer["all calls"]["median"]
        for result in by_viewer.values():
            result["ratio_to_all_calls"] = round(result["median"] / reference, 2)
    return {
        "surfaces": surfaces,
        "scope_of": {viewer.label: measure_scope_of(viewer, options.repeats) for viewer in viewers},
        "live_check": {viewer.label: measure_live_check(viewer, options.repeats, events) for viewer in viewers},
        "http": http,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100_000, help="ended calls")
    parser.add_argument("--live", type=int, default=20, help="live calls besides")
    parser.add_argument("--agents", type=int, default=1_000)
    parser.add_argument("--teams", type=int, default=50)
    parser.add_argument("--segments-per-call", type=int, default=3)
    parser.add_argument("--days", type=int, default=90, help="the calls are spread over this many days")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--events", type=int, default=1_000, help="call events for the live feed's check")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the warm-up's queries, print plans")
    parser.add_argument("--keep-sql", action="store_true", help="keep each surface's SQL in the --output JSON")
    parser.add_argument("--reuse", action="store_true", help=f"keep {BENCH_DATABASE} and its data if filled")
    parser.add_argument("--database-name", default=BENCH_DATABASE)
    parser.add_argument(
        "--admin-database-url", default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--output", type=Path, help="append the run's JSON report to this file")
    options = parser.parse_args()

    warnings.filterwarnings("ignore", "No directory at", UserWarning)  # STATIC_ROOT: only after collectstatic
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")  # the test Client's host
    os.environ.setdefault("DATABASE_POOL_MIN_SIZE", "1")
    database_url = fresh_bench_database(options.admin_database_url, options.database_name, keep=options.reuse)
    setup_django(database_url)
    migrate()
    from calls.models import Call

    if not Call.objects.exists():
        start = time.perf_counter()
        fill(options)
        print(f"filled {options.database_name} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    result = {"data": data_sizes(), **run(options)}
    result["finished_at"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    print_report(result, options.repeats)
    if options.explain:
        print()
        print_explains(result["surfaces"])
    if options.output:
        with open(options.output, "a") as output:
            output.write(json.dumps({"args": vars(options) | {"output": str(options.output)}, **result}) + "\n")


if __name__ == "__main__":
    main()
