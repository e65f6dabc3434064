from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandParser

from calls import erasure
from calls.management.users import add_user_option, user_named


class Command(BaseCommand):
    help = (
        "Access request (GDPR art. 15): write every transcript of the calls a phone number or ACS identity "
        "took part in, in every export format (json, txt, vtt, srt), into one zip archive."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("identity", help="A phone number (+14255550100) or ACS identity (8:acs:…).")
        parser.add_argument("--output", default="participant-export.zip", help="Where the zip goes.")
        add_user_option(parser)

    def handle(self, *args: object, **options: str) -> None:
        archive, calls = erasure.export_participant(options["identity"], user=user_named(options["user"]))
        Path(options["output"]).write_bytes(archive)
        self.stdout.write(f"Wrote {calls} calls' transcripts to {options['output']}.")
