"""Agents joining calls: an identity an agent answers as makes its participant that agent (role agent,
the agent's name) and adds the agent to the call, wherever Callscribe learns of it: ACS's participant
lists, a transcription's participantRawID, an incoming call's caller, a call an agent places."""

from __future__ import annotations

import re

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from pytest_django.fixtures import Settings as SettingsWrapper

from calls import control, participants
from calls.models import AgentIdentity, Call, Participant, TeamRoute
from config.asgi import application
from emulator.tokens import TokenIssuer
from tests.calls.acs_servers import signed_callback_headers
from tests.calls.conftest import logged_in, new_call, say
from tests.calls.test_webhooks import callback_path, cloud_event, post_events
from tests.calls.test_webhooks import participants as roster
from tests.conftest import KIM, SAM, SUPPORT_LINE, ContactCentre, make_agent, media_path
from tests.streaming import acs_packets as acs

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed(acs_settings: SettingsWrapper, emulator_tokens: TokenIssuer) -> dict[str, str]:
    """Headers for a callback signed as ACS signs them (the emulator's key)."""
    return signed_callback_headers(emulator_tokens)


CUSTOMER = "4:+14255550101"


def roles(call: Call) -> dict[str, tuple[str, str]]:
    return {p.raw_id: (p.role, p.label) for p in Participant.objects.filter(call=call)}


def test_an_agent_in_acs_participant_list_joins_the_call_as_that_agent(
    client: Client, signed: dict[str, str], centre: ContactCentre
) -> None:
    call = new_call(CUSTOMER)

    post_events(client, [cloud_event("ParticipantsUpdated", **roster(1, CUSTOMER, SAM))], callback_path(call), **signed)

    assert roles(call) == {
        CUSTOMER: ("customer", "Customer +14255550101"),
        SAM: ("agent", "Agent Sam Ortega"),
    }
    call.refresh_from_db()
    assert call.agent_ids == [centre.sam.pk]
    assert Participant.objects.get(call=call, raw_id=SAM).agent == centre.sam


def test_a_call_answered_by_the_application_and_transferred_gets_the_agents_who_actually_joined(
    client: Client, signed: dict[str, str], centre: ContactCentre
) -> None:
    call = new_call(CUSTOMER, callee=SUPPORT_LINE)  # the support line, answered by Callscribe's application
    post_events(client, [cloud_event("ParticipantsUpdated", **roster(1, CUSTOMER))], callback_path(call), **signed)
    call.refresh_from_db()
    assert call.agent_ids == []

    post_events(client, [cloud_event("ParticipantsUpdated", **roster(2, CUSTOMER, KIM))], callback_path(call), **signed)
    post_events(client, [cloud_event("ParticipantsUpdated", **roster(3, CUSTOMER))], callback_path(call), **signed)

    call.refresh_from_db()
    assert call.agent_ids == [centre.kim.pk]  # she took part, and left: the call stays hers
    assert roles(call)[KIM] == ("agent", "Agent Kim Lee")


@pytest.mark.django_db(transaction=True)
async def test_an_agent_first_heard_on_the_media_socket_joins_the_call(centre: ContactCentre) -> None:
    call = await database_sync_to_async(new_call)(CUSTOMER)
    media = WebsocketCommunicator(application, media_path(call.id))
    assert (await media.connect())[0]
    for frame in [acs.transcription_metadata(), acs.transcription_data(KIM, "Billing, this is Kim.", 1000)]:
        await media.send_to(text_data=frame)
    await media.disconnect()

    call = await Call.objects.aget(pk=call.pk)
    assert call.agent_ids == [centre.kim.pk]
    segment = await call.segments.select_related("participant").aget()
    assert (segment.participant.role, segment.participant.label) == ("agent", "Agent Kim Lee")


def test_a_final_whose_speaker_is_an_agent_names_the_agent(centre: ContactCentre) -> None:
    call = new_call(CUSTOMER)
    segment = say(call, SAM, "Support, Sam speaking.", 1000)  # no participant recorded before: the final records Sam
    assert segment.participant.label == "Agent Sam Ortega"
    assert Call.objects.get(pk=call.pk).agent_ids == [centre.sam.pk]


def test_an_agent_calling_in_is_that_agent_from_the_ring(centre: ContactCentre) -> None:
    call = control.create_inbound_call(caller=KIM, callee=SUPPORT_LINE, caller_display_name="KIM MOBILE")
    assert roles(call) == {KIM: ("agent", "Agent Kim Lee")}
    assert Call.objects.get(pk=call.pk).agent_ids == [centre.kim.pk]


def test_a_call_an_agent_places_is_theirs(centre: ContactCentre) -> None:
    call = control.create_outbound_call(target="+14255550101", user=centre.sam.user)
    assert call.agent_ids == [centre.sam.pk]
    assert Call.objects.get(pk=call.pk).agent_ids == [centre.sam.pk]


def test_a_participant_recorded_before_their_identity_was_linked_becomes_the_agent_on_the_next_list(
    client: Client, signed: dict[str, str], db: None
) -> None:
    call = new_call(CUSTOMER)
    participants.ensure_participant(call_id=call.id, raw_id=SAM)
    assert roles(call)[SAM] == ("customer", "Customer ACS user …000005a3")
    sam = make_agent("sam", SAM, full_name="Sam Ortega")

    post_events(client, [cloud_event("ParticipantsUpdated", **roster(1, CUSTOMER, SAM))], callback_path(call), **signed)

    assert roles(call)[SAM] == ("agent", "Agent Sam Ortega")
    assert Call.objects.get(pk=call.pk).agent_ids == [sam.pk]


def test_the_call_page_names_agents_and_customers(centre: ContactCentre) -> None:
    call = new_call(CUSTOMER)
    participants.ensure_participant(call_id=call.id, raw_id=SAM)
    say(call, CUSTOMER, "My router is down.", 1000)
    say(call, SAM, "Let me check that.", 3000)

    page = logged_in(centre.sam.user).get(call.get_absolute_url()).content.decode()

    assert re.findall(r'<p class="speaker" title="[^"]*">([^<]*)</p>', page) == [
        "Customer +14255550101",
        "Agent Sam Ortega",
    ]
    assert '<span class="participant" title="4:+14255550101">Customer +14255550101</span>' in page


# --- the admin ------------------------------------------------------------------------------------------


@pytest.fixture
def admin_client(db: None) -> Client:
    return logged_in(User.objects.create_superuser("erin", password="x"))


def test_an_agent_and_the_identities_they_answer_as_are_added_in_the_admin(admin_client: Client) -> None:
    dana = User.objects.create_user("dana", first_name="Dana", last_name="Reyes", is_staff=True)
    response = admin_client.post(
        reverse("admin:calls_agent_add"),
        {
            "user": dana.pk,
            "identities-TOTAL_FORMS": "2",
            "identities-INITIAL_FORMS": "0",
            "identities-0-raw_id": "+1 (425) 555-0188",
            "identities-1-raw_id": "8:orgid:5c4b6e8a-1d2f-4a5b-9c3d-7e6f8a9b0c1d",
        },
    )
    assert response.status_code == 302
    assert sorted(AgentIdentity.objects.filter(agent__user=dana).values_list("raw_id", flat=True)) == [
        "4:+14255550188",  # typed any way, stored as ACS writes it
        "8:orgid:5c4b6e8a-1d2f-4a5b-9c3d-7e6f8a9b0c1d",
    ]
    listing = admin_client.get(reverse("admin:calls_agent_changelist")).content.decode()
    assert "Dana Reyes" in listing and "4:+14255550188" in listing


def test_an_identity_already_taken_by_another_agent_is_refused_clearly(admin_client: Client, db: None) -> None:
    make_agent("sam", "4:+14255550188", full_name="Sam Ortega")
    dana = User.objects.create_user("dana", is_staff=True)
    response = admin_client.post(
        reverse("admin:calls_agent_add"),
        {
            "user": dana.pk,
            "identities-TOTAL_FORMS": "1",
            "identities-INITIAL_FORMS": "0",
            "identities-0-raw_id": "+14255550188",
        },
    )
    assert response.status_code == 200
    assert "Agent identity with this ACS identity already exists." in response.content.decode()
    assert not AgentIdentity.objects.filter(agent__user=dana).exists()


def test_a_team_with_members_supervisors_and_a_routed_number_is_shown_in_the_admin(
    admin_client: Client, centre: ContactCentre
) -> None:
    listing = admin_client.get(reverse("admin:calls_team_changelist")).content.decode()
    assert "Support" in listing and "sue" in listing
    page = admin_client.get(reverse("admin:calls_team_change", args=[centre.support.pk])).content.decode()
    assert SUPPORT_LINE in page
    assert TeamRoute.objects.get(called=SUPPORT_LINE).team == centre.support
