from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from calls.exports import FORMATS, export_transcript
from calls.models import Call, parse_uuid


class Command(BaseCommand):
    help = "Write a call's final transcript to stdout."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("call_connection_id", help="ACS callConnectionId (or Callscribe's own call id).")
        parser.add_argument("--format", choices=FORMATS, default="json")

    def handle(self, *args: object, **options: str) -> None:
        call = _find_call(options["call_connection_id"])
        self.stdout.write(export_transcript(call, options["format"]), ending="")


def _find_call(identifier: str) -> Call:
    call = Call.objects.filter(call_connection_id=identifier).first()
    if call is None and (call_id := parse_uuid(identifier)):
        call = Call.objects.filter(pk=call_id).first()
    if call is None:
        raise CommandError(f"No call with callConnectionId or id {identifier!r}.")
    return call
