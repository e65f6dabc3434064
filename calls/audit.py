"""The access audit: who viewed, exported, downloaded or revealed what of which call.

Control actions are logged by calls/control.py."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from calls.models import AccessLog, Call

VIEW = "view"
EXPORT = "export"
AUDIO = "audio"
REVEAL = "reveal"  # one redacted segment's original shown (calls/reveal.py)
EXPORT_ORIGINAL = "export_original"  # a transcript exported with its redacted originals (calls/reveal.py)


def record_access(
    user: AbstractBaseUser | AnonymousUser, call: Call | None, action: str, detail: str = ""
) -> AccessLog:
    return AccessLog.objects.create(
        user=user if user.is_authenticated else None,
        call=call,
        action=action,
        detail=detail,
    )
