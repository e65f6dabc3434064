from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import QuerySet

from calls import audit
from calls.exports import FORMATS, export_transcript
from calls.management.users import add_user_option, user_named
from calls.models import Call, parse_uuid
from calls.permissions import visible_calls


class Command(BaseCommand):
    help = "Write a call's final transcript to stdout."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("call_connection_id", help="ACS callConnectionId (or Callscribe's own call id).")
        parser.add_argument("--format", choices=FORMATS, default="json")
        add_user_option(parser)

    def handle(self, *args: object, **options: str) -> None:
        user = user_named(options["user"])
        calls = visible_calls(user) if user is not None else Call.objects.all()
        call = _find_call(calls, options["call_connection_id"])
        detail = f"{options['format']} (manage.py export_transcript)"
        audit.record_access(user or AnonymousUser(), call, audit.EXPORT, detail)
        self.stdout.write(export_transcript(call, options["format"]), ending="")


def _find_call(calls: QuerySet[Call], identifier: str) -> Call:
    """A call out of the user's scope is not found, as on the dashboard."""
    call = calls.filter(call_connection_id=identifier).first()
    if call is None and (call_id := parse_uuid(identifier)):
        call = calls.filter(pk=call_id).first()
    if call is None:
        raise CommandError(f"No call with callConnectionId or id {identifier!r}.")
    return call
