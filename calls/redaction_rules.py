"""The redaction rules in force: the phone region from settings and the enabled RedactionRule rows,
compiled once and cached, and the /metrics counter of what was redacted.

The cache is per process: saving or deleting a rule clears it in the process that saved, and every other
process reloads within RULES_MAX_AGE seconds, so no database query runs per transcription result.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from prometheus_client import Counter

from calls.models import RedactionRule
from calls.redaction import Rules

RULES_MAX_AGE = 30.0

entities_redacted = Counter(
    "callscribe_entities_redacted_total", "Sensitive entities replaced by placeholders, by type.", ["type"]
)

_lock = threading.Lock()
_cached: tuple[float, Rules] | None = None


def redaction_on() -> bool:
    return settings.REDACTION != "off"


def current_rules() -> Rules:
    """The rules to redact with (reads the database at most every RULES_MAX_AGE seconds)."""
    global _cached
    with _lock:
        if _cached is not None and time.monotonic() - _cached[0] < RULES_MAX_AGE:
            return _cached[1]
    custom = tuple(
        (rule.label, re.compile(rule.pattern)) for rule in RedactionRule.objects.filter(enabled=True).order_by("label")
    )
    rules = Rules(phone_region=settings.REDACTION_PHONE_REGION, custom=custom)
    with _lock:
        _cached = (time.monotonic(), rules)
    return rules


@receiver([post_save, post_delete], sender=RedactionRule)
def forget_rules(**kwargs: object) -> None:
    global _cached
    with _lock:
        _cached = None


def count_redacted(counts: Mapping[str, int]) -> None:
    for entity_type, count in counts.items():
        entities_redacted.labels(type=entity_type).inc(count)
