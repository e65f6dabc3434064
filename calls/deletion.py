"""Deleting one call on request: everything personal goes by the purge's own path (files included),
the tombstone and a receipt stay. Refused for a live call and for a call under legal hold.

The call row stays as the tombstone (calls/retention.py), so its media-socket URL opens nothing (the
call has ended) and a late callback finds a call whose history is gone and stores nothing.
"""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from calls import holds, retention
from calls.models import Call, CallRetention, DeletionReceipt

DELETE_PERMISSION = "calls.delete_calls"


class DeletionRefused(Exception):
    """Why a call cannot be deleted, in words staff can act on."""


def check_deletable(call: Call) -> None:
    if call.is_live:
        raise DeletionRefused("This call is still live: hang up or wait for it to end, then delete it.")
    if holds.is_held(call.pk):
        raise DeletionRefused("This call is under legal hold and cannot be deleted until the hold is released.")
    if is_deleted(call.pk):
        raise DeletionRefused("This call has already been deleted.")


def is_deleted(call_id: uuid.UUID | str) -> bool:
    """Everything of the call has been purged: only its tombstone is left."""
    done = {f"{part}_purged_at__isnull": False for part in retention.PARTS}
    return CallRetention.objects.filter(call_id=call_id, **done).exists()


def delete_call(call: Call, *, user: AbstractBaseUser | None, reason: str) -> DeletionReceipt:
    """Purge every part of the call now, whatever its policy says, and write one receipt."""
    check_deletable(call)
    if not reason.strip():
        raise DeletionRefused("Say why the call is deleted.")
    retention.assign_expiry(call)  # a tombstone needs its retention row
    who = user.get_username() if user else "a command"
    receipt = DeletionReceipt.objects.create(
        kind=DeletionReceipt.Kind.DELETION,
        rule=f"Deleted by {who}: {reason.strip()}",
        user=user,
        call_ids=[str(call.pk)],
    )
    tombstone = CallRetention.objects.get(call=call)
    left = [part for part in retention.PARTS if getattr(tombstone, f"{part}_purged_at") is None]
    removed = retention.purge_call_parts(call.pk, left, rule=f"Deleted by {who} (receipt {receipt.pk})")
    receipt.finished_at = timezone.now()
    for name, value in vars(removed).items():
        setattr(receipt, name, value)
    receipt.save()
    return receipt
