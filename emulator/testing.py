"""Run the emulator in a subprocess for tests and demos.

with run_emulator_in_subprocess(default_script="short_call") as acs:
    client = CallAutomationClient(acs.base_url, AzureKeyCredential(acs.access_key))
    ...
    acs.calls()
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulator.config import DEFAULT_ACCESS_KEY, DEFAULT_ISSUER, DEFAULT_RESOURCE_ID
from emulator.control_client import ControlAPIError, http_json

REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 20.0


@dataclass
class RunningEmulator:
    base_url: str  # no trailing slash: pass it to CallAutomationClient as is (acs-protocol.md 4.1)
    access_key: str
    resource_id: str
    issuer: str
    process: subprocess.Popen
    log_path: Path

    @property
    def connection_string(self) -> str:
        return f"endpoint={self.base_url}/;accesskey={self.access_key}"

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/calling/keys"

    def get(self, path: str) -> Any:
        return http_json("GET", self.base_url + path)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return http_json("POST", self.base_url + path, body or {})

    def delete(self, path: str) -> Any:
        return http_json("DELETE", self.base_url + path)

    def ring(self, incoming_call_url: str, script: str | None = None) -> dict[str, Any]:
        return self.post("/emulator/ring", {"incoming_call_url": incoming_call_url, "script": script})

    def calls(self) -> list[dict[str, Any]]:
        return self.get("/emulator/calls")["calls"]

    def call(self, call_connection_id: str) -> dict[str, Any]:
        return self.get(f"/emulator/calls/{call_connection_id}")

    def requests(self) -> list[dict[str, Any]]:
        return self.get("/emulator/requests")["requests"]

    def clear_requests(self) -> None:
        self.delete("/emulator/requests")

    def fault(self, call_connection_id: str, fault: str, **options: Any) -> dict[str, Any]:
        return self.post(f"/emulator/calls/{call_connection_id}/faults", {"fault": fault, **options})

    def hang_up(self, call_connection_id: str) -> dict[str, Any]:
        return self.post(f"/emulator/calls/{call_connection_id}/hangup")

    def read_log(self) -> str:
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def run_emulator_in_subprocess(port: int | None = None, **options: Any) -> Iterator[RunningEmulator]:
    """Start `python -m emulator serve` with `options` as flags (access_key="..." -> --access-key ...)."""
    port = port or free_port()
    options.setdefault("access_key", DEFAULT_ACCESS_KEY)
    options.setdefault("resource_id", DEFAULT_RESOURCE_ID)
    options.setdefault("issuer", DEFAULT_ISSUER)
    command = [sys.executable, "-m", "emulator", "serve", "--host", "127.0.0.1", "--port", str(port)]
    for name, value in options.items():
        if value is not None:
            command += [f"--{name.replace('_', '-')}", str(value)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    log_file = tempfile.NamedTemporaryFile(prefix="acs-emulator-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    emulator = RunningEmulator(
        base_url=f"http://127.0.0.1:{port}",
        access_key=options["access_key"],
        resource_id=options["resource_id"],
        issuer=options["issuer"],
        process=process,
        log_path=Path(log_file.name),
    )
    try:
        _wait_until_ready(emulator)
        yield emulator
    finally:
        _stop(process)
        log_file.close()  # the log stays at emulator.log_path for post-mortems


def _wait_until_ready(emulator: RunningEmulator) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if emulator.process.poll() is not None:
            raise RuntimeError(f"the emulator exited with {emulator.process.returncode}:\n{emulator.read_log()}")
        try:
            emulator.get("/calling/keys")
            return
        except (OSError, ControlAPIError):
            time.sleep(0.1)
    raise RuntimeError(f"the emulator did not answer within {STARTUP_TIMEOUT} s:\n{emulator.read_log()}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
