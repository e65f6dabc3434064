"""One media socket's problem log: the first few problems, then one in a hundred, so a bad peer
cannot flood the log. The admission gate, the session and the finals queue of one socket share it,
so its numbering counts every problem of that socket."""

from __future__ import annotations

import logging
import uuid

logger = logging.getLogger(__name__)


class SocketLog:
    def __init__(self, call_id: uuid.UUID) -> None:
        self.call_id = call_id
        self.problems = 0

    def problem(self, message: str, *args: object) -> None:
        self.problems += 1
        if self.problems <= 5 or self.problems % 100 == 0:
            logger.warning(f"call %s: {message} (problem #%d on this socket)", self.call_id, *args, self.problems)
