"""The lean websocket frame reader (compat/autobahn.py) against daphne's stock path.

Both run as real daphne processes serving an echo app; a hand-made client sends the same bytes to
each. Whatever the frames (whole or split across reads, fragmented, interleaved with pings, broken),
the application must be handed the same messages and the client must see the same close codes.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from compat.autobahn import unmask, unmask_in_python
from tests.servers import ROOT, free_port, wait_for_port

MAX_MESSAGE_BYTES = 65_000  # below 64 KiB, so that the lean reader's own size check is tested
TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


@contextmanager
def echo_server(*, simple_frames: bool) -> Iterator[int]:
    port = free_port()
    env = {**os.environ, "WEBSOCKET_SIMPLE_FRAMES": str(simple_frames)}
    command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    command += ["--websocket-max-message-size", str(MAX_MESSAGE_BYTES), "tests.streaming.echo_asgi:application"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, int]]:
    with echo_server(simple_frames=False) as stock, echo_server(simple_frames=True) as simple:
        yield {"stock": stock, "simple": simple}


def frame(opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True, rsv: int = 0) -> bytes:
    """A client frame with a random masking key, as a browser or ACS sends it."""
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    size = len(payload)
    if size < 126:
        length = bytes([size])
    elif size < 65536:
        length = bytes([126]) + size.to_bytes(2, "big")
    else:
        length = bytes([127]) + size.to_bytes(8, "big")
    if not masked:
        return bytes([first, length[0]]) + length[1:] + payload
    key = os.urandom(4)
    return bytes([first, length[0] | 0x80]) + length[1:] + key + unmask(payload, key)


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 125, 126, 1_100, 65_535, 70_000])
def test_the_compiled_unmasker_gives_what_the_xor_by_hand_gives(size: int) -> None:
    payload, key = os.urandom(size), os.urandom(4)
    assert unmask(payload, key) == unmask_in_python(payload, key)
    assert unmask(unmask(payload, key), key) == payload


DROPPED, QUIET = (-1, b"connection dropped"), (-1, b"still open")


def frame_with_long_length(payload: bytes) -> bytes:
    """A short frame whose length is given in the 16-bit form, which RFC 6455 forbids below 126."""
    key = os.urandom(4)
    return bytes([0x80 | TEXT, 0x80 | 126]) + len(payload).to_bytes(2, "big") + key + unmask(payload, key)


async def exchange(port: int, chunks: list[bytes], *, replies_first: int = 0) -> list[tuple[int, bytes]]:
    """Send `chunks` (each in its own write, so the server reads them apart) and return what the
    server sent back, (opcode, payload) each, up to its close frame, or DROPPED or QUIET (nothing
    for a second) at the end. The last chunk waits for `replies_first` replies to arrive."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /echo/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    received: list[tuple[int, bytes]] = []
    listener = asyncio.ensure_future(_listen(reader, received))
    for index, chunk in enumerate(chunks):
        if index == len(chunks) - 1:
            for _ in range(500):
                if len(received) >= replies_first:
                    break
                await asyncio.sleep(0.01)
        writer.write(chunk)
        await writer.drain()
        await asyncio.sleep(0.005)
    await listener
    writer.close()
    return received


async def _listen(reader: asyncio.StreamReader, received: list[tuple[int, bytes]]) -> None:
    try:
        while True:
            first, second = await asyncio.wait_for(reader.readexactly(2), 1.0)
            size = second & 0x7F
            if size >= 126:
                size = int.from_bytes(await reader.readexactly(2 if size == 126 else 8), "big")
            received.append((first & 0x0F, await reader.readexactly(size)))
            if first & 0x0F == CLOSE:
                return
    except TimeoutError:
        received.append(QUIET)
    except (asyncio.IncompleteReadError, ConnectionError):
        received.append(DROPPED)


async def both(servers: dict[str, int], chunks: list[bytes], **options: int) -> list[tuple[int, bytes]]:
    stock = await exchange(servers["stock"], chunks, **options)
    simple = await exchange(servers["simple"], chunks, **options)
    assert simple == stock
    return simple


def echoes(messages: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    return [(opcode, b"echo:" + payload) for opcode, payload in messages]


def split_at_random(data: bytes, pieces: int, seed: int) -> list[bytes]:
    cuts = sorted(random.Random(seed).sample(range(1, len(data)), pieces - 1))  # noqa: S311 - reproducible cuts
    return [data[start:end] for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True)]


MESSAGES = [
    (TEXT, b'{"kind":"AudioData","audioData":{"data":"' + b"A" * 900 + b'"}}'),
    (BINARY, bytes(range(256)) * 4),
    (TEXT, b""),
    (TEXT, "Grüße, 世界".encode()),
    (BINARY, b"\x00"),
    (TEXT, b"x" * 125),
    (TEXT, b"y" * 126),
    (BINARY, os.urandom(MAX_MESSAGE_BYTES - 5)),  # the largest whose echo ("echo:" + it) is allowed out
    (TEXT, b"z" * 64_000),
]


async def test_whole_frames_in_one_read_reach_the_application_unchanged_and_in_order(servers) -> None:
    received = await both(servers, [b"".join(frame(opcode, payload) for opcode, payload in MESSAGES)])

    assert received == [*echoes(MESSAGES), QUIET]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_frames_split_anywhere_across_reads_arrive_the_same(servers, seed: int) -> None:
    data = b"".join(frame(opcode, payload) for opcode, payload in MESSAGES)

    received = await both(servers, split_at_random(data, 40, seed))

    assert received == [*echoes(MESSAGES), QUIET]


async def test_fragmented_messages_and_pings_between_frames_go_through_autobahn(servers) -> None:
    chunks = [
        frame(TEXT, b"before"),
        frame(TEXT, b"Hel", fin=False) + frame(PING, b"are you there") + frame(CONTINUATION, b"lo.", fin=True),
        frame(TEXT, b"after"),
    ]

    received = await both(servers, chunks)

    assert received == [
        (TEXT, b"echo:before"),
        (PONG, b"are you there"),
        (TEXT, b"echo:Hello."),
        (TEXT, b"echo:after"),
        QUIET,
    ]


@pytest.mark.parametrize(
    "bad_frame",
    [
        frame(TEXT, b"bad \xff\xfe UTF-8"),
        frame(TEXT, b"not masked", masked=False),
        frame(BINARY, b"not masked either", masked=False) + bytes(4),  # as long as if it had a key
        frame_with_long_length(b"short"),
        frame(TEXT, b"reserved bit", rsv=0b100),
        frame(BINARY, b"b" * (MAX_MESSAGE_BYTES + 1)),
        frame(BINARY, b"b" * 70_000),  # a 64-bit length
        frame(0x3, b"reserved opcode"),
        frame(CONTINUATION, b"continues nothing"),
    ],
    ids=[
        "invalid-utf8",
        "unmasked-text",
        "unmasked-binary",
        "non-minimal-length",
        "rsv-bit",
        "too-big",
        "too-big-64-bit-length",
        "reserved-opcode",
        "stray-continuation",
    ],
)
async def test_a_broken_frame_fails_the_connection_as_autobahn_would(servers, bad_frame: bytes) -> None:
    # autobahn fails a connection by dropping it (its failByDrop default), without a close frame.
    received = await both(servers, [frame(TEXT, b"fine"), bad_frame + frame(TEXT, b"never seen")], replies_first=1)

    assert received == [(TEXT, b"echo:fine"), DROPPED]


def test_unmasking_is_rfc_6455_xor_with_the_key_repeated() -> None:
    key = bytes([0x37, 0xFA, 0x21, 0x3D])
    for length in [*range(0, 12), 125, 1000, 70_001]:
        payload = os.urandom(length)
        expected = bytes(byte ^ key[index % 4] for index, byte in enumerate(payload))
        assert unmask(payload, key) == expected
