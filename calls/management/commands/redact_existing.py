"""manage.py redact_existing [--dry-run]: apply the current redaction rules to stored calls and their audio."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from calls.redaction_backfill import redact_existing
from calls.redaction_rules import current_rules


class Command(BaseCommand):
    help = (
        "Redact card numbers, codes, SSNs, IBANs, e-mail addresses, phone numbers and custom-rule matches in "
        "stored transcripts (and silence them in captured audio), in small batches. Also re-encrypts kept "
        "originals under the first of REDACTION_KEYS."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Say what would change; change nothing.")
        parser.add_argument("--batch-size", type=int, default=200, help="Segments written per transaction.")

    def handle(self, *args: Any, dry_run: bool, batch_size: int, **options: Any) -> None:
        if settings.REDACTION == "off":
            raise CommandError("REDACTION is off: set it to redact or redact_keep_original first.")
        report = redact_existing(current_rules(), dry_run=dry_run, batch_size=batch_size, say=self.stdout.write)
        verb = "Would redact" if dry_run else "Redacted"
        entities = ", ".join(f"{count} {kind}" for kind, count in sorted(report.counts.items())) or "nothing"
        self.stdout.write(f"{verb} {entities} in {report.segments} segment(s) of {report.calls} call(s).")
        if not dry_run:
            self.stdout.write(
                f"Silenced {report.silenced_samples} audio sample(s); re-encrypted {report.reencrypted} original(s)."
            )
