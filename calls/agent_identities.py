"""Which ACS identities agents answer as, cached per process for the media path.

A media socket records each participant on their first frame in one statement
(`participants.note_participant`, docs/performance.md); looking each identity up first would double
that when many calls start together. So the set of every agent identity is read at most every
IDENTITIES_MAX_AGE seconds: saving or deleting one clears it in the process that saved, and every other
process reloads in time. ACS's participant lists (`participants.update_roster`) and a final's first
speaker look identities up in the database directly, so a stale set only delays a link, never loses it.
"""

from __future__ import annotations

import threading
import time

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from calls.models import AgentIdentity

IDENTITIES_MAX_AGE = 30.0

_lock = threading.Lock()
_cached: tuple[float, frozenset[str]] | None = None


def is_agent_identity(raw_id: str) -> bool:
    """Whether an agent may answer as `raw_id` (reads the database at most every IDENTITIES_MAX_AGE seconds)."""
    global _cached
    with _lock:
        if _cached is not None and time.monotonic() - _cached[0] < IDENTITIES_MAX_AGE:
            return raw_id in _cached[1]
    identities = frozenset(AgentIdentity.objects.values_list("raw_id", flat=True))
    with _lock:
        _cached = (time.monotonic(), identities)
    return raw_id in identities


@receiver([post_save, post_delete], sender=AgentIdentity)
def forget_identities(**kwargs: object) -> None:
    global _cached
    with _lock:
        _cached = None
