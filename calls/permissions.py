"""Who may watch calls (the call pages, the admin's live panel and the live-feed sockets all ask here) and
who may control them (the call page's controls and the JSON API)."""

from __future__ import annotations

from importlib import import_module

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.utils.crypto import constant_time_compare

WATCH_PERMISSION = "calls.watch_call"
CONTROL_PERMISSION = "calls.control_call"


def can_watch(user: AbstractBaseUser | AnonymousUser) -> bool:
    return bool(user.is_authenticated and user.is_staff and user.is_active and user.has_perm(WATCH_PERMISSION))


def can_control(user: AbstractBaseUser | AnonymousUser) -> bool:
    return bool(user.is_authenticated and user.is_staff and user.is_active and user.has_perm(CONTROL_PERMISSION))


def session_can_watch(session_key: str | None) -> bool:
    """Whether the session a live socket was opened with is still logged in as a user who may watch.

    Re-read from the session store and the user table: logging out, the session expiring, a password
    change or losing the permission all end it.
    """
    if not session_key:
        return False
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key).load()
    user = get_user_model().objects.filter(pk=session.get(SESSION_KEY)).first() if session.get(SESSION_KEY) else None
    if user is None:
        return False
    session_hash = session.get(HASH_SESSION_KEY) or ""
    return constant_time_compare(session_hash, user.get_session_auth_hash()) and can_watch(user)
