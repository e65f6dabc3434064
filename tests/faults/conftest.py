"""Fault tests: a private PostgreSQL and a private Redis each test may stop and start at will.

The shared servers on 5432/6379 are never touched. PostgreSQL comes from the installed binaries
(initdb + pg_ctl, run as the postgres user when we are root); tests skip when there are none.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.servers import ROOT, free_port


def _postgres_binary(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass
class PrivatePostgres:
    directory: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/callscribe"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        command = [_postgres_binary("pg_ctl"), "-D", str(self.directory / "data"), "-l", str(self.directory / "log")]
        subprocess.run(_as_postgres([*command, "-o", options, "-w", "start"]), check=True, capture_output=True)

    def stop(self) -> None:
        command = [_postgres_binary("pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop"]
        subprocess.run(_as_postgres(command), check=True, capture_output=True)

    def query(self, sql: str, *params: object) -> list[tuple]:
        with psycopg.connect(self.url, autocommit=True) as connection:
            return connection.execute(sql, params).fetchall()


@dataclass
class PrivateRedis:
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


def _wait_for_port(port: int, timeout: float = 20.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port}")


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivatePostgres]:
    if _postgres_binary("initdb") is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not installed")
    directory = Path(tempfile.mkdtemp(prefix="callscribe-faults-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    server = PrivatePostgres(directory, free_port())
    subprocess.run(
        _as_postgres([_postgres_binary("initdb"), "-D", str(directory / "data"), "-U", "postgres", "-A", "trust"]),
        check=True,
        capture_output=True,
    )
    server.start()
    try:
        with psycopg.connect(server.url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as connection:
            connection.execute("CREATE DATABASE callscribe")
        manage("migrate", database_url=server.url)
        yield server
    finally:
        stop = [_postgres_binary("pg_ctl"), "-D", str(directory / "data"), "-m", "immediate", "stop"]
        subprocess.run(_as_postgres(stop), capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def manage(*arguments: str, database_url: str) -> str:
    env = {**os.environ, "DATABASE_URL": database_url, "DEBUG": "True", "RECOVERY_WORKER": "False"}
    result = subprocess.run(
        [sys.executable, "manage.py", *arguments], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return result.stdout


def new_call(database: PrivatePostgres) -> tuple[uuid.UUID, str]:
    """A call in the private database, and the path of its signed media-socket URL."""
    path = urlsplit(manage("media_url", database_url=database.url).strip()).path
    token = path.rstrip("/").rsplit("/", 1)[1]
    return uuid.UUID(hex=token.split(":")[0]), path


def stored_texts(database: PrivatePostgres, call_id: uuid.UUID) -> list[str]:
    rows = database.query("SELECT text FROM calls_transcriptsegment WHERE call_id = %s ORDER BY sequence", call_id)
    return [text for (text,) in rows]


def wait_until(condition, timeout: float = 30.0, interval: float = 0.2) -> bool:
    """Poll `condition` until it is true; never a timing assertion, just a bound on waiting."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except psycopg.OperationalError:
            pass
        time.sleep(interval)
    return condition()
