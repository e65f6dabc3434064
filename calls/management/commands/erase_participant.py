from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from calls import erasure


class Command(BaseCommand):
    help = (
        "Erase a person (GDPR art. 17): purge every call their phone number or ACS identity took part in, "
        "except calls under legal hold and live calls (listed), and write one deletion receipt."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("identity", help="A phone number (+14255550100) or ACS identity (8:acs:…).")
        parser.add_argument("--reason", default="", help="Why, e.g. the request's ticket; goes on the receipt.")
        parser.add_argument("--dry-run", action="store_true", help="Print what would go; change nothing.")

    def handle(self, *args: object, **options: object) -> None:
        dry_run = bool(options["dry_run"])
        result = erasure.erase_participant(str(options["identity"]), reason=str(options["reason"]), dry_run=dry_run)
        verb = "Would erase" if dry_run else "Erased"
        receipt = f" (receipt {result.receipt.pk})" if result.receipt else ""
        self.stdout.write(f"{verb} {len(result.erased)} calls{receipt}: {result.removed}")
        for call in result.erased:
            self.stdout.write(f"  call {call.pk}")
        for call in result.held:
            self.stdout.write(f"Skipped, under legal hold: call {call.pk}")
        for call in result.live:
            self.stdout.write(f"Skipped, still live (run again once it has ended): call {call.pk}")
