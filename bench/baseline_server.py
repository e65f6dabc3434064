"""The benchmark's baseline: a bare asyncio `websockets` server that only parses each packet.

It does the least any ACS media server must do per frame (json.loads, plus base64-decoding audio),
so the benchmark can quote Callscribe's CPU per packet as a ratio to it.

    .venv/bin/python bench/baseline_server.py --port 8765
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import signal

from websockets.asyncio.server import ServerConnection, serve


async def parse_every_packet(websocket: ServerConnection) -> None:
    async for frame in websocket:
        packet = json.loads(frame)
        audio = packet.get("audioData")
        if audio is not None:
            base64.b64decode(audio.get("data") or "")


async def main(port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with serve(parse_every_packet, "127.0.0.1", port, max_size=64 * 1024, ping_interval=None):
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
