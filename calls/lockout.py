"""Login lockout with django-axes: two limits, counted in the shared cache.

- LOGIN_FAILURE_LIMIT failures for one username from one client address lock that pair out: someone
  mistyping is stopped without anyone else noticing.
- LOGIN_USERNAME_FAILURE_LIMIT failures for one username from anywhere lock the username out, so
  guesses spread over many addresses stop too. It is higher, because anyone can spend it: a lower
  cap would let a stranger lock a colleague out with a handful of tries.

Each lock lasts LOGIN_LOCKOUT_SECONDS after the last failure; a successful login clears both counts.
The address is REMOTE_ADDR: daphne sets it from the X-Forwarded-For our own nginx writes (it
replaces whatever the client sent, docs/deployment.md), or it is the peer's address without a proxy.

axes compares every count it keeps with one limit (AXES_FAILURE_LIMIT); this handler gives each
count its own, and leaves the rest (the middleware, the backend, the cache keys) to axes. Counting
in the cache rather than axes' database handler means failed attempts by strangers write no rows.
"""

from __future__ import annotations

import logging
from typing import Any

from axes.handlers.cache import AxesCacheHandler
from axes.helpers import get_cache_timeout, get_client_cache_keys
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

logger = logging.getLogger(__name__)


class LoginLockoutHandler(AxesCacheHandler):
    """axes' cache handler with a limit per username and address and a higher one per username."""

    def is_locked(self, request: HttpRequest, credentials: dict[str, Any] | None = None) -> bool:
        pair, username = self._failures(request, credentials)
        return pair >= settings.LOGIN_FAILURE_LIMIT or username >= settings.LOGIN_USERNAME_FAILURE_LIMIT

    def user_login_failed(
        self, sender: object, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
    ) -> None:
        if request is None:
            return
        timeout = get_cache_timeout(request)
        for key in get_client_cache_keys(request, credentials):
            if not self.cache.add(key, 1, timeout=timeout):
                try:
                    self.cache.incr(key)
                    self.cache.touch(key, timeout=timeout)
                except ValueError:  # expired between add and incr
                    self.cache.set(key, 1, timeout=timeout)
        if self.is_locked(request, credentials):
            request.axes_locked_out = True
            request.axes_credentials = credentials
            pair, username = self._failures(request, credentials)
            logger.warning(
                "Login locked out for username %r from %s: %d failures from there, %d in all",
                credentials.get("username"),
                request.axes_ip_address,
                pair,
                username,
            )

    def _failures(self, request: HttpRequest, credentials: dict[str, Any] | None) -> tuple[int, int]:
        """Failures for (username and address, username), in AXES_LOCKOUT_PARAMETERS' order."""
        pair_key, username_key = get_client_cache_keys(request, credentials)
        return self.cache.get(pair_key, 0), self.cache.get(username_key, 0)


def lockout_response(request: HttpRequest, *args: Any) -> HttpResponse:
    """The login page saying so, with 429 and Retry-After (AXES_LOCKOUT_CALLABLE)."""
    context = {"form": AuthenticationForm(request), "locked_out": True, "next": request.POST.get("next", "")}
    response = render(request, "registration/login.html", context, status=429)
    response["Retry-After"] = str(settings.LOGIN_LOCKOUT_SECONDS)
    return response
