"""The baseline: the tutorial's chat written directly on `websockets`, with no flow engine.

Behaviour (the contract lolo-run's flows/chat.yaml follows too):
- WebSocket endpoint at /socket; any other path gets 404.
- On connect the client receives {"connected": true, "yourConnectionId": "<session id>"}.
- A text message `m` from client A reaches every other client as "<A's session id> says: m";
  A itself receives nothing.

Fan-out uses `websockets.broadcast`; compression is off. It accepts lolo-run's `--state` and
`--log-level` options so the benchmark runner can start both servers with one command line;
`--state` is ignored (this server keeps no history).
"""

from __future__ import annotations

import argparse
import asyncio
import http
import json
import logging
import signal

from websockets import ConnectionClosed, broadcast
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

PATH = "/socket"
CONNECTIONS: set[ServerConnection] = set()


def only_socket_path(connection: ServerConnection, request: Request) -> Response | None:
    if request.path.split("?", 1)[0] != PATH:
        return connection.respond(http.HTTPStatus.NOT_FOUND, "not found\n")
    return None


async def chat(connection: ServerConnection) -> None:
    session_id = str(connection.id)
    await connection.send(json.dumps({"connected": True, "yourConnectionId": session_id}))
    CONNECTIONS.add(connection)
    try:
        async for message in connection:
            text = message if isinstance(message, str) else message.decode("utf-8", "replace")
            others = [peer for peer in CONNECTIONS if peer is not connection]
            broadcast(others, f"{session_id} says: {text}")
    except ConnectionClosed:
        pass  # a client that drops without a close frame is normal under load
    finally:
        CONNECTIONS.discard(connection)


async def main(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def stopping() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping)
    async with serve(chat, host, port, compression=None, process_request=only_socket_path):
        print(f"Listening to port {port}", flush=True)
        await stop


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4000)
    parser.add_argument("--state", default=None, help="accepted for lolo-run parity; ignored")
    parser.add_argument(
        "--log-level", default="warning", choices=["debug", "info", "warning", "error"]
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    logging.basicConfig(level=args.log_level.upper())
    asyncio.run(main(args.host, args.port))
