"""Stuck handlers (issue 10, item 1): a handler that never returns is cancelled at its
node's timeout and logged; a client that leaves while its chain is stuck still gets its
close chain, and its slot back."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import websockets

from tests.support import ROOT, LoloProcess, lolo_run_command

HANDLER = Path(__file__).parent / "handlers" / "stuck.py"


def stuck_flow(folder: Path, handler_timeout: str = "1") -> Path:
    """A WebSocket and an HTTP trigger feeding the hang-on-demand handler."""
    flow = folder / "stuck.yaml"
    flow.write_text(f"""\
app: stuck
handler_timeout: {handler_timeout}
nodes:
  - id: ws
    type: lolo/websocket-trigger
    params: {{path: /socket, max_connections: 5, close_timeout: 1}}
  - id: http
    type: lolo/http-trigger
    params: {{path: /do}}
  - id: stuck-node
    type: lolo/function
    handler: {HANDLER}
    inputs: [req, message, close, http]
    outputs: []
edges:
  - ws.req -> stuck-node.req
  - ws.message -> stuck-node.message
  - ws.close -> stuck-node.close
  - http.out -> stuck-node.http
""")
    return flow


def wait_for(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_a_stuck_handler_is_cancelled_at_its_timeout_and_the_client_goes_on(tmp_path: Path) -> None:
    with LoloProcess(stuck_flow(tmp_path)) as app:

        async def main() -> float:
            async with websockets.connect(app.url()) as ws:
                assert await ws.recv() == "welcome"
                started = time.monotonic()
                await ws.send("hang")
                await ws.send("after")  # queued behind the stuck chain
                assert await asyncio.wait_for(ws.recv(), 5) == "echo: after"
                return time.monotonic() - started

        waited = asyncio.run(main())
        assert 0.9 <= waited < 3, waited
        log = app.stderr()
        line = next(line for line in log.splitlines() if "did not finish within 1s" in line)
        assert "ERROR" in line and "stuck-node" in line
        assert re.search(r"session=[0-9a-f-]{36}", line), line


def test_an_own_timeout_error_is_an_ordinary_failure_not_a_timeout(tmp_path: Path) -> None:
    with LoloProcess(stuck_flow(tmp_path)) as app:

        async def main() -> None:
            async with websockets.connect(app.url()) as ws:
                await ws.recv()
                await ws.send("own-timeout")
                await ws.send("next")
                assert await asyncio.wait_for(ws.recv(), 5) == "echo: next"

        asyncio.run(main())
        log = app.stderr()
        assert "handler raised TimeoutError: the handler's own timeout" in log
        assert "did not finish within" not in log


def test_a_client_leaving_during_a_stuck_chain_gets_its_close_chain_and_slot(
    tmp_path: Path,
) -> None:
    # No timeout at all: only leaving can free the slot.
    with LoloProcess(stuck_flow(tmp_path, "null")) as app:

        async def main() -> float:
            for _ in range(5):  # max_connections: 5, each leaves with a chain stuck
                async with websockets.connect(app.url()) as ws:
                    await ws.recv()
                    await ws.send("hang")
                    await asyncio.sleep(0.05)
            started = time.monotonic()
            while True:  # the sixth is let in once the close chains ran (close_timeout 1 s)
                try:
                    async with websockets.connect(app.url()) as ws:
                        assert await ws.recv() == "welcome"
                        return time.monotonic() - started
                except websockets.InvalidStatus as refused:
                    assert refused.response.status_code == 503
                    assert time.monotonic() - started < 5, "slots never came back"
                    await asyncio.sleep(0.1)

        waited = asyncio.run(main())
        assert waited < 3
        assert wait_for(lambda: app.stderr().count("close chain ran for") >= 5, 5)
        assert wait_for(
            lambda: app.stderr().count("left while a message chain was still running") == 5, 5
        )


def test_a_stuck_http_handler_answers_504_at_the_node_timeout(tmp_path: Path) -> None:
    with LoloProcess(stuck_flow(tmp_path)) as app:
        started = time.monotonic()
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(f"http://127.0.0.1:{app.port}/do?do=hang", timeout=10)
        answer.value.close()
        assert answer.value.code == 504
        assert 0.9 <= time.monotonic() - started < 3
        with urllib.request.urlopen(f"http://127.0.0.1:{app.port}/do?do=x", timeout=5) as ok:
            assert ok.read() == b"echo: x"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("handler_timeout: 0\n", "handler_timeout"),
        ("handler_timeout: soon\n", "handler_timeout"),
        ("", "type 'lolo/websocket-trigger' takes no timeout"),
    ],
)
def test_bad_timeouts_are_flow_errors(tmp_path: Path, text: str, message: str) -> None:
    import subprocess

    flow = tmp_path / "flow.yaml"
    ws_timeout = "    timeout: 5\n" if not text else ""
    flow.write_text(
        f"app: t\n{text}nodes:\n  - id: ws\n    type: lolo/websocket-trigger\n"
        f"    params: {{path: /s}}\n{ws_timeout}"
    )
    done = subprocess.run(
        [*lolo_run_command(), "check", str(flow)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert re.search(rf"{re.escape(str(flow))}:\d+: ", done.stderr), done.stderr
