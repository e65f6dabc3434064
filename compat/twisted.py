"""Twisted's reactor, as daphne runs it: Callscribe's shutdown runs as a "before shutdown" trigger.

daphne's own SIGTERM handling cancels every application at once, and fails when a connection has no
application (an idle keep-alive, a port probe). Callscribe adds its own trigger (streaming/runtime.py):
Twisted waits for the Deferred it returns before dropping connections, so open media sockets store
what they have first.

The reactor is looked up in `sys.modules`, never imported: importing `twisted.internet.reactor`
installs Twisted's default reactor, and daphne must install its asyncio one first. Where no reactor
runs (management commands, tests with communicators), there is nothing to hook into.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorCore

from compat import incompatible, require_attributes

REACTOR_MODULE = "twisted.internet.reactor"


def running_reactor() -> Any | None:
    """The reactor serving this process (daphne's), or None outside a server."""
    reactor = sys.modules.get(REACTOR_MODULE)
    if reactor is None or not getattr(reactor, "running", False):
        return None
    return reactor


def before_shutdown(reactor: Any, trigger: Callable[[], object]) -> None:
    reactor.addSystemEventTrigger("before", "shutdown", trigger)


def deferred_from(future: asyncio.Future[Any]) -> Deferred:
    return Deferred.fromFuture(future)


def check() -> None:
    require_attributes("Twisted", Deferred, ("fromFuture", "addErrback"))
    if "addSystemEventTrigger" not in IReactorCore or "running" not in IReactorCore:
        raise incompatible("Twisted", "IReactorCore has no addSystemEventTrigger or running")
