"""Typed keys for what the aiohttp application holds."""

from __future__ import annotations

from aiohttp import web

from emulator.calls import Services
from emulator.registry import CallRegistry

SERVICES = web.AppKey("services", Services)
REGISTRY = web.AppKey("registry", CallRegistry)
REQUEST_LOG = web.AppKey("request_log", list)
REPEATED_REQUESTS = web.AppKey("repeated_requests", dict)  # Repeatability-Request-ID -> (status, body, type)
