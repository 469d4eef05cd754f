"""The handler module cache under ``--reload``: what is imported afresh, and putting the
cache back exactly when a new version does not load."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from lolo_runtime.errors import FlowErrors
from lolo_runtime.loader import Flow, load_flow
from lolo_runtime.nodes.function import (
    FunctionNode,
    forget_changed_modules,
    forget_handler_modules,
    helper_module_files,
    restore_handler_modules,
    snapshot_handler_modules,
)


@pytest.fixture(autouse=True)
def fresh_modules() -> Iterator[None]:
    forget_handler_modules()
    yield
    forget_handler_modules()


def write_app(folder: Path, helper: str) -> Path:
    """Two handlers in ``folder/h`` importing the helper module ``helper`` beside them, and
    one in ``folder/solo`` that imports nothing."""
    (folder / "h").mkdir()
    (folder / "solo").mkdir()
    (folder / "h" / f"{helper}.py").write_text("counter = [0]\n")
    for name in ("first", "second"):
        (folder / "h" / f"{name}.py").write_text(
            f"import {helper}\n\nasync def handler(ev, ctx):\n    {helper}.counter[0] += 1\n"
        )
    (folder / "solo" / "alone.py").write_text("async def handler(ev, ctx):\n    pass\n")
    flow = folder / "flow.yaml"
    flow.write_text(
        textwrap.dedent("""\
        app: cache
        nodes:
          - {id: first, type: lolo/function, handler: h/first.py}
          - {id: second, type: lolo/function, handler: h/second.py}
          - {id: alone, type: lolo/function, handler: solo/alone.py}
        """)
    )
    return flow


def module_of(flow: Flow, node_id: str) -> object:
    node = flow.nodes[node_id]
    assert isinstance(node, FunctionNode)
    return node.module


def test_a_failed_load_puts_the_cache_back_exactly(tmp_path: Path) -> None:
    flow = write_app(tmp_path, "cache_helper_a")
    running = load_flow(flow)
    helper = sys.modules["cache_helper_a"]
    path_before = list(sys.path)
    before = snapshot_handler_modules()
    first = tmp_path / "h" / "first.py"
    forget_changed_modules([first])
    first.write_text("import cache_helper_a\nimport cache_new_helper\n\ndef handler(ev, ctx)\n")
    (tmp_path / "h" / "cache_new_helper.py").write_text("")
    with pytest.raises(FlowErrors) as failed:
        load_flow(flow)
    assert "SyntaxError" in str(failed.value)
    restore_handler_modules(before)
    assert sys.modules["cache_helper_a"] is helper
    assert "cache_new_helper" not in sys.modules
    assert sys.path == path_before
    again = load_flow(flow)  # from the cache: the very modules the running version has
    for node_id in ("first", "second", "alone"):
        assert module_of(again, node_id) is module_of(running, node_id)


def test_a_changed_handler_alone_is_imported_afresh(tmp_path: Path) -> None:
    flow = write_app(tmp_path, "cache_helper_b")
    running = load_flow(flow)
    helper = sys.modules["cache_helper_b"]
    forgotten = forget_changed_modules([tmp_path / "h" / "second.py"])
    assert forgotten == {(tmp_path / "h" / "second.py").resolve()}
    loaded = load_flow(flow)
    assert module_of(loaded, "second") is not module_of(running, "second")
    assert module_of(loaded, "first") is module_of(running, "first")
    assert sys.modules["cache_helper_b"] is helper  # the helper's variables live on


def test_a_changed_helper_re_imports_every_handler_of_its_folder(tmp_path: Path) -> None:
    flow = write_app(tmp_path, "cache_helper_c")
    running = load_flow(flow)
    helper_file = (tmp_path / "h" / "cache_helper_c.py").resolve()
    assert helper_module_files()[helper_file] == "cache_helper_c"
    old_helper = sys.modules["cache_helper_c"]
    forgotten = forget_changed_modules([helper_file])
    assert forgotten == {(tmp_path / "h" / name).resolve() for name in ("first.py", "second.py")}
    loaded = load_flow(flow)
    assert module_of(loaded, "first") is not module_of(running, "first")
    assert module_of(loaded, "second") is not module_of(running, "second")
    assert module_of(loaded, "alone") is module_of(running, "alone")
    assert sys.modules["cache_helper_c"] is not old_helper
    assert module_of(loaded, "first").cache_helper_c is sys.modules["cache_helper_c"]  # type: ignore[attr-defined]


def test_an_edit_that_keeps_size_and_second_is_not_hidden_by_bytecode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # $PYTHONDONTWRITEBYTECODE aside
    handler = tmp_path / "stamp.py"
    handler.write_text("VALUE = 1\n\nasync def handler(ev, ctx):\n    pass\n")
    flow = tmp_path / "flow.yaml"
    flow.write_text("app: stamp\nnodes:\n  - {id: s, type: lolo/function, handler: stamp.py}\n")
    assert module_of(load_flow(flow), "s").VALUE == 1  # type: ignore[attr-defined]
    assert list((tmp_path / "__pycache__").glob("stamp.*.pyc"))  # the cache that could lie
    stamp = handler.stat()
    handler.write_text("VALUE = 2\n\nasync def handler(ev, ctx):\n    pass\n")
    os.utime(handler, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # what the cache checks
    forget_changed_modules([handler])
    assert module_of(load_flow(flow), "s").VALUE == 2  # type: ignore[attr-defined]
