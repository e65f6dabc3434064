"""Answering incoming calls.

Once `/api/incoming-call` has answered 200, Event Grid will not deliver the IncomingCall again: from
then on, getting the call answered is Callscribe's job alone. The webhook only records the ring and
hands it to these workers, so it can answer Event Grid at once however busy ACS or the database is.

A worker answers through ACS, retrying with backoff while the incoming-call context is still
usable (ANSWER_DEADLINE_SECONDS after the ring), and never holds a database connection during a REST
round trip. A call that cannot be answered in time is marked *unanswered* with the reason, so a
caller who rang out shows on the dashboard and in /metrics instead of only in a log.

Threads, not a durable queue: the context expires within seconds, so a job that outlived a process
restart could not be answered anyway.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import DatabaseError, connections
from prometheus_client import Counter, Histogram

from calls import acs, control
from calls.acs import AcsError

logger = logging.getLogger(__name__)

RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0, 4.0)  # then 4 s between tries, until the deadline

answered_calls = Counter("callscribe_calls_answered_total", "Incoming calls answered through ACS.")
unanswered_calls = Counter(
    "callscribe_calls_unanswered_total", "Incoming calls given up on: not answered in time, by reason.", ["reason"]
)
answer_retries = Counter("callscribe_answer_retries_total", "Answer attempts that failed and were tried again.")
time_to_answer_seconds = Histogram(
    "callscribe_time_to_answer_seconds",
    "From receiving Event Grid's IncomingCall to ACS accepting the answer.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0),
)

_workers = ThreadPoolExecutor(max_workers=settings.ANSWER_WORKERS, thread_name_prefix="answer-call")


def answer_soon(call_id: uuid.UUID, incoming_call_context: str, *, locale: str, rang_at: float) -> None:
    """Queue the answer of a recorded ring; `rang_at` is the time.monotonic() the ring arrived."""
    _workers.submit(_answer, call_id, incoming_call_context, locale, rang_at)


def _answer(call_id: uuid.UUID, incoming_call_context: str, locale: str, rang_at: float) -> None:
    try:
        info = _answer_through_acs(call_id, incoming_call_context, locale, rang_at)
        if info is not None:
            _write_patiently(lambda: control.record_answer(call_id, info), f"The answer of call {call_id}")
    except Exception:  # a worker thread must outlive any one call's trouble
        logger.exception("Answering call %s failed unexpectedly", call_id)
    finally:
        connections.close_all()  # give this thread's connection back to the pool


def _answer_through_acs(
    call_id: uuid.UUID, incoming_call_context: str, locale: str, rang_at: float
) -> acs.ConnectionInfo | None:
    """ACS's answer, or None once the call has been given up on (and marked so)."""
    deadline = rang_at + settings.ANSWER_DEADLINE_SECONDS
    for attempt in itertools.count(1):
        try:
            info = acs.answer_call(call_id=call_id, incoming_call_context=incoming_call_context, locale=locale)
        except AcsError as error:
            if not _worth_retrying(error):
                _give_up(call_id, "refused", error.message, attempt)
                return None
            reason = error.message
        else:
            answered_calls.inc()
            time_to_answer_seconds.observe(time.monotonic() - rang_at)
            return info
        delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS)) - 1]
        if time.monotonic() + delay >= deadline:
            _give_up(call_id, "deadline", f"{reason} (tried {attempt} times)", attempt)
            return None
        answer_retries.inc()
        logger.warning("Call %s not answered yet (try %d): %s; trying again in %.2f s", call_id, attempt, reason, delay)
        time.sleep(delay)
    raise AssertionError("unreachable")


def _worth_retrying(error: AcsError) -> bool:
    """ACS could not be reached, timed out, throttled us or failed itself. Any other refusal (an
    expired or unknown incoming-call context, a bad request) will not change on a second try."""
    return error.status_code is None or error.status_code in (408, 429) or error.status_code >= 500


def _give_up(call_id: uuid.UUID, reason: str, message: str, attempts: int) -> None:
    unanswered_calls.labels(reason).inc()
    logger.error("Call %s unanswered after %d tries: %s", call_id, attempts, message)
    _write_patiently(lambda: control.mark_unanswered(call_id, f"Not answered: {message}"), f"Unanswered call {call_id}")


def _write_patiently(write: Callable[[], object], what: str) -> None:
    """Write what ACS did or refused, waiting out a busy or briefly unreachable database: the call's
    page must tell the truth, and ACS will not tell it again (a CallConnected would bring the ids, but
    not who answered or why a call rang out)."""
    for delay in (*RETRY_DELAYS, None):
        try:
            write()
            return
        except DatabaseError as error:
            connections.close_all()
            if delay is None:
                logger.error("%s could not be recorded: %s", what, error)
                return
            time.sleep(delay)
