"""Settings read from the environment where a wrong reading would only show in production."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
PRINT_DATABASE_OPTIONS = (
    "import django; django.setup(); from django.conf import settings; print(settings.DATABASES['default']['OPTIONS'])"
)


def database_options(**environment: str) -> str:
    """The default database's OPTIONS as a fresh process reads them from `environment`."""
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_PREPARED_STATEMENTS"}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL="postgres://nobody@127.0.0.1:1/nothing",  # never connected to
        **environment,
    )
    command = [sys.executable, "-c", PRINT_DATABASE_OPTIONS]
    return subprocess.run(command, env=env, cwd=PROJECT, capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize(("setting", "threshold"), [(None, "5"), ("True", "5"), ("False", "None")])
def test_prepared_statements_are_on_unless_turned_off_for_a_pooler(setting: str | None, threshold: str) -> None:
    environment = {} if setting is None else {"DATABASE_PREPARED_STATEMENTS": setting}
    assert f"'prepare_threshold': {threshold}" in database_options(**environment)
