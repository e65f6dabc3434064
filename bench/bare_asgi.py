"""The floor of serving websockets with daphne: an ASGI app that accepts sockets and ignores every frame.

    taskset -c 1 .venv/bin/python -m daphne -p 8766 bench.bare_asgi:application

`media_load.py --floor` runs the load against it, so the report can say how much of Callscribe's
CPU per packet is daphne (Twisted, autobahn, the ASGI queue) before any application code runs.
"""

from __future__ import annotations


async def application(scope: dict, receive, send) -> None:
    if scope["type"] != "websocket":
        return
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.disconnect":
            return
