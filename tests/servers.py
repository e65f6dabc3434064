"""Run real server processes for tests: daphne serving the app on the test database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
APPLICATION = "config.asgi:application"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_database_url() -> str:
    """A URL for the database the tests use (pytest-django's test database)."""
    settings = connection.settings_dict
    user = quote(settings.get("USER") or "", safe="")
    password = f":{quote(settings['PASSWORD'], safe='')}" if settings.get("PASSWORD") else ""
    host = settings.get("HOST") or ""
    port = f":{settings['PORT']}" if settings.get("PORT") else ""
    if host.startswith("/"):
        return f"postgres://{user}{password}@/{settings['NAME']}?host={quote(host, safe='')}"
    return f"postgres://{user}{password}@{host}{port}/{settings['NAME']}"


@dataclass
class AppServer:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on port {port} after {timeout} s")


@contextmanager
def run_app_server(
    port: int | None = None, daphne_options: tuple[str, ...] = (), **environment: str
) -> Iterator[AppServer]:
    """Start `daphne config.asgi:application` on the test database; stop it afterwards.

    Extra keyword arguments become environment variables (settings) of the server process.
    """
    port = port or free_port()
    env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "DEBUG": "True",
        "PYTHONUNBUFFERED": "1",
        "RECOVERY_WORKER": "False",  # a test that wants the recovery worker thread asks for it
        **environment,
    }
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"callscribe-daphne-{port}.log"  # noqa: S108
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), *daphne_options, APPLICATION],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = AppServer(port=port, process=process, log_path=log_path)
    try:
        wait_for_port(port, process)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
