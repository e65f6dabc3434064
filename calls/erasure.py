"""Requests by a person (GDPR articles 15 and 17), found by their phone number or ACS identity: every
call they took part in, as caller, callee or participant.

Erasure purges those calls by the purge's own path (calls/retention.py), leaving tombstones and one
receipt; calls under legal hold, and live calls, are skipped and listed. The receipt names the person
only by the end of their identity: keeping the whole number would keep what was asked to be erased.
Access writes every transcript of theirs, in every export format, into one zip archive.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from calls import audit, deletion, holds, permissions, retention
from calls.exports import FORMATS, export_transcript
from calls.models import Call, CallRetention, DeletionReceipt, Participant


def calls_of(identity: str) -> QuerySet[Call]:
    raw_id = holds.raw_id_of(identity)
    took_part = Exists(Participant.objects.filter(call=OuterRef("pk"), raw_id=raw_id))
    return Call.objects.filter(Q(caller=raw_id) | Q(callee=raw_id) | took_part).order_by("created_at")


def masked(identity: str) -> str:
    raw_id = holds.raw_id_of(identity)
    return f"…{raw_id[-4:]}" if len(raw_id) > 4 else "…"


@dataclass
class Erasure:
    identity: str
    erased: list[Call] = field(default_factory=list)
    held: list[Call] = field(default_factory=list)
    live: list[Call] = field(default_factory=list)
    removed: retention.Removed = field(default_factory=retention.Removed)
    receipt: DeletionReceipt | None = None


def erase_participant(
    identity: str, *, user: AbstractBaseUser | None = None, reason: str = "", dry_run: bool = False
) -> Erasure:
    """Purge every call the person took part in, except held and live ones; one receipt for all."""
    erasure = Erasure(identity)
    for call in calls_of(identity):
        if call.is_live:
            erasure.live.append(call)
        elif holds.is_held(call.pk):
            erasure.held.append(call)
        elif not deletion.is_deleted(call.pk):
            erasure.erased.append(call)
    if dry_run or not erasure.erased:
        for call in erasure.erased:
            erasure.removed.add(retention.count_parts(str(call.pk), _left(call)))
        return erasure
    why = f": {reason.strip()}" if reason.strip() else ""
    receipt = DeletionReceipt.objects.create(
        kind=DeletionReceipt.Kind.ERASURE, rule=f"Erasure request for {masked(identity)}{why}", user=user
    )
    rule = f"Erasure request (receipt {receipt.pk})"
    for call in erasure.erased:
        if holds.is_held(call.pk):  # placed since the calls were listed
            erasure.held.append(call)
            continue
        retention.assign_expiry(call)
        erasure.removed.add(retention.purge_call_parts(call.pk, _left(call), rule=rule))
        receipt.call_ids.append(str(call.pk))
    erasure.erased = [call for call in erasure.erased if call not in erasure.held]
    for name, value in vars(erasure.removed).items():
        setattr(receipt, name, value)
    receipt.finished_at = timezone.now()
    receipt.detail = f"Skipped, under legal hold: {', '.join(str(call.pk) for call in erasure.held) or 'none'}"
    receipt.save()
    erasure.receipt = receipt
    return erasure


def _left(call: Call) -> list[str]:
    """The parts not purged yet."""
    tombstone = CallRetention.objects.filter(call=call).first()
    if tombstone is None:
        return list(retention.PARTS)
    return [part for part in retention.PARTS if getattr(tombstone, f"{part}_purged_at") is None]


def export_participant(identity: str, *, user: AbstractBaseUser | None = None) -> tuple[bytes, int]:
    """A zip of every transcript of the person's calls, in every export format; returns it and how many
    calls. Given a user, only the calls in their scope, and the export is logged as theirs."""
    buffer = io.BytesIO()
    calls = list(permissions.visible_calls(user, calls_of(identity)) if user is not None else calls_of(identity))
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for call in calls:
            for export_format in FORMATS:
                archive.writestr(f"call-{call.id}.{export_format}", export_transcript(call, export_format))
            audit.record_access(user or AnonymousUser(), call, audit.EXPORT, "every format (access request by person)")
    return buffer.getvalue(), len(calls)
