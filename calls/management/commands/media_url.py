from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from calls import services
from calls.models import Call, parse_uuid
from calls.tokens import media_socket_url


class Command(BaseCommand):
    help = "Print a fresh signed media-socket URL for a call (a new call when none is given)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("call_id", nargs="?", help="Callscribe's call id; omit to create a call.")

    def handle(self, *args: object, **options: str | None) -> None:
        if options["call_id"]:
            call_id = parse_uuid(options["call_id"])
            call = Call.objects.filter(pk=call_id).first() if call_id else None
            if call is None:
                raise CommandError(f"No call with id {options['call_id']!r}.")
        else:
            call = services.create_call()
        self.stdout.write(media_socket_url(call.id))
