"""daphne's and autobahn's internals: a faster read path for the websocket frames ACS actually sends.

For every incoming frame autobahn (daphne's websocket library) runs some fifteen Python methods:
frame and message begin/data/end hooks, an incremental UTF-8 validator, a native unmasker set up per
frame through cffi, traffic statistics, an event emitter and debug-log arguments formatted whether
or not anything logs them. Under load that was the largest single cost of a media socket, larger
than all of Callscribe's own work on the frame (docs/performance.md, "Where the time goes").

`SimpleFrameProtocol` reads what nearly every frame on a media socket is, a whole unfragmented,
masked text or binary frame that arrived complete, and hands its message to daphne as autobahn
would (`_onMessage`). Anything else goes to autobahn unchanged, from the first byte not handled
here: control frames (ping, pong, close), fragments, a frame split across reads, frames over
daphne's size limits, invalid UTF-8, RSV bits, unmasked frames and other protocol errors, and any
socket in a state other than open. Autobahn's traffic statistics, which daphne never reads, then
count only wire octets for these frames.

Installed by `install()` (config/asgi.py) when settings.WEBSOCKET_SIMPLE_FRAMES is on (the default).
It reads autobahn's per-connection state and calls its private methods (`check()` lists them), and
replaces daphne's `WebSocketFactory.protocol`.
"""

from __future__ import annotations

import inspect

from autobahn.websocket.protocol import TrafficStats
from autobahn.websocket.protocol import WebSocketProtocol as AutobahnProtocol
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol

from compat import incompatible, require_attributes, require_method

WHOLE_TEXT_FRAME = 0x81  # FIN set, no RSV bits, opcode 1
WHOLE_BINARY_FRAME = 0x82  # FIN set, no RSV bits, opcode 2
MASKED = 0x80


class SimpleFrameProtocol(WebSocketProtocol):
    def dataReceived(self, data: bytes) -> None:
        if not self._reads_simple_frames():
            self._dataReceived(data)  # what autobahn's dataReceived does, without its debug log
            return
        self.trafficStats.incomingOctetsWireLevel += len(data)
        rest = self._deliver_simple_frames(data)
        if rest:
            self.data = rest
            self.consumeData()

    def _reads_simple_frames(self) -> bool:
        """Between frames of an open socket with nothing buffered, and no autobahn option on whose
        hooks this path would skip (compression, frame and octet logging, timings)."""
        return (
            self.state == AutobahnProtocol.STATE_OPEN
            and not self.data
            and self.current_frame is None
            and not self.inside_message
            and self._perMessageCompress is None
            and not (self.logOctets or self.logFrames or self.trackedTimings)
        )

    def _deliver_simple_frames(self, data: bytes) -> bytes:
        """Deliver each leading frame that needs none of autobahn's care; return the rest."""
        position, size = 0, len(data)
        delivered = False
        while size - position >= 6 and self.state == AutobahnProtocol.STATE_OPEN:
            first, second = data[position], data[position + 1]
            if first not in (WHOLE_TEXT_FRAME, WHOLE_BINARY_FRAME) or not second & MASKED:
                break
            length, header = second & 0x7F, 6
            if length == 126:
                length, header = int.from_bytes(data[position + 2 : position + 4], "big"), 8
                if length < 126:  # not the minimal encoding: a protocol error autobahn reports
                    break
            elif length == 127:  # 64 KiB or more: beyond what ACS sends, autobahn checks the limits
                break
            end = position + header + length
            if end > size or 0 < self.maxFramePayloadSize < length or 0 < self.maxMessagePayloadSize < length:
                break
            payload = unmask(data[end - length : end], data[end - length - 4 : end - length])
            if first == WHOLE_TEXT_FRAME and not _is_utf8(payload):
                break
            position = end
            delivered = True
            self._onMessage(payload, first == WHOLE_BINARY_FRAME)
        if delivered and self.autoPingTimeoutCall and self.autoPingRestartOnAnyTraffic:
            self._cancelAutoPingTimeoutCall()  # as autobahn does on any data frame
        return data[position:]


def unmask_in_python(payload: bytes, mask: bytes) -> bytes:
    """XOR a client frame's payload with its 4-byte masking key (RFC 6455 section 5.3), as one
    big-integer operation."""
    key = mask * (len(payload) // 4 + 1)  # a little longer than the payload: cut after the XOR
    unmasked = int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")
    return unmasked.to_bytes(len(key), "little")[: len(payload)]


try:
    # The same XOR compiled, from websockets (pinned for the emulator), which uses it for its own frames:
    # 0.15 us for an ACS audio frame where the big integers take 5.6 us, each timed in one process; in
    # a server through the whole call lifecycle, bursts of 100 calls cost 54-56 against 57-60 us of CPU
    # per packet (docs/performance.md).
    from websockets.speedups import apply_mask as unmask
except ImportError:  # websockets installed without its compiled part
    unmask = unmask_in_python


def _is_utf8(payload: bytes) -> bool:
    if payload.isascii():
        return True
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def install() -> None:
    """Make daphne build SimpleFrameProtocol for every websocket it accepts."""
    WebSocketFactory.protocol = SimpleFrameProtocol


# What SimpleFrameProtocol reads on each connection: state autobahn sets as it runs, and the options it
# copies from the factory (its CONFIG_ATTRS).
CONNECTION_STATE = (
    "state",
    "data",
    "current_frame",
    "inside_message",
    "_perMessageCompress",
    "trackedTimings",
    "trafficStats",
    "autoPingTimeoutCall",
)
OPTIONS = ("logOctets", "logFrames", "maxFramePayloadSize", "maxMessagePayloadSize", "autoPingRestartOnAnyTraffic")


def check() -> None:
    if not issubclass(WebSocketProtocol, AutobahnProtocol):
        raise incompatible("daphne", "daphne's WebSocketProtocol is no longer autobahn's")
    require_attributes("autobahn", WebSocketProtocol, ("STATE_OPEN", "_cancelAutoPingTimeoutCall"))
    require_method("autobahn", WebSocketProtocol, "_dataReceived", ("self", "data"))
    require_method("autobahn", WebSocketProtocol, "_onMessage", ("self", "payload", "isBinary"))
    require_method("autobahn", WebSocketProtocol, "consumeData", ("self",))
    source = inspect.getsource(AutobahnProtocol)
    unset = [name for name in CONNECTION_STATE if f"self.{name} =" not in source]
    if unset:
        raise incompatible("autobahn", f"WebSocketProtocol no longer sets {', '.join(unset)}")
    options = set(getattr(WebSocketProtocol, "CONFIG_ATTRS_COMMON", ())) | set(
        getattr(WebSocketProtocol, "CONFIG_ATTRS_SERVER", ())
    )
    if not options.issuperset(OPTIONS):
        raise incompatible("autobahn", f"WebSocketProtocol has no option {', '.join(set(OPTIONS) - options)}")
    if not hasattr(TrafficStats(), "incomingOctetsWireLevel"):
        raise incompatible("autobahn", "TrafficStats has no incomingOctetsWireLevel")
    if not isinstance(WebSocketFactory.__dict__.get("protocol"), type):
        raise incompatible("daphne", "WebSocketFactory no longer names its protocol class in `protocol`")
