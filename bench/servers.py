"""Start the servers under test pinned to one core, and read their CPU time and memory from /proc."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU time of a process (or of one of its threads) so far: utime and stime in
    /proc/<pid>/stat (or /proc/<pid>/task/<thread>/stat)."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_kib(pid: int, field: str) -> int:
    """A field of /proc/<pid>/status in KiB: VmRSS now, VmHWM the peak."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 30.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _wait_for_port(server: Server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited early; see {server.log_path}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{server.name} is not listening on {server.port}")


def _start(name: str, command: list[str], env: dict[str, str], port: int, core: int, log_dir: Path) -> Server:
    log_path = log_dir / f"{name}-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            ["taskset", "-c", str(core), *command], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    server = Server(name=name, port=port, process=process, log_path=log_path)
    _wait_for_port(server)
    return server


def start_daphne(
    settings: dict[str, str], *, core: int, log_dir: Path, application: str = "config.asgi:application"
) -> Server:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", **settings}
    command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), application]
    name = "daphne" if application == "config.asgi:application" else "bare-daphne"
    return _start(name, command, env, port, core, log_dir)


def start_baseline(*, core: int, log_dir: Path) -> Server:
    port = free_port()
    command = [sys.executable, str(ROOT / "bench" / "baseline_server.py"), "--port", str(port)]
    return _start("baseline", command, {**os.environ}, port, core, log_dir)
