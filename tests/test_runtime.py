"""Runtime start-up and shutdown order, on flows without triggers (no sockets)."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest

from lolo_runtime.loader import load_flow
from lolo_runtime.node import Node
from lolo_runtime.runtime import Runtime, ServeOptions, StartupError
from lolo_runtime.state import SQLiteBackend

HANDLER = """
import asyncio

calls = []

async def setup(ctx):
    if ctx.params.get("hang"):
        await asyncio.sleep(60)
    if ctx.params.get("fail"):
        raise OSError("no database")
    await ctx.state.set("setup-ran", True)
    calls.append(("setup", ctx.node_id))

def handler(ev, ctx):
    pass

async def close():
    calls.append(("close",))
"""


def flow(tmp_path: Path, params: str = "{}") -> Path:
    (tmp_path / "lifecycle.py").write_text(HANDLER)
    path = tmp_path / "flow.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        app: lifecycle
        nodes:
          - id: only
            type: lolo/function
            handler: lifecycle.py
            params: {params}
        """)
    )
    return path


def test_setup_runs_with_state_open_and_close_runs_at_stop(tmp_path: Path) -> None:
    loaded = load_flow(flow(tmp_path))
    backend = SQLiteBackend(tmp_path / "state.sqlite3")
    runtime = Runtime(loaded, ServeOptions(port=0), state=backend)

    async def cycle() -> object:
        await runtime.start()
        value = await runtime.engine.state.get("setup-ran")
        await runtime.stop()
        return value

    assert asyncio.run(cycle()) is True
    module = loaded.nodes["only"].module  # type: ignore[attr-defined]
    assert module.calls[-2:] == [("setup", "only"), ("close",)]


def test_a_failing_setup_is_a_startup_error_naming_the_node(tmp_path: Path) -> None:
    runtime = Runtime(load_flow(flow(tmp_path, "{fail: true}")), ServeOptions(port=0))
    with pytest.raises(StartupError, match=r"node 'only': setup failed: OSError: no database"):
        asyncio.run(runtime.start())


def test_a_hanging_setup_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Node, "setup_timeout", 0.05)
    runtime = Runtime(load_flow(flow(tmp_path, "{hang: true}")), ServeOptions(port=0))
    with pytest.raises(StartupError, match=r"setup did not finish within 0.05s"):
        asyncio.run(runtime.start())
