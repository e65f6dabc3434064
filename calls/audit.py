"""The access audit: who viewed, searched, exported, listened to, revealed or subscribed live to which
call, from which address and when. Control actions are logged by calls/control_views.py, holds by
calls/holds.py. The access history of a call (calls/views.py `access_history`) reads it back."""

from __future__ import annotations

import ipaddress

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet
from django.http import HttpRequest

from calls.models import AccessLog, Call

VIEW = "view"
EXPORT = "export"
AUDIO = "audio"
SEARCH = "search"
LIVE = "live"
ACCESS_HISTORY = "access history"
REVEAL = "reveal"  # one redacted segment's original shown (calls/reveal.py)
EXPORT_ORIGINAL = "export_original"  # a transcript exported with its redacted originals (calls/reveal.py)


def record_access(
    user: AbstractBaseUser | AnonymousUser, call: Call | None, action: str, detail: str = "", *, ip: str | None = None
) -> AccessLog:
    return AccessLog.objects.create(
        user=user if user.is_authenticated else None,
        call=call,
        action=action,
        detail=detail,
        ip=_address(ip),
    )


def _address(ip: str | None) -> str | None:
    """A client address PostgreSQL's inet takes, else None (a test client or a socket without one)."""
    try:
        return str(ipaddress.ip_address(ip or ""))
    except ValueError:
        return None


def record_request(request: HttpRequest, call: Call | None, action: str, detail: str = "") -> AccessLog:
    """An access through a web request. REMOTE_ADDR is the client's address: daphne sets it from the
    X-Forwarded-For our own nginx writes (docs/deployment.md), as for the login lockout."""
    return record_access(request.user, call, action, detail, ip=request.META.get("REMOTE_ADDR"))


def history_of(call: Call) -> QuerySet[AccessLog]:
    """Who looked at the call and what they did, newest first."""
    return AccessLog.objects.filter(call=call).select_related("user").order_by("-at", "-id")
