"""The listener: several triggers on one port, body encodings, ports, log formats."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedOK, InvalidStatus

from tests.support import ROOT, LoloProcess, free_port, lolo_run_command

TWO_PATHS = ROOT / "tests" / "e2e" / "flows" / "two-paths.yaml"


@pytest.fixture
def server() -> Iterator[LoloProcess]:
    with LoloProcess(TWO_PATHS, "--log-format", "json") as process:
        yield process


async def ask(url: str, message: str | bytes) -> str | bytes:
    async with connect(url) as ws:
        await ws.send(message)
        return await asyncio.wait_for(ws.recv(), 5)


def test_two_triggers_share_one_port_by_path(server: LoloProcess) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        a = json.loads(await ask(server.url("/a?x=1&x=2&y="), "describe"))
        b = json.loads(await ask(server.url("/b/deeper"), "describe"))
        return a, b

    a, b = asyncio.run(scenario())
    assert a == {
        "path": "/a",
        "query": {"x": ["1", "2"], "y": ""},
        "node": "echo-a",
        "has_peer": True,
        "agent": a["agent"],
    }
    assert a["agent"].startswith("Python/")
    assert b["path"] == "/b/deeper"
    assert b["node"] == "echo-b"


def test_an_unknown_path_is_404(server: LoloProcess) -> None:
    async def scenario() -> int:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(server.url("/nowhere")):
                pass
        return refused.value.response.status_code

    assert asyncio.run(scenario()) == 404


def test_text_stays_text_binary_stays_binary_and_end_closes(server: LoloProcess) -> None:
    async def scenario() -> tuple[object, object, object, int | None]:
        async with connect(server.url("/a")) as ws:
            await ws.send("héllo")
            text = await ws.recv()
            await ws.send(b"\x00\xffbin")
            binary = await ws.recv()
            await ws.send("bye")
            last = await ws.recv()
            with pytest.raises(ConnectionClosedOK):
                await asyncio.wait_for(ws.recv(), 5)
            return text, binary, last, ws.close_code

    assert asyncio.run(scenario()) == ("héllo", b"\x00\xffbin", "bye", 1000)


def test_json_log_lines_carry_app_node_and_session(server: LoloProcess) -> None:
    asyncio.run(ask(server.url("/a"), "ping"))
    assert server.stop() == 0
    entries = [json.loads(line) for line in server.stderr().splitlines()]
    echo = [e for e in entries if e["message"] == "echo"]
    assert len(echo) == 1
    assert echo[0]["app"] == "two-paths"
    assert echo[0]["node"] == "echo-a"
    assert len(echo[0]["session"]) == 36
    assert echo[0]["level"] == "info"


def listening_port(tmp_path: Path, flow_port: int, args: list[str], env: dict[str, str]) -> str:
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        textwrap.dedent(f"""\
        app: ports
        port: {flow_port}
        nodes:
          - id: ws
            type: lolo/websocket-trigger
            params: {{path: /s}}
        """)
    )
    environment = {k: v for k, v in os.environ.items() if k != "PORT"} | env
    proc = subprocess.Popen(
        [*lolo_run_command(), str(flow), "--state", str(tmp_path / "s.db"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
        text=True,
    )
    try:
        assert proc.stdout is not None
        return proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_port_is_flag_then_env_then_flow_file(tmp_path: Path) -> None:
    flow_port, env_port, flag_port = free_port(), free_port(), free_port()
    assert listening_port(tmp_path, flow_port, [], {}) == f"Listening to port {flow_port}"
    env = {"PORT": str(env_port)}
    assert listening_port(tmp_path, flow_port, [], env) == f"Listening to port {env_port}"
    flag = ["--port", str(flag_port)]
    assert listening_port(tmp_path, flow_port, flag, env) == f"Listening to port {flag_port}"


def test_a_taken_port_is_a_clean_error(server: LoloProcess, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            *lolo_run_command(),
            str(TWO_PATHS),
            "--port",
            str(server.port),
            "--state",
            str(tmp_path / "s.db"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert f"lolo-run: cannot listen on 127.0.0.1:{server.port}" in done.stderr
    assert "Traceback" not in done.stderr
    assert "Listening" not in done.stdout
