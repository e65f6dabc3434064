"""A media-socket URL is a credential for its call: it must not reach the logs of a server run the
way docs/deployment.md runs it (daphne's own access log off; nginx logs the path with the token cut)."""

from __future__ import annotations

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from calls.models import Call
from tests.conftest import media_path
from tests.servers import run_app_server
from tests.streaming import acs_packets as acs

DEPLOYMENT_DAPHNE_OPTIONS = ("--proxy-headers", "--verbosity", "0")  # as in docs/deployment.md's unit


@pytest.mark.django_db(transaction=True)
async def test_no_media_token_is_written_to_the_log(call: Call, django_db_setup: None) -> None:
    ended = await Call.objects.acreate(direction=Call.Direction.INBOUND, state=Call.State.DISCONNECTED)
    with run_app_server(daphne_options=DEPLOYMENT_DAPHNE_OPTIONS) as server:
        async with websockets.connect(server.ws_base_url + media_path(call.id)) as media:
            await media.send(acs.audio_metadata())
        with pytest.raises(InvalidStatus):
            async with websockets.connect(server.ws_base_url + media_path(ended.id)):
                pass
        log = server.log()

    assert "refused: the call has ended" in log
    for token in (media_path(call.id).split("/")[3], media_path(ended.id).split("/")[3]):
        assert token not in log
