"""A local stand-in for Azure Communication Services Call Automation.

It speaks the REST, callback, Event Grid and media-socket protocols described in
shared/acs-protocol.md, so Callscribe can be developed, demoed and tested without Azure.
The package is Django-free on purpose: it runs as its own process (`python -m emulator serve`).
"""

from __future__ import annotations

from emulator.config import EmulatorConfig

__all__ = ["EmulatorConfig"]
