"""Websocket paths no route serves: refused cleanly by the real daphne, one log line each."""

from __future__ import annotations

import uuid

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.servers import AppServer


@pytest.mark.parametrize("path", ["/ws/nothing-here/", "/ws/media/no-slash-", "/not-a-socket"])
async def test_an_unknown_websocket_path_gets_403_and_one_log_line(app_server: AppServer, path: str) -> None:
    probe = f"{path}{uuid.uuid4().hex}"

    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(app_server.ws_base_url + probe, open_timeout=10):
            pass

    assert refused.value.response.status_code == 403
    ours = [line for line in app_server.log().splitlines() if probe in line and " streaming.routing " in line]
    assert len(ours) == 1
    assert " WARNING streaming.routing Websocket for unknown path" in ours[0]
    assert "No route found" not in app_server.log()
    assert "Traceback" not in app_server.log()
