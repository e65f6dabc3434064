"""A finished request is freed at once, by reference counting, instead of by the garbage collector.

The middlewares below this one leave objects that point back at the request: `request.user`'s lazy
closure and `request.auser`'s partial (auth), the messages storage (messages) and the nonce (csp). So
every finished request, with all it reached (body, session, parsed events), stayed in memory until a
collection found the cycle, as it did through Django's own handler (compat/django_asgi.py). A burst of
calls makes some 500 requests, whose leftovers filled the youngest generation: its collections paused
the event loop and every thread for 50-250 ms while the calls were setting up (docs/performance.md,
"Garbage collection").

Outermost in MIDDLEWARE: when it runs, every middleware that set these attributes has finished with
the request. After it, Django only reads `request.path` (to log an error response) and closes the
request's uploaded files. A streaming response keeps its request whole: its body is produced later,
and may still use it. A rendered page's request still lives on in Django's template context, whose
`ContextDict`s point back at it; a burst of calls renders no pages.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

# Attributes whose values refer back to the request, and who sets them.
CYCLIC_ATTRIBUTES = (
    "user",  # django.contrib.auth: SimpleLazyObject(lambda: get_user(request))
    "auser",  # django.contrib.auth: partial(auser, request)
    "_messages",  # django.contrib.messages: the storage keeps the request
    "csp_nonce",  # django-csp: CheckableLazyObject(partial(_make_nonce, request))
)


class BreakRequestCycles:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if not response.streaming:
            for name in CYCLIC_ATTRIBUTES:
                request.__dict__.pop(name, None)
        return response
