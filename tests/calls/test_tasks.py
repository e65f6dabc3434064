"""The background worker (procrastinate, calls/tasks.py) runs the retention purge on its schedule."""

from __future__ import annotations

import pytest
from procrastinate.contrib.django import app

from calls import tasks
from calls.models import DeletionReceipt, TranscriptSegment
from tests.calls.test_retention import audio_dir, ended_call, sales_policy  # noqa: F401 - fixture


def test_the_purge_is_scheduled_by_the_setting() -> None:
    (periodic,) = [
        entry for entry in app.periodic_registry.periodic_tasks.values() if entry.task is tasks.purge_expired
    ]
    assert periodic.cron == "17 * * * *"


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_a_deferred_purge() -> None:
    sales_policy()
    call = ended_call(40)
    tasks.purge_expired.defer(timestamp=0)  # what the periodic scheduler does each tick

    worker = app.with_connector(app.connector.get_worker_connector())
    worker.run_worker(queues=["retention"], wait=False, install_signal_handlers=False, listen_notify=False)

    assert not TranscriptSegment.objects.filter(call=call).exists()
    assert DeletionReceipt.objects.get().call_ids == [str(call.id)]
