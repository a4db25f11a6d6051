"""A WebSocket echo server built with PyPI's websockets (not written for lbx).

Echoes every message; answers the text "who" with its NAME; on "close-me" closes with code
4000 and reason "asked". Run: python3 ws_server.py PORT NAME   (prints "ready" once serving)
"""

import asyncio
import sys

from websockets.asyncio.server import serve

PORT, NAME = int(sys.argv[1]), sys.argv[2]


async def echo(connection):
    async for message in connection:
        if message == "who":
            await connection.send(NAME)
        elif message == "close-me":
            await connection.close(4000, "asked")
        else:
            await connection.send(message)


async def main():
    async with serve(echo, "127.0.0.1", PORT, max_size=None):
        print("ready", flush=True)
        await asyncio.get_running_loop().create_future()


asyncio.run(main())
