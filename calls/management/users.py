"""`--user` for commands that read calls for a person: they see what that user may see on the dashboard
(calls/permissions.py), and what they read goes to the access log under that user's name."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.management.base import CommandError, CommandParser

from calls.permissions import can_watch


def add_user_option(parser: CommandParser) -> None:
    parser.add_argument(
        "--user",
        default="",
        help="Read as this staff user: only calls in their scope, logged as theirs. Without it: every call.",
    )


def user_named(username: str) -> AbstractBaseUser | None:
    """The user `--user` names (None without one); an unknown name, or one who may not watch, is an error."""
    if not username:
        return None
    user = get_user_model().objects.filter(username=username).first()
    if user is None or not can_watch(user):
        raise CommandError(f"{username!r} is not a staff user who may watch calls.")
    return user
