"""Background jobs, run by `manage.py procrastinate worker` (procrastinate keeps its jobs in PostgreSQL
and claims them with SKIP LOCKED, so any number of workers may run and each job runs once).

The purge is periodic (RETENTION_PURGE_CRON): every worker schedules it, procrastinate defers it
once per tick, and the queueing lock keeps a slow run from piling up behind itself.
"""

from __future__ import annotations

import logging

from django.conf import settings
from procrastinate.contrib.django import app

from calls import retention

logger = logging.getLogger(__name__)


@app.periodic(cron=settings.RETENTION_PURGE_CRON)
@app.task(queue="retention", queueing_lock="purge_expired")
def purge_expired(timestamp: int) -> None:
    """What `manage.py purge_expired` does, on the schedule."""
    purges = retention.purge_expired()
    for purge in purges:
        logger.info("Retention purge under %s: %s", purge.rule_name, purge.removed)
