from __future__ import annotations

from django.apps import AppConfig


class CompatConfig(AppConfig):
    name = "compat"

    def ready(self) -> None:
        from compat import check_all

        check_all()  # refuse to start on a library whose internals moved, before serving anything
