"""`python manage.py run_recovery`: the recovery worker as its own process (see calls/recovery.py).

Each daphne process also runs one as a thread when RECOVERY_WORKER is on; any number may run at
once, since jobs are claimed with SKIP LOCKED.
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from calls import recovery


class Command(BaseCommand):
    help = "Restart streams that stopped unasked and close calls whose CallDisconnected was lost, in a loop."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--interval", type=float, default=settings.RECOVERY_POLL_INTERVAL, help="seconds between passes"
        )
        parser.add_argument("--once", action="store_true", help="run one pass and exit")

    def handle(self, *args: Any, interval: float, once: bool, **options: Any) -> None:
        if once:
            done = recovery.run_once()
            self.stdout.write(f"Ran {done} recovery job(s).")
            return
        self.stdout.write(f"Recovery worker running every {interval:.1f} s; Ctrl-C to stop.")
        try:
            recovery.run_forever(threading.Event(), interval)
        except KeyboardInterrupt:
            self.stdout.write("Stopped.")
