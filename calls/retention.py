"""Retention: which policy covers a call, when each part of it expires, and purging what has expired.

A call's parts expire separately, counted from when it ended: the transcript (segments with their
words and search data, participants' identities and names, and the call's caller and callee), the
audio files, the event history, and the access log. What is left after a purge is the tombstone:
the call row (id, direction, start, end, states) and its CallRetention row, saying when each part
went and by which rule. Every purge writes a DeletionReceipt.

Purging never holds a lock for long, so live ingest on other calls never waits on it: rows go in
batches of RETENTION_PURGE_BATCH_SIZE, each DELETE its own transaction, and a call's own row is
touched once, in a one-statement transaction. Only ended calls have expiry dates, so nothing is
purged from a live call.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Model, Q, QuerySet
from django.utils import timezone

from calls import holds
from calls.audio_files import audio_directory
from calls.models import (
    ENDED_STATES,
    AccessLog,
    Call,
    CallEvent,
    CallRetention,
    DeletionReceipt,
    Participant,
    RetentionPolicy,
    TranscriptSegment,
)

logger = logging.getLogger(__name__)

DEFAULT_POLICY_NAME = "Default (RETENTION_* settings)"
PHONE_PUNCTUATION = re.compile(r"[\s().-]")
TRANSCRIPT, AUDIO, EVENTS = "transcript", "audio", "events"
PARTS = (TRANSCRIPT, AUDIO, EVENTS)


@dataclass(frozen=True)
class Rule:
    """A RetentionPolicy, or the default from the settings (policy None)."""

    name: str
    transcript_days: int
    audio_days: int
    events_days: int
    access_log_days: int
    policy: RetentionPolicy | None = None

    def matches(self, call: Call) -> bool:
        policy = self.policy
        if policy is None:
            return True
        if policy.direction and policy.direction != call.direction:
            return False
        return not policy.called or same_identity(policy.called, call.callee)

    def days(self, part: str) -> int:
        return getattr(self, f"{part}_days")


def same_identity(wanted: str, raw_id: str) -> bool:
    """A phone number matches however it is written ("+1 425 555 0100", "4:+14255550100")."""
    return _normalised(wanted) == _normalised(raw_id)


def _normalised(identity: str) -> str:
    value = identity.strip()
    if value.startswith("4:") or re.fullmatch(r"[\d\s().+-]+", value):
        value = PHONE_PUNCTUATION.sub("", value.removeprefix("4:"))
    return value


def default_rule() -> Rule:
    return Rule(
        DEFAULT_POLICY_NAME,
        transcript_days=settings.RETENTION_TRANSCRIPT_DAYS,
        audio_days=settings.RETENTION_AUDIO_DAYS,
        events_days=settings.RETENTION_EVENTS_DAYS,
        access_log_days=settings.RETENTION_ACCESS_LOG_DAYS,
    )


def current_rules() -> list[Rule]:
    """Every policy by priority, then the default, which matches everything."""
    policies = [
        Rule(
            policy.name,
            transcript_days=policy.transcript_days,
            audio_days=policy.audio_days,
            events_days=policy.events_days,
            access_log_days=policy.access_log_days,
            policy=policy,
        )
        for policy in RetentionPolicy.objects.order_by("priority", "id")
    ]
    return [*policies, default_rule()]


def rule_for(call: Call, rules: list[Rule], retention: CallRetention | None = None) -> Rule:
    """The first rule that matches. A call whose identities are purged keeps its policy: it could no
    longer be matched by the number it called, but its other parts still go by that policy's days."""
    if retention is not None and retention.transcript_purged_at is not None:
        return next((rule for rule in rules if rule.policy and rule.policy.pk == retention.policy_id), rules[-1])
    return next(rule for rule in rules if rule.matches(call))


def expiry_fields(call: Call, rule: Rule) -> dict[str, object]:
    ended = call.ended_at or call.created_at
    return {
        "policy": rule.policy,
        "policy_name": rule.name,
        "transcript_expires_at": ended + timedelta(days=rule.transcript_days),
        "audio_expires_at": ended + timedelta(days=rule.audio_days),
        "events_expires_at": ended + timedelta(days=rule.events_days),
        "access_log_days": rule.access_log_days,
    }


def assign_expiry(call: Call) -> None:
    """Called when a call ends: its policy and expiry dates, from then on shown on its page."""
    _store_expiry([call], current_rules())


def recompute_expiry(batch_size: int | None = None) -> int:
    """Recompute every ended call's policy and dates after a policy changed; returns how many changed.

    Calls are read in batches by id and only changed rows are written, each batch in its own short
    statements; nothing locks a call row.
    """
    size = batch_size or settings.RETENTION_PURGE_BATCH_SIZE
    rules = current_rules()
    calls = Call.objects.ended().order_by("pk").only("id", "direction", "callee", "created_at", "ended_at")
    changed, last_id = 0, None
    while True:
        batch = list((calls.filter(pk__gt=last_id) if last_id else calls)[:size])
        if not batch:
            return changed
        changed += _store_expiry(batch, rules)
        last_id = batch[-1].pk


def _store_expiry(calls: list[Call], rules: list[Rule]) -> int:
    existing = CallRetention.objects.in_bulk([call.pk for call in calls])
    new, changed = [], []
    for call in calls:
        retention = existing.get(call.pk)
        wanted = expiry_fields(call, rule_for(call, rules, retention))
        if retention is None:
            new.append(CallRetention(call_id=call.pk, **wanted))
        elif any(getattr(retention, name) != value for name, value in wanted.items()):
            for name, value in wanted.items():
                setattr(retention, name, value)
            changed.append(retention)
    CallRetention.objects.bulk_create(new, ignore_conflicts=True)  # a call ending meanwhile got its own
    CallRetention.objects.bulk_update(changed, list(expiry_fields(calls[0], rules[-1])))
    return len(new) + len(changed)


# --- purging ------------------------------------------------------------------------------------------


@dataclass
class Removed:
    """What a purge removed, or (dry run) would remove."""

    segments: int = 0
    participants: int = 0
    events: int = 0
    access_logs: int = 0
    audio_files: int = 0

    def add(self, other: Removed) -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def __str__(self) -> str:
        return ", ".join(f"{value} {name.replace('_', ' ')}" for name, value in vars(self).items())


@dataclass
class PolicyPurge:
    """One rule's share of a purge run: one receipt."""

    rule_name: str
    parts: dict[str, list[str]] = field(default_factory=dict)  # call id → expired parts
    removed: Removed = field(default_factory=Removed)
    receipt: DeletionReceipt | None = None


def expired_parts(now: datetime) -> dict[str, PolicyPurge]:
    """By policy name: every ended call with a part past its expiry and not yet purged, and which parts."""
    due = Q()
    for part in PARTS:
        due |= Q(**{f"{part}_expires_at__lte": now, f"{part}_purged_at__isnull": True})
    held = holds.held_call_ids()  # never purged, however long expired
    plan: dict[str, PolicyPurge] = {}
    rows = CallRetention.objects.filter(due, call__state__in=ENDED_STATES).order_by("call_id")
    for retention in rows.iterator(chunk_size=2000):
        if str(retention.call_id) in held:
            continue
        parts = [
            part
            for part in PARTS
            if getattr(retention, f"{part}_purged_at") is None and getattr(retention, f"{part}_expires_at") <= now
        ]
        plan.setdefault(retention.policy_name, PolicyPurge(retention.policy_name)).parts[str(retention.call_id)] = parts
    return plan


def purge_expired(*, dry_run: bool = False, now: datetime | None = None) -> list[PolicyPurge]:
    """Delete every expired part of every call no hold covers, and old access-log entries.

    A dry run works out the same in a transaction it rolls back, so it changes nothing.
    """
    now = now or timezone.now()
    if dry_run:
        with transaction.atomic():
            recompute_expiry()
            purges = _plan_with_counts(now)
            transaction.set_rollback(True)
        return purges
    recompute_expiry()
    purges = list(expired_parts(now).values())
    for purge in purges:
        _run(purge, now)
    _purge_access_logs(now, purges)
    return purges


def _plan_with_counts(now: datetime) -> list[PolicyPurge]:
    purges = list(expired_parts(now).values())
    for purge in purges:
        for call_id, parts in purge.parts.items():
            purge.removed.add(count_parts(call_id, parts))
    access_logs = _access_logs_due(now)
    for purge in purges:
        purge.removed.access_logs = access_logs.pop(purge.rule_name, 0)
    purges += [PolicyPurge(name, removed=Removed(access_logs=count)) for name, count in access_logs.items() if count]
    return purges


def count_parts(call_id: str, parts: Iterable[str]) -> Removed:
    removed = Removed()
    if TRANSCRIPT in parts:
        removed.segments = TranscriptSegment.objects.filter(call_id=call_id).count()
        removed.participants = Participant.objects.filter(call_id=call_id).count()
    if AUDIO in parts:
        removed.audio_files = len(_audio_files(audio_directory(call_id)))
    if EVENTS in parts:
        removed.events = CallEvent.objects.filter(call_id=call_id).count()
    return removed


def _run(purge: PolicyPurge, now: datetime) -> None:
    receipt = DeletionReceipt.objects.create(
        kind=DeletionReceipt.Kind.EXPIRY, rule=f"Retention policy “{purge.rule_name}”"
    )
    purge.receipt = receipt
    for call_id, parts in purge.parts.items():
        if holds.is_held(call_id):  # placed since the plan was made
            continue
        rule = f"Retention policy “{purge.rule_name}” (receipt {receipt.pk})"
        purge.removed.add(purge_call_parts(call_id, parts, rule=rule))
        receipt.call_ids.append(call_id)
        _save_counts(receipt, purge.removed)
    receipt.finished_at = timezone.now()
    receipt.save(update_fields=["finished_at"])
    logger.info("Purged %s under %s (receipt %s): %s", len(purge.parts), purge.rule_name, receipt.pk, purge.removed)


def _save_counts(receipt: DeletionReceipt, removed: Removed) -> None:
    for name, value in vars(removed).items():
        setattr(receipt, name, value)
    receipt.save(update_fields=["call_ids", *vars(removed)])


def purge_call_parts(call_id: str, parts: Iterable[str], *, rule: str) -> Removed:
    """Delete these parts of one call (files included) and record on its tombstone when and by which rule."""
    removed = Removed()
    now = timezone.now()
    if TRANSCRIPT in parts:
        removed.segments = _delete_in_batches(TranscriptSegment.objects.filter(call_id=call_id))
        removed.participants = _forget_identities(call_id)
    if AUDIO in parts:
        removed.audio_files = _delete_audio(audio_directory(call_id))
    if EVENTS in parts:
        removed.events = _delete_in_batches(CallEvent.objects.filter(call_id=call_id))
    stamps = {}
    for part in parts:
        stamps |= {f"{part}_purged_at": now, f"{part}_purged_by": rule}
    CallRetention.objects.filter(call_id=call_id).update(**stamps)
    return removed


def _delete_in_batches(rows: QuerySet[Model], batch_size: int | None = None) -> int:
    """Delete in batches, each its own transaction: a purge of 100,000 rows holds no lock for long.
    After each full batch it rests RETENTION_PURGE_PAUSE_SECONDS: back to back, the deletes (and their
    search-index upkeep) took enough of PostgreSQL to slow live calls' finals (performance.md)."""
    size = batch_size or settings.RETENTION_PURGE_BATCH_SIZE
    deleted = 0
    while ids := list(rows.order_by("pk").values_list("pk", flat=True)[:size]):
        deleted += rows.model.objects.filter(pk__in=ids).delete()[0]  # one DELETE: nothing cascades from these
        if len(ids) == size:
            time.sleep(settings.RETENTION_PURGE_PAUSE_SECONDS)
    return deleted


def _forget_identities(call_id: str) -> int:
    """Participants go (their raw ids and names), as do the call's own copies of them."""
    with transaction.atomic():
        participants, _ = Participant.objects.filter(call_id=call_id).delete()
        Call.objects.filter(pk=call_id).update(caller="", callee="", caller_display_name="")
    return participants


def _audio_files(directory: Path) -> list[Path]:
    return [path for path in directory.rglob("*") if path.is_file()] if directory.is_dir() else []


def _delete_audio(directory: Path) -> int:
    """The call's folder: every participant's WAV and the mixdown."""
    files = len(_audio_files(directory))
    if directory.is_dir():
        shutil.rmtree(directory)
    return files


def _access_logs_due(now: datetime) -> dict[str, int]:
    return {rule.name: _access_logs_of(rule, now).count() for rule in current_rules()}


def _access_logs_of(rule: Rule, now: datetime) -> QuerySet[AccessLog]:
    """Entries older than the rule's access-log days, of the calls it covers (the default also takes
    entries whose call was deleted before retention existed)."""
    old = AccessLog.objects.filter(at__lt=now - timedelta(days=rule.access_log_days))
    if rule.policy is not None:
        return old.filter(call__retention__policy=rule.policy)
    return old.filter(Q(call__isnull=True) | Q(call__retention__isnull=True) | Q(call__retention__policy__isnull=True))


def _purge_access_logs(now: datetime, purges: list[PolicyPurge]) -> None:
    by_name = {purge.rule_name: purge for purge in purges}
    for rule in current_rules():
        rows = _access_logs_of(rule, now)
        if not rows.exists():
            continue
        purge = by_name.get(rule.name)
        if purge is None:
            purge = PolicyPurge(rule.name)
            purge.receipt = DeletionReceipt.objects.create(
                kind=DeletionReceipt.Kind.EXPIRY, rule=f"Retention policy “{rule.name}”", finished_at=now
            )
            purges.append(purge)
        purge.removed.access_logs = _delete_in_batches(rows)
        _save_counts(purge.receipt, purge.removed)


Report = Callable[[str], None]


def describe(purges: list[PolicyPurge], report: Report, *, dry_run: bool) -> None:
    """What purge_expired prints: per policy, which calls lost which parts and how much."""
    verb = "Would remove" if dry_run else "Removed"
    if not purges:
        report("Nothing has expired.")
    for purge in purges:
        receipt = f" (receipt {purge.receipt.pk})" if purge.receipt else ""
        report(f"{purge.rule_name}{receipt}: {verb.lower()} {purge.removed}")
        for call_id, parts in purge.parts.items():
            report(f"  call {call_id}: {', '.join(parts)}")
