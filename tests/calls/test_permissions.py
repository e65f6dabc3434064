"""The scope rule in its two database forms, and reading a user's scope once per request.

A scope of up to FEW_AGENTS agents finds its calls with `agent_ids && ARRAY[…]` (the GIN index); a larger
one (a supervisor of many teams) with `TookPartIn`, a hashed lookup per agent of each call. Both must pick
exactly the calls `Scope.includes` picks from live events, whatever the number of agents on a call.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Q
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from calls import agent_identities, call_reads, participants
from calls.models import Agent, AgentIdentity, Call, Team, TranscriptSegment
from calls.permissions import FEW_AGENTS, TookPartIn, scope_of, supervised_calls, visible_calls
from tests.calls.conftest import end, logged_in, new_call, say
from tests.conftest import make_agent, make_team, watcher

pytestmark = pytest.mark.django_db

CUSTOMER = "4:+14255550101"


def floor_agents(count: int) -> list[Agent]:
    """`count` agents, each answering as an ACS user of their own (made in bulk: they never log in)."""
    users = User.objects.bulk_create(User(username=f"agent-{index:03}", password="!") for index in range(count))
    agents = Agent.objects.bulk_create(Agent(user=user) for user in users)
    AgentIdentity.objects.bulk_create(
        AgentIdentity(agent=agent, raw_id=f"8:acs:floor_{index:03}") for index, agent in enumerate(agents)
    )
    agent_identities.forget_identities()  # as saving one identity does (bulk_create sends no post_save)
    return agents


def call_taken_by(*agents: Agent, word: str = "") -> Call:
    """An ended call these agents took part in, in this order (as participants.py adds them)."""
    call = new_call(CUSTOMER)
    with transaction.atomic():
        participants.add_agents(call_reads.locked_call(call.pk), [agent.pk for agent in agents])
    if word:
        say(call, CUSTOMER, f"About the {word}, please.", 1000)
    return end(call)


@pytest.fixture
def floor() -> dict[str, object]:
    """A head of floor who supervises a team of FEW_AGENTS + 1 agents (the large form), three agents of no
    team of theirs, and calls taken by none, one, two and three agents, in and out of the team."""
    agents = floor_agents(FEW_AGENTS + 4)
    inside, (stranger, second, third) = agents[: FEW_AGENTS + 1], agents[FEW_AGENTS + 1 :]
    head = watcher("head")
    make_team("Floor", members=tuple(inside), supervisors=(head,))
    calls = {
        "nobody": call_taken_by(word="aardvark"),
        "first": call_taken_by(inside[0], word="bison"),
        "last": call_taken_by(inside[-1], word="camel"),
        "stranger": call_taken_by(stranger, word="dingo"),
        "handed on": call_taken_by(stranger, inside[5], word="emu"),  # the second of two agents
        "passed twice": call_taken_by(stranger, second, inside[7]),  # the third of three
        "strangers only": call_taken_by(stranger, second, third),
    }
    return {"head": head, "calls": calls}


SEEN_BY_HEAD = {"first", "last", "handed on", "passed twice"}


def names(floor: dict[str, object], calls: object) -> set[str]:
    by_id = {call.pk: name for name, call in floor["calls"].items()}
    return {by_id[call.pk] for call in calls}


def test_a_large_scope_uses_the_hashed_form_and_sees_what_the_live_feed_sees(floor: dict[str, object]) -> None:
    head = floor["head"]
    scope = scope_of(head)
    assert len(scope.agent_ids) > FEW_AGENTS
    assert "CASE cardinality" in str(visible_calls(head).query)  # TookPartIn, not agent_ids && ARRAY[…]
    in_database = names(floor, visible_calls(head))
    in_memory = {name for name, call in floor["calls"].items() if scope.includes(call.agent_ids, call.callee)}
    assert in_database == in_memory == SEEN_BY_HEAD


def test_both_forms_agree_on_every_call_whatever_its_number_of_agents(floor: dict[str, object]) -> None:
    agent_ids = sorted(scope_of(floor["head"]).agent_ids)
    hashed = set(Call.objects.filter(TookPartIn("agent_ids", agent_ids)))
    overlap = set(Call.objects.filter(agent_ids__overlap=agent_ids))
    assert names(floor, hashed) == names(floor, overlap) == SEEN_BY_HEAD
    assert set(Call.objects.filter(~Q(TookPartIn("agent_ids", agent_ids)))) == set(Call.objects.all()) - hashed


def test_a_large_scope_reaches_calls_from_their_rows_search_and_admin(floor: dict[str, object]) -> None:
    head = floor["head"]
    segments = TranscriptSegment.objects.filter(scope_of(head).filter("call__"))
    assert names(floor, {segment.call for segment in segments}) == {
        "first",
        "last",
        "handed on",
    }  # the rest said nothing
    page = logged_in(head).get(reverse("calls-list"), {"q": "please"}).content.decode()
    for word, seen in [("aardvark", False), ("bison", True), ("camel", True), ("dingo", False), ("emu", True)]:
        assert (word in page) == seen, word


def test_a_participant_joining_mid_call_puts_the_call_in_a_large_scope(floor: dict[str, object]) -> None:
    head = floor["head"]
    call = new_call(CUSTOMER)
    assert call not in visible_calls(User.objects.get(pk=head.pk))
    participants.ensure_participant(call_id=call.id, raw_id="8:acs:floor_042")
    assert call in visible_calls(User.objects.get(pk=head.pk))
    assert logged_in(head).get(call.get_absolute_url()).status_code == 200
    assert logged_in(head).get(floor["calls"]["stranger"].get_absolute_url()).status_code == 404


def team_queries(queries: CaptureQueriesContext) -> int:
    return sum('"calls_team' in query["sql"] for query in queries)


def test_a_users_scope_is_read_once_per_user_object_and_afresh_for_the_next() -> None:
    sam, kim = make_agent("sam", "8:acs:sam"), make_agent("kim", "8:acs:kim")
    sue = watcher("sue")
    support = make_team("Support", members=(sam,), supervisors=(sue,))
    sue.has_perm("calls.view_all_calls")  # her permissions loaded, as every view has them
    with CaptureQueriesContext(connection) as first:
        assert scope_of(sue).team_agent_ids == {sam.pk}
    with CaptureQueriesContext(connection) as again:
        visible_calls(sue).exists()
        supervised_calls(sue).exists()
    assert len(first) == 2  # who she is (her agent, whether she supervises), then her teams' members and routes
    assert team_queries(again) == 0
    support.members.add(kim)
    assert scope_of(sue).team_agent_ids == {sam.pk}  # the same request
    assert scope_of(User.objects.get(pk=sue.pk)).team_agent_ids == {sam.pk, kim.pk}  # the next one


def test_an_agents_scope_is_one_query() -> None:
    sam = make_agent("sam", "8:acs:sam")
    sam.user.has_perm("calls.view_all_calls")
    with CaptureQueriesContext(connection) as read:
        assert scope_of(sam.user).agent_ids == {sam.pk}
    assert len(read) == 1


def test_a_call_page_reads_the_scope_once(floor: dict[str, object]) -> None:
    """The call page asks twice (visible_calls, supervised_calls for the access history link)."""
    with CaptureQueriesContext(connection) as one_read:
        scope_of(User.objects.get(pk=floor["head"].pk))
    client = logged_in(floor["head"])
    with CaptureQueriesContext(connection) as page:
        assert client.get(floor["calls"]["first"].get_absolute_url()).status_code == 200
    assert team_queries(page) == team_queries(one_read) == 2


def test_a_team_with_no_members_still_routes_its_number() -> None:
    sue = watcher("sue")
    team = make_team("Queue", supervisors=(sue,))
    team.routes.create(called="4:+18005550100")
    assert scope_of(sue).team_called == {"4:+18005550100"}
    assert scope_of(sue).team_agent_ids == frozenset()
    assert Team.objects.count() == 1
