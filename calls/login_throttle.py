"""Throttle password guessing: after LOGIN_FAILURE_LIMIT failures for one username from one IP address,
further attempts are refused for LOGIN_LOCKOUT_SECONDS after the last failure.

Counters live in the cache (CACHES), so every server process must share one cache for the limit to hold.
The address is REMOTE_ADDR: behind a proxy, run daphne with --proxy-headers so it is the client's.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest


def _key(username: str, ip_address: str) -> str:
    digest = hashlib.sha256(f"{username.strip().lower()}|{ip_address}".encode()).hexdigest()
    return f"login-failures:{digest}"


def client_address(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "")


def is_locked_out(username: str, ip_address: str) -> bool:
    return cache.get(_key(username, ip_address), 0) >= settings.LOGIN_FAILURE_LIMIT


def record_failure(username: str, ip_address: str) -> None:
    key = _key(username, ip_address)
    cache.add(key, 0, timeout=settings.LOGIN_LOCKOUT_SECONDS)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=settings.LOGIN_LOCKOUT_SECONDS)
    cache.touch(key, timeout=settings.LOGIN_LOCKOUT_SECONDS)


def clear_failures(username: str, ip_address: str) -> None:
    cache.delete(_key(username, ip_address))
