from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from calls import retention


class Command(BaseCommand):
    help = (
        "Delete every part of every call that its retention policy says has expired (calls under legal hold "
        "are skipped), in small batches, and write a deletion receipt per policy. Safe to run while calls stream."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Print what would go; change nothing.")

    def handle(self, *args: object, **options: bool) -> None:
        dry_run = options["dry_run"]
        purges = retention.purge_expired(dry_run=dry_run)
        retention.describe(purges, self.stdout.write, dry_run=dry_run)
