"""WebSocket calls through lbx with PyPI's websockets; prints one JSON object per scenario.

    echo      1,000 messages of mixed sizes (text and binary, up to 1 MiB), each checked
    who N     N connections, sending the Set-Cookie of the first back on the others; which
              server answered each
    close     the server closes: the close code and reason that reach the client

Run: python3 ws_client.py ws://HOST:PORT/path SCENARIO [ARG]
"""

import asyncio
import json
import random
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

URL, SCENARIO = sys.argv[1], sys.argv[2]


async def echo():
    rng = random.Random(7)
    sizes = [rng.choice([0, 1, 125, 126, 65535, 65536, 100_000, 1 << 20]) for _ in range(1000)]
    intact = 0
    async with connect(URL, max_size=None) as ws:
        for i, size in enumerate(sizes):
            if i % 2:
                message = bytes(rng.getrandbits(8) for _ in range(min(size, 4096))) * (size // 4096 + 1)
                message = message[:size]
            else:
                message = "x" * size
            await ws.send(message)
            if await ws.recv() == message:
                intact += 1
    return {"scenario": "echo", "sent": len(sizes), "intact": intact, "bytes": sum(sizes)}


async def who(count):
    servers, cookie = [], None
    for _ in range(count):
        headers = {"Cookie": cookie} if cookie else {}
        async with connect(URL, additional_headers=headers) as ws:
            await ws.send("who")
            servers.append(await ws.recv())
            if cookie is None:
                set_cookie = ws.response.headers.get("Set-Cookie", "")
                cookie = set_cookie.split(";")[0]
    return {"scenario": "who", "servers": servers, "cookie": cookie}


async def close():
    async with connect(URL) as ws:
        await ws.send("close-me")
        try:
            await ws.recv()
        except ConnectionClosed as closed:
            return {"scenario": "close", "code": closed.rcvd.code, "reason": closed.rcvd.reason}
    return {"scenario": "close", "code": None}


scenario = {"echo": echo, "who": lambda: who(int(sys.argv[3])), "close": close}[SCENARIO]
print(json.dumps(asyncio.run(scenario())), flush=True)
