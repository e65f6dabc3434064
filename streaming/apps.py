from __future__ import annotations

from django.apps import AppConfig


class StreamingConfig(AppConfig):
    name = "streaming"

    def ready(self) -> None:
        # The domain publishes committed live events without importing the transport (calls never
        # imports streaming): it is handed the transport here, at start-up.
        from calls import live_events
        from streaming import events

        live_events.set_transport(events.publish)
