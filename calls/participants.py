"""Who is on a call: the one place participants are written, whoever learns of them (a media socket's
frames, a final's speaker, ACS's ParticipantsUpdated callback, an incoming call's caller).

A participant whose identity an Agent answers as (AgentIdentity) joins as that agent: role *agent*,
the agent's name, and the agent added to `Call.agent_ids`, which decides who may see the call
(calls/permissions.py). Adding an agent publishes a call event, so a supervisor's live call list
shows the call the moment their agent joins it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction

from calls import call_reads, live_events
from calls.agent_identities import is_agent_identity
from calls.models import Agent, AgentIdentity, Call, Participant, participant_kind


@dataclass(frozen=True)
class Presence:
    """One entry of ACS's participant list."""

    raw_id: str
    is_muted: bool = False
    is_on_hold: bool = False


def agents_answering_as(raw_ids: Iterable[str]) -> dict[str, Agent]:
    """The agents these identities belong to, by identity (one query)."""
    links = AgentIdentity.objects.filter(raw_id__in=[raw_id for raw_id in raw_ids if raw_id]).select_related(
        "agent__user"
    )
    return {link.raw_id: link.agent for link in links}


def _as_agent(agent: Agent) -> dict[str, object]:
    return {"role": Participant.Role.AGENT, "agent": agent, "display_name": agent.name}


def ensure_participant(*, call_id: uuid.UUID, raw_id: str, display_name: str = "") -> Participant:
    # Whether the identity is an agent's is known without a query (calls/agent_identities.py).
    agent = agents_answering_as([raw_id]).get(raw_id) if is_agent_identity(raw_id) else None
    if agent is not None:
        return _agent_joined(call_id, raw_id, agent)
    participant, created = Participant.objects.get_or_create(
        call_id=call_id, raw_id=raw_id, defaults={"kind": participant_kind(raw_id), "display_name": display_name}
    )
    if not created and display_name and not participant.display_name:
        participant.display_name = display_name
        participant.save(update_fields=["display_name"])
    return participant


def note_participant(*, call_id: uuid.UUID, raw_id: str) -> None:
    """Record that someone is on the call, in one statement that does nothing when they are known:
    what a media socket does on each participant's first frame, four times per two-party call
    (audio and transcription sockets), all at once when many calls start together. An agent's
    identity (known without a query: calls/agent_identities.py) takes the longer way, to add them
    to the call."""
    if is_agent_identity(raw_id):
        ensure_participant(call_id=call_id, raw_id=raw_id)
        return
    Participant.objects.bulk_create(
        [Participant(call_id=call_id, raw_id=raw_id, kind=participant_kind(raw_id))], ignore_conflicts=True
    )


@transaction.atomic
def _agent_joined(call_id: uuid.UUID, raw_id: str, agent: Agent) -> Participant:
    # The call is locked first, as every writer of its participants does (update_roster's callers),
    # so two of them never wait for each other's locks in opposite orders.
    call = call_reads.locked_call(call_id)
    participant, _ = Participant.objects.update_or_create(
        call=call, raw_id=raw_id, defaults={"kind": participant_kind(raw_id), **_as_agent(agent)}
    )
    add_agents(call, [agent.pk])
    return participant


def add_agents(call: Call, agent_ids: Iterable[int]) -> None:
    """Add agents to a (locked) call's `agent_ids` and publish the change: who may see the call grew."""
    joined = sorted(set(agent_ids) - set(call.agent_ids))
    if joined:
        call.agent_ids = [*call.agent_ids, *joined]
        live_events.save_with_sequence(call, ["agent_ids"], "participants")


def add_placing_agent(call: Call, user: AbstractBaseUser | AnonymousUser | None) -> None:
    """A call an agent places from the dashboard is theirs, though ACS lists the application, not them."""
    if user is not None and user.is_authenticated:
        add_agents(call, Agent.objects.filter(user=user).values_list("pk", flat=True))


def update_roster(call: Call, present: Iterable[Presence], sequence: int | None) -> None:
    """Take ACS's list of everyone on a (locked) call now. `sequence` is the list's number: an older list
    arriving late is ignored (callbacks are not ordered, reference 3.1)."""
    if sequence is not None and call.participants_sequence is not None and sequence <= call.participants_sequence:
        return
    present = list({presence.raw_id: presence for presence in present}.values())  # one row each, the last kept
    agents = agents_answering_as(presence.raw_id for presence in present)
    _upsert_present(call, [presence for presence in present if presence.raw_id not in agents], {})
    _upsert_present(call, [presence for presence in present if presence.raw_id in agents], agents)
    # Mixed audio (empty raw id) is not a participant: it is never on or off the list.
    call.participants.exclude(raw_id__in=[presence.raw_id for presence in present]).exclude(raw_id="").update(
        in_call=False
    )
    if sequence is not None:
        call.participants_sequence = sequence
    joined = sorted({agent.pk for agent in agents.values()} - set(call.agent_ids))
    call.agent_ids = [*call.agent_ids, *joined]
    live_events.save_with_sequence(call, ["participants_sequence", "agent_ids"], "participants")


PRESENCE_FIELDS = ["kind", "is_muted", "is_on_hold", "in_call"]
AGENT_FIELDS = ["role", "agent", "display_name"]


def _upsert_present(call: Call, present: list[Presence], agents: dict[str, Agent]) -> None:
    """Insert or update these participants in one statement (ACS lists everyone on each change; one
    statement per participant made a two-party call's first list ten round trips). The agents among
    them (`agents`, by identity) are marked as such; a customer's role and name are left as they are."""
    if not present:
        return
    rows = [
        Participant(
            call=call,
            raw_id=presence.raw_id,
            kind=participant_kind(presence.raw_id),
            is_muted=presence.is_muted,
            is_on_hold=presence.is_on_hold,
            in_call=True,
            **(_as_agent(agents[presence.raw_id]) if agents else {}),
        )
        for presence in present
    ]
    fields = PRESENCE_FIELDS + (AGENT_FIELDS if agents else [])
    Participant.objects.bulk_create(rows, update_conflicts=True, unique_fields=["call", "raw_id"], update_fields=fields)
