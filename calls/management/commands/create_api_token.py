from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from calls.api_tokens import create_token


class Command(BaseCommand):
    help = (
        "Make an API token for an integration (an agent desktop, an IVR) that acts as a staff user, and print "
        "its key once. It may pause and resume calls if the user has 'Can control calls'. Revoke it in the admin."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="The staff user the integration acts as.")
        parser.add_argument("--name", required=True, help='What uses it, e.g. "IVR payment flow".')

    def handle(self, *args: object, **options: str) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No user named {options['username']!r}.")
        if not (user.is_active and user.is_staff):
            raise CommandError(f"{user.username} is not active staff: a token of theirs could do nothing.")
        token, key = create_token(user=user, name=options["name"])
        self.stdout.write(f"API token {token.name!r} for {user.username}. The key, shown only now:\n{key}")
