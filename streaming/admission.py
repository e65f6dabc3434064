"""What a media socket does with a frame before parsing it (docs/performance.md, "Overload policy").

It refuses frames over MAX_MEDIA_MESSAGE_BYTES, sheds AudioData (never transcription) beyond the
socket's audio rate cap or while the process is behind, and closes a socket that floods. Every
refused or shed frame is counted. Cheap: it reads the frame's length and, to recognise audio, its
first AUDIO_PEEK characters; it never parses.
"""

from __future__ import annotations

import enum
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable

from django.conf import settings

from streaming import metrics
from streaming.socket_log import SocketLog

logger = logging.getLogger(__name__)

FLOOD_WINDOWS = 2  # consecutive one-second windows over MEDIA_FLOOD_FRAMES_PER_SECOND before closing
AUDIO_PEEK = 48  # an ACS AudioData frame names its kind (or its payload key) within its first 48 characters


class Admission(enum.Enum):
    """What `FrameGate.admit` says to do with a frame, before it is parsed."""

    ACCEPT = "accept"
    DROP = "drop"  # counted
    CLOSE = "close"  # the socket floods


ACCEPT, DROP, CLOSE = Admission.ACCEPT, Admission.DROP, Admission.CLOSE  # module names: read for every frame


def looks_like_audio(frame: str | bytes) -> bool:
    head = frame[:AUDIO_PEEK]
    return ("udioData" in head) if isinstance(head, str) else (b"udioData" in head)


class FrameGate:
    """One socket's admission: its size limit, audio rate cap and flood windows."""

    def __init__(
        self, call_id: uuid.UUID, *, backlog: Callable[[], int] | None = None, log: SocketLog | None = None
    ) -> None:
        self.call_id = call_id
        self.backlog = backlog or (lambda: 0)  # frames daphne has queued for this socket, unread
        self.log = log or SocketLog(call_id)
        self.counts: Counter[str] = Counter()  # oversized_frames and shed_<reason>, until taken
        self.max_bytes = settings.MAX_MEDIA_MESSAGE_BYTES
        self.audio_cap = settings.MEDIA_MAX_AUDIO_FRAMES_PER_SECOND
        self.flood_limit = settings.MEDIA_FLOOD_FRAMES_PER_SECOND
        self.overload_lag = settings.OVERLOAD_LOOP_LAG
        self._window_end = 0.0
        self._window_frames = 0
        self._window_backlog = 0
        self._flood_windows = 0
        self._flooded = False

    def admit(self, frame: str | bytes) -> Admission:
        """ACCEPT, DROP (counted) or CLOSE (flooding)."""
        if len(frame) > self.max_bytes:
            self.counts["oversized_frames"] += 1
            self.log.problem("frame of %d bytes refused: larger than MAX_MEDIA_MESSAGE_BYTES", len(frame))
            return DROP
        if self._flooded:  # told to close; what it sent meanwhile is still read, but not its audio
            if looks_like_audio(frame):
                self.counts["shed_closing"] += 1
                return DROP
            return ACCEPT
        now = time.monotonic()
        if now >= self._window_end and self._end_window(now):
            self._flooded = True
            return CLOSE
        self._window_frames += 1
        if self._window_frames > self.audio_cap:
            if looks_like_audio(frame):
                self.counts["shed_rate"] += 1
                return DROP
        elif self._behind() and looks_like_audio(frame):
            self.counts["shed_overload"] += 1
            return DROP
        return ACCEPT

    def take_counts(self) -> Counter[str]:
        """What was refused or shed since the last call, for the session's periodic report."""
        counts, self.counts = self.counts, Counter()
        return counts

    def _behind(self) -> bool:
        """The process's event loop is late, or this socket has over a second of frames unread."""
        return metrics.loop_lag.lag > self.overload_lag or self.backlog() > self.audio_cap

    def _end_window(self, now: float) -> bool:
        """Close a one-second window; True when the socket has flooded for FLOOD_WINDOWS in a row.

        Frames that arrived = frames read + growth of daphne's queue, so a socket whose backlog is
        being drained quickly after a stall is not mistaken for a flooding one.
        """
        backlog = self.backlog()
        arrived = self._window_frames + backlog - self._window_backlog
        self._flood_windows = self._flood_windows + 1 if arrived > self.flood_limit else 0
        self._window_end, self._window_frames, self._window_backlog = now + 1.0, 0, backlog
        if self._flood_windows >= FLOOD_WINDOWS:
            logger.warning(
                "call %s: media socket closed (4008, flooding): %d frames in one second, more than %d",
                self.call_id,
                arrived,
                self.flood_limit,
            )
            metrics.closed_media_sockets.labels("flood").inc()
            return True
        return False
