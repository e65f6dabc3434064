"""The command line: `serve` with ACS_EMULATOR_* variables and a clean SIGINT, and `ring`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

from emulator.control_client import http_json
from emulator.testing import REPO_ROOT, free_port
from tests.emulator.conftest import FakeApp


def test_it_serves_with_env_settings_and_stops_cleanly_on_sigint() -> None:
    port = free_port()
    env = {
        **os.environ,
        "ACS_EMULATOR_PORT": str(port),
        "ACS_EMULATOR_RESOURCE_ID": "11111111-2222-3333-4444-555555555555",
        "ACS_EMULATOR_ISSUER": "https://issuer.example",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve"], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        banner = [process.stdout.readline() for _ in range(3)]
        assert f"Connection string: endpoint=http://127.0.0.1:{port}/;accesskey=" in banner[1]
        assert "11111111-2222-3333-4444-555555555555" in banner[2]
        config = _wait_for_json(f"http://127.0.0.1:{port}/calling/.well-known/acsopenidconfiguration")
        assert config["issuer"] == "https://issuer.example"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _wait_for_json(url: str) -> dict:
    for _ in range(100):
        try:
            return http_json("GET", url)
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


async def test_the_ring_command_makes_the_app_answer(acs, app: FakeApp) -> None:
    command = [sys.executable, "-m", "emulator", "ring", "--emulator-url", acs.base_url, "--script", "short_call"]
    command += ["--app-url", f"{app.base_url}/api/incoming-call?secret=XYZ"]
    process = await asyncio.create_subprocess_exec(*command, cwd=REPO_ROOT, stdout=subprocess.PIPE)
    stdout, _ = await process.communicate()
    assert process.returncode == 0
    result = json.loads(stdout)
    assert app.incoming[0]["data"]["incomingCallContext"] == result["incoming_call_context"]
    call_id = app.answered[0].call_connection_id
    await app.wait_for(lambda: "CallConnected" in app.types(call_id))
    await app.client.get_call_connection(call_id).hang_up(is_for_everyone=True)
