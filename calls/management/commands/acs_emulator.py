"""`python manage.py acs_emulator [--port ...]`: run the local ACS emulator (`python -m emulator serve`).

Every option after the command goes to the emulator's own command line; see `python -m emulator serve --help`.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from emulator.__main__ import main


class Command(BaseCommand):
    help = "Run the local ACS Call Automation emulator (options as for `python -m emulator serve`)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("emulator_args", nargs="*", help="options for `python -m emulator serve`")

    def run_from_argv(self, argv: list[str]) -> None:
        # The emulator parses its own options (--port, --access-key, ...): hand them over untouched.
        sys.exit(main(["serve", *argv[2:]]))

    def handle(self, *args: Any, emulator_args: list[str], **options: Any) -> None:
        main(["serve", *emulator_args])  # when called through call_command()
