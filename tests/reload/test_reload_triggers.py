"""Triggers added and removed under ``--reload``: a new WebSocket path and HTTP route
answer; a removed path's clients are closed with 1001 and it answers 404; the clients of
the triggers that stay are not touched."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.reload.support import (
    RELOADED,
    chat_client,
    copy_chat,
    recv_text,
    save,
    start_reloading,
    wait_for_log,
    wait_for_log_async,
)
from tests.support import LoloProcess

EXTRA_NODES = """\
  - id: lobby
    type: lolo/websocket-trigger
    params: {path: /lobby, close_timeout: 1}

  - id: hello
    type: lolo/http-trigger
    params: {path: /hello/:name, methods: [GET]}

  - id: say-hello
    type: lolo/function
    handler: ../nodes/hello.py
    outputs: []

"""
EXTRA_EDGES = """\
  - lobby.req -> process-request.req
  - lobby.message -> process-request.msg
  - lobby.close -> process-request.close
  - hello.out -> say-hello.in
"""


def silent_client(server: LoloProcess, path: str) -> tuple[socket.socket, str]:
    """A WebSocket client that connects, then reads nothing: it never answers a close
    frame, so the server lets it go only after the trigger's ``close_timeout``. Returns its
    socket and its session id."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    head_lines = [
        f"GET {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    sock.sendall(("\r\n".join(head_lines) + "\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data or len(data) < data.index(b"\r\n\r\n") + 6:
        data += sock.recv(4096)
    head, frame = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    while len(frame) < 2 + (frame[1] & 0x7F):
        frame += sock.recv(4096)
    hello = json.loads(frame[2 : 2 + (frame[1] & 0x7F)])  # a short text frame
    return sock, hello["yourConnectionId"]


def get(server: LoloProcess, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as got:
            return got.status, got.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def test_triggers_added_then_removed(tmp_path: Path) -> None:
    flow = copy_chat(tmp_path)
    chat = flow.read_text()
    grown = chat.replace("edges:\n", EXTRA_NODES.rstrip("\n") + "\n\nedges:\n", 1) + EXTRA_EDGES
    grown = grown.replace("\n\n  - id: lobby", "\n  - id: lobby")
    server = start_reloading(flow, tmp_path / "s.sqlite3")

    async def scenario() -> tuple[int | None, str, str]:
        async with chat_client(server) as (a, a_id), chat_client(server) as (b, b_id):
            assert (await asyncio.to_thread(get, server, "/hello/ada"))[0] == 404
            save(flow, grown)
            added = await wait_for_log_async(server, RELOADED)
            assert "0 triggers restarted, 2 sessions kept, started lobby, hello" in added
            status, body = await asyncio.to_thread(get, server, "/hello/ada")
            assert (status, json.loads(body)) == (200, {"hello": "ada"})
            silent, silent_id = await asyncio.to_thread(silent_client, server, "/lobby")
            async with chat_client(server, "/lobby") as (lobby, lobby_id):
                await a.send("to everyone")
                assert await recv_text(lobby) == f"{a_id} says: to everyone"
                assert await recv_text(b) == f"{a_id} says: to everyone"
                await lobby.send("from the lobby")
                assert await recv_text(a) == f"{lobby_id} says: from the lobby"
                assert await recv_text(b) == f"{lobby_id} says: from the lobby"
                save(flow, chat)
                removed = await wait_for_log_async(server, RELOADED, count=2)
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(lobby.recv(), 5)
                lobby_code = lobby.close_code
            silent.close()
            with pytest.raises(InvalidStatus) as refused:
                async with connect(server.url("/lobby")):
                    pass
            assert refused.value.response.status_code == 404
            assert (await asyncio.to_thread(get, server, "/hello/ada"))[0] == 404
            await b.send("still here")  # the /socket clients were not touched
            assert await recv_text(a) == f"{b_id} says: still here"
            return lobby_code, removed, silent_id

    try:
        lobby_code, removed, silent_id = asyncio.run(scenario())
        assert lobby_code == 1001
        assert "stopped lobby, hello, 2 clients closed" in removed
        assert "2 sessions kept" in removed
        # The lobby's clients were closed before the swap, and their close chains ran on
        # the version that knew them (the new one has no edge from the lobby), even the
        # client that took its close_timeout to go: process-request forgot it.
        wait_for_log(server, f"session={silent_id}] client has disconnected")
        assert server.stop() == 0
        assert "Traceback" not in server.stderr()
    finally:
        server.close()
