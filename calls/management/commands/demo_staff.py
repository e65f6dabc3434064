from __future__ import annotations

import secrets

from django.contrib.auth.models import Permission, User
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Create (or reset) a staff login for the demo, allowed to watch and control calls, and print it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="demo")

    def handle(self, *args: object, **options: str) -> None:
        password = secrets.token_urlsafe(9)
        user, _ = User.objects.get_or_create(username=options["username"])
        user.is_staff = True
        user.set_password(password)
        user.save()
        user.user_permissions.add(
            *Permission.objects.filter(content_type__app_label="calls", codename__in=["watch_call", "control_call"])
        )
        self.stdout.write(f"Log in as:  {user.username} / {password}")
