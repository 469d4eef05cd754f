"""The pure half of ``--reload``: which nodes a reload keeps, sets up, retires or refuses.

Two flows are loaded with the real loader (no event loop, no sockets) and compared."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lolo_runtime.loader import Flow, load_flow
from lolo_runtime.nodes.function import forget_changed_modules, forget_handler_modules
from lolo_runtime.reloadplan import (
    CLOSE_GOING_AWAY,
    CLOSE_SERVICE_RESTART,
    ReloadPlan,
    plan_reload,
)

BASE = """\
app: planned
port: 4100
nodes:
  - id: ws
    type: lolo/websocket-trigger
    params: {path: /socket, max_messages_per_second: 20}
  - id: api
    type: lolo/http-trigger
    params: {path: /hello/:name, methods: [GET]}
  - id: tick
    type: lolo/timer-trigger
    params: {every: 30s}
  - id: work
    type: lolo/function
    handler: work.py
    params: {greeting: hi}
  - id: other
    type: lolo/function
    handler: other.py
edges:
  - ws.message -> work.in
  - api.out -> other.in
  - tick.out -> other.in
"""


@pytest.fixture(autouse=True)
def fresh_modules() -> Iterator[None]:
    forget_handler_modules()
    yield
    forget_handler_modules()


class Versions:
    """A flow file in a folder, loaded as it is and again after each edit."""

    def __init__(self, folder: Path):
        self.folder = folder
        (folder / "work.py").write_text("async def handler(ev, ctx):\n    pass\n")
        (folder / "other.py").write_text("async def handler(ev, ctx):\n    pass\n")
        self.path = folder / "flow.yaml"
        self.path.write_text(BASE)
        self.running = load_flow(self.path)

    def plan(self, old: str, new: str, *, listening: bool = True) -> tuple[ReloadPlan, Flow]:
        text = BASE.replace(old, new)
        assert text != BASE or old == new
        self.path.write_text(text)
        loaded = load_flow(self.path)
        return plan_reload(self.running, loaded, listening), loaded


@pytest.fixture
def versions(tmp_path: Path) -> Versions:
    return Versions(tmp_path)


def ids(nodes: object) -> list[str]:
    return [node.id for node in nodes]  # type: ignore[attr-defined]


def test_an_unchanged_flow_keeps_every_running_node(versions: Versions) -> None:
    plan, _ = versions.plan("", "")
    assert plan.kept == ["ws", "api", "tick", "work", "other"]
    assert plan.added == [] and plan.retired == [] and plan.restarted == []
    assert plan.refusals == [] and plan.warnings == []
    assert all(plan.live_nodes[i] is versions.running.nodes[i] for i in plan.kept)


def test_a_re_imported_handler_module_replaces_only_its_node(versions: Versions) -> None:
    forget_changed_modules([versions.folder / "work.py"])
    plan, loaded = versions.plan("", "")
    assert ids(plan.added) == ["work"] and ids(plan.retired) == ["work"]
    assert plan.live_nodes["work"] is loaded.nodes["work"]
    assert plan.live_nodes["other"] is versions.running.nodes["other"]
    assert ids(plan.to_close()) == ["work"]  # its old module is no longer used
    assert plan.restarted == []


def test_a_function_node_with_new_params_but_the_same_module_is_not_closed(
    versions: Versions,
) -> None:
    plan, _ = versions.plan("{greeting: hi}", "{greeting: hello}")
    assert ids(plan.added) == ["work"] and ids(plan.retired) == ["work"]
    # The new node runs the same module: its close() would close what the new one uses.
    assert plan.to_close() == []


def test_a_websocket_trigger_with_new_params_is_kept_with_a_warning(versions: Versions) -> None:
    plan, _ = versions.plan("max_messages_per_second: 20", "max_messages_per_second: 5")
    assert "ws" in plan.kept
    assert plan.live_nodes["ws"] is versions.running.nodes["ws"]
    assert len(plan.warnings) == 1
    assert "node 'ws': params.max_messages_per_second changed" in plan.warnings[0]
    assert "restarts" in plan.warnings[0]


def test_an_http_trigger_with_new_params_is_restarted(versions: Versions) -> None:
    plan, loaded = versions.plan("methods: [GET]", "methods: [GET, HEAD]")
    assert plan.restarted == ["api"]
    assert plan.started_triggers == [loaded.nodes["api"]]
    assert plan.stopped_triggers == [versions.running.nodes["api"]]
    assert plan.close_codes == {"api": CLOSE_SERVICE_RESTART}
    assert plan.warnings == []


def test_a_timer_is_kept_unchanged_and_restarted_when_its_params_change(
    versions: Versions,
) -> None:
    plan, _ = versions.plan("", "")
    assert "tick" in plan.kept
    plan, _ = versions.plan("every: 30s", "every: 10s")
    assert plan.restarted == ["tick"]


def test_a_websocket_trigger_on_a_new_path_is_restarted_and_its_clients_told_1001(
    versions: Versions,
) -> None:
    plan, _ = versions.plan("path: /socket,", "path: /chat,")
    assert plan.restarted == ["ws"]
    assert plan.close_codes == {"ws": CLOSE_GOING_AWAY}


def test_a_renamed_trigger_on_the_same_path_tells_its_clients_1012(versions: Versions) -> None:
    versions.path.write_text(
        BASE.replace("id: ws\n", "id: socket\n").replace("ws.message", "socket.message")
    )
    plan = plan_reload(versions.running, load_flow(versions.path), listening=True)
    assert ids(plan.started_triggers) == ["socket"]
    assert ids(plan.stopped_triggers) == ["ws"]
    assert plan.restarted == []  # another id: a new trigger, not this one again
    assert plan.close_codes == {"ws": CLOSE_SERVICE_RESTART}


def test_removing_a_trigger_and_its_edge_retires_it(versions: Versions) -> None:
    text = (
        BASE.replace("id: api\n", "id: page\n")
        .replace("{path: /hello/:name, methods: [GET]}", "{path: /page}")
        .replace("api.out -> other.in", "page.out -> other.in")
    )
    versions.path.write_text(text)
    plan = plan_reload(versions.running, load_flow(versions.path), listening=True)
    assert ids(plan.stopped_triggers) == ["api"]
    assert ids(plan.started_triggers) == ["page"]
    assert plan.close_codes == {"api": CLOSE_GOING_AWAY}
    assert plan.restarted == []
    assert list(plan.live_nodes) == ["ws", "page", "tick", "work", "other"]


def test_a_new_app_name_or_port_is_refused(versions: Versions) -> None:
    plan, _ = versions.plan("app: planned\nport: 4100", "app: renamed\nport: 4200")
    assert [refusal.where for refusal in plan.refusals] == [("app",), ("port",)]
    assert "'planned' became 'renamed'" in plan.refusals[0].message
    assert "4100 became 4200" in plan.refusals[1].message
    assert "restart lolo-run" in plan.refusals[0].message


def test_a_path_in_an_app_that_opened_no_port_is_refused(versions: Versions) -> None:
    plan, _ = versions.plan("", "", listening=False)
    assert [refusal.where for refusal in plan.refusals] == [
        ("nodes", 0, "params", "path"),
        ("nodes", 1, "params", "path"),
    ]
    assert "opened no port" in plan.refusals[0].message


def test_a_changed_edge_alone_keeps_every_node(versions: Versions) -> None:
    plan, loaded = versions.plan("tick.out -> other.in", "tick.out -> work.in")
    assert plan.added == [] and plan.retired == []
    assert loaded.table.as_dict() != versions.running.table.as_dict()
