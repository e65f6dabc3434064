"""Legal hold: while a hold is in force, the calls it covers are never purged and cannot be deleted.

A hold covers one call, or every call an identity (a phone number or ACS identity) took part in as
caller, callee or participant, started within an optional date range. Placing and releasing a hold
are written to the access log; the hold itself is never deleted, so it stays as evidence.
"""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from calls import audit
from calls.models import Call, LegalHold, Participant, raw_id_of

PLACE_PERMISSION = "calls.place_legal_hold"
PLACED = "legal hold placed"
RELEASED = "legal hold released"


def covers(hold: LegalHold) -> Q:
    """The calls a hold covers."""
    if hold.call_id:
        return Q(pk=hold.call_id)
    raw_id = raw_id_of(hold.identity)
    took_part = Exists(Participant.objects.filter(call=OuterRef("pk"), raw_id=raw_id))
    matches = Q(caller=raw_id) | Q(callee=raw_id) | took_part
    if hold.date_from:
        matches &= Q(created_at__date__gte=hold.date_from)
    if hold.date_to:
        matches &= Q(created_at__date__lte=hold.date_to)
    return matches


def in_force() -> QuerySet[LegalHold]:
    return LegalHold.objects.filter(released_at__isnull=True)


def held(calls: QuerySet[Call]) -> QuerySet[Call]:
    """The calls among these that a hold in force covers."""
    holds = list(in_force())
    if not holds:
        return calls.none()
    covered = Q()
    for hold in holds:
        covered |= covers(hold)
    return calls.filter(covered)


def held_call_ids() -> set[str]:
    return {str(call_id) for call_id in held(Call.objects.all()).values_list("pk", flat=True)}


def is_held(call_id: uuid.UUID | str) -> bool:
    return held(Call.objects.filter(pk=call_id)).exists()


def holds_on(call: Call) -> list[LegalHold]:
    """Every hold, in force or released, that covers this call (the call page and the admin list them)."""
    return [hold for hold in LegalHold.objects.select_related("placed_by", "released_by") if _covers_call(hold, call)]


def _covers_call(hold: LegalHold, call: Call) -> bool:
    return Call.objects.filter(pk=call.pk).filter(covers(hold)).exists()


def place(hold: LegalHold, user: AbstractBaseUser) -> LegalHold:
    """Save a new hold as placed by `user`, and audit it."""
    hold.placed_by = user
    hold.identity = raw_id_of(hold.identity)
    hold.full_clean()
    hold.save()
    audit.record_access(user, hold.call, PLACED, describe(hold))
    return hold


def release(hold: LegalHold, user: AbstractBaseUser) -> bool:
    """Release a hold in force; the calls it covered are purged on the next run if they have expired."""
    released = LegalHold.objects.filter(pk=hold.pk, released_at__isnull=True).update(
        released_at=timezone.now(), released_by=user
    )
    if released:
        hold.refresh_from_db()
        audit.record_access(user, hold.call, RELEASED, describe(hold))
    return bool(released)


def describe(hold: LegalHold) -> str:
    scope = f"call {hold.call_id}" if hold.call_id else f"calls of {hold.identity}"
    if hold.date_from or hold.date_to:
        scope += f" from {hold.date_from or 'the start'} to {hold.date_to or 'now'}"
    return f"Hold {hold.pk} ({hold.case_reference}): {scope}. {hold.reason}"
