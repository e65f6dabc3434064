from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.support import CHROMIUM, chromium
from tests.servers import AppServer, run_app_server


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives the dashboard in headless Chromium (needs /usr/bin/chromium)")


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audio")


@pytest.fixture(scope="module")
def dashboard_server(django_db_setup: None, django_db_blocker: object, audio_dir: Path) -> Iterator[AppServer]:
    """A real daphne on the test database, capturing audio into a temporary folder."""
    with run_app_server(AUDIO_CAPTURE="True", AUDIO_CAPTURE_DIR=str(audio_dir), STREAM_STATS_INTERVAL="0.5") as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed (apt-get install chromium)")
    pytest.importorskip("playwright", reason="playwright is not installed")
    # Playwright's sync API keeps an event loop running on this thread, which trips Django's guard
    # against ORM calls from async code; the tests' ORM calls are plain sync code.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with chromium() as browser:
            yield browser
