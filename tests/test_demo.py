"""What bin/demo tells and leaves behind: voices or tones, the embedded PostgreSQL, the favicon."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from config.embedded_postgres import embedded_database_url, stop_embedded_database
from tests.servers import ROOT


def stub(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


def test_the_demo_says_when_espeak_cannot_be_installed_and_the_call_will_play_tones(tmp_path: Path) -> None:
    stub(tmp_path, "id", "echo 0")
    stub(tmp_path, "apt-get", 'echo "E: Unable to locate package espeak-ng" >&2; exit 100')
    stub(tmp_path, "tail", f'exec {shutil.which("tail")} "$@"')
    result = subprocess.run(
        [shutil.which("bash"), str(ROOT / "bin" / "voices")],
        env={"PATH": str(tmp_path)},  # no espeak-ng on it
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0  # the demo goes on, with tones
    assert "tones instead of voices" in result.stderr
    assert "Unable to locate package espeak-ng" in result.stderr


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # The embedded server runs as its own system user, which must reach the directory.
    directory = Path(tempfile.mkdtemp(prefix="callscribe-embedded-"))
    directory.chmod(0o755)
    yield directory / "postgres"
    stop_embedded_database(directory / "postgres")
    shutil.rmtree(directory, ignore_errors=True)


def test_the_embedded_postgresql_the_demo_started_can_be_stopped(data_dir: Path) -> None:
    embedded_database_url(data_dir)
    assert (data_dir / "postmaster.pid").exists()

    result = subprocess.run(
        [os.fspath(ROOT / ".venv" / "bin" / "python"), "-m", "config.embedded_postgres", "stop", str(data_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert f"Stopped the embedded PostgreSQL under {data_dir}." in result.stdout
    assert not (data_dir / "postmaster.pid").exists()


def test_the_favicon_is_served(client: Client) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert finders.find(response["Location"].removeprefix("/static/")) is not None
