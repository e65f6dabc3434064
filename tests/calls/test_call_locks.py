"""Locking a call to change it must not block rows that merely point at it.

Call changes (webhooks, streams opening and closing, sequence numbers) lock the call row. Inserts of
participants, segments, gaps and events check their foreign key to it when they commit. A lock that
conflicts with that check deadlocked the demo: a webhook held the call and inserted a participant
that a media socket had just inserted, while the socket's commit waited for the webhook's lock.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import psycopg
import pytest
from django.db import connection, transaction
from django.db.transaction import TransactionManagementError
from django.utils import timezone

from calls import call_reads, control, participants
from calls.models import Call, Participant
from tests.calls.conftest import new_call
from tests.servers import test_database_url as database_url
from tests.streaming import acs_packets as acs

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_participant_inserted_while_a_webhook_holds_the_call_does_not_deadlock() -> None:
    call = new_call()
    webhook_holds_call, socket_inserted = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def webhook() -> None:
        try:
            with transaction.atomic():
                control.locked_call(call.id)
                webhook_holds_call.set()
                socket_inserted.wait(10)
                participants.ensure_participant(call_id=call.id, raw_id=acs.CALLER, display_name="Caller")
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    def media_socket() -> None:
        try:
            webhook_holds_call.wait(10)
            with transaction.atomic():
                Participant.objects.create(call_id=call.id, raw_id=acs.CALLER)
                socket_inserted.set()
                time.sleep(0.5)  # let the webhook's insert wait on this one before it commits
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=webhook), threading.Thread(target=media_socket)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert list(Participant.objects.filter(call=call).values_list("raw_id", "display_name")) == [(acs.CALLER, "Caller")]


LOCKS = {
    "for a change": lambda call: call_reads.locked_call(call.id),
    "by a callback, by id": lambda call: call_reads.locked_call_heard_from(call.id, "", timezone.now()),
    "by a callback, by ACS's id": lambda call: call_reads.locked_call_heard_from(None, "acs-7", timezone.now()),
}


@pytest.mark.parametrize("lock", LOCKS.values(), ids=LOCKS.keys())
def test_a_locked_call_stays_locked_until_commit_and_rows_pointing_at_it_still_go_in(
    lock: Callable[[Call], Call | None],
) -> None:
    call = new_call(call_connection_id="acs-7")
    with transaction.atomic():
        assert lock(call) == call
        with psycopg.connect(database_url(), autocommit=True) as other:
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute("SELECT 1 FROM calls_call WHERE id = %s FOR NO KEY UPDATE NOWAIT", [call.id])
            # A row pointing at the call passes its foreign-key check (a key-share lock) meanwhile.
            other.execute("SET lock_timeout = '2s'")
            other.execute(
                "INSERT INTO calls_participant (call_id, raw_id, kind, display_name, role, is_muted, is_on_hold, "
                "in_call, first_seen_at) VALUES (%s, %s, 'phone', '', '', false, false, true, now())",
                [call.id, acs.CALLER],
            )
    with psycopg.connect(database_url(), autocommit=True) as other:
        other.execute("SELECT 1 FROM calls_call WHERE id = %s FOR NO KEY UPDATE NOWAIT", [call.id])
    assert Participant.objects.filter(call=call, raw_id=acs.CALLER).exists()


def test_a_call_is_locked_only_inside_a_transaction() -> None:
    call = new_call()
    with pytest.raises(TransactionManagementError):
        call_reads.locked_call(call.pk)
    with pytest.raises(TransactionManagementError):
        call_reads.locked_call_heard_from(call.pk, "", timezone.now())


def test_a_callback_whose_token_names_no_call_finds_it_by_acs_id_and_marks_it_heard_from() -> None:
    call = new_call(call_connection_id="acs-7")
    heard_at = timezone.now()
    with transaction.atomic():
        found = call_reads.locked_call_heard_from(uuid.uuid4(), "acs-7", heard_at)

    assert found == call
    assert Call.objects.get(pk=call.pk).last_event_at == heard_at
