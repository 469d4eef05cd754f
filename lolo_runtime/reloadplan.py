"""``--reload``, the pure part: from the running flow and a newly loaded one, decide which
nodes are kept, which are set up, which go, and which changes need a restart instead.

No I/O and no event loop: :func:`plan_reload` only compares two loaded flows, so every
decision is unit-tested on its own (tests/reload/test_plan.py). :mod:`lolo_runtime.reloading`
carries a plan out.

The rules (docs/reload.md):

* A node whose type and configuration (params, ports, handler, timeout, name) are unchanged
  is **kept**: the running object goes on, with whatever it holds. A function node is kept
  only if its handler module was not imported afresh either.
* A trigger with the same id, type and URL paths whose params changed is **kept** if it
  holds client connections (a WebSocket trigger; a warning says that the new params need a
  restart), and **re-created** otherwise (HTTP routes, timers): nothing a client holds is lost.
* Every other node of the new flow is **added** (set up before the swap, triggers started
  after it); every running node not kept is **retired** (triggers stopped before the swap,
  all closed once the chains still on the old version have finished).
* A new ``app:`` name or ``port:``, or a first URL path in an app that opened no port, is
  **refused**: it needs a restart.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from lolo_runtime.loader import Flow
from lolo_runtime.node import Node, Trigger
from lolo_runtime.nodes.function import FunctionNode
from lolo_runtime.yamlsource import LocPath

CLOSE_GOING_AWAY = 1001
"""Close code for the clients of a WebSocket path the new version no longer serves."""
CLOSE_SERVICE_RESTART = 1012
"""Close code for the clients of a re-created trigger whose path is still served: a client
that reconnects finds it again."""


@dataclass(frozen=True)
class Refusal:
    """A change a reload cannot make; ``where`` locates it in the new flow file."""

    where: LocPath
    message: str


@dataclass
class ReloadPlan:
    """What to do to turn the running version into the new one."""

    live_nodes: dict[str, Node]
    """The new version's node map, in the new flow's order, kept objects in place."""
    kept: list[str] = field(default_factory=list)
    """Ids whose running object goes on unchanged."""
    added: list[Node] = field(default_factory=list)
    """New objects to set up, in flow order (triggers among them start after the swap)."""
    retired: list[Node] = field(default_factory=list)
    """Running objects that go, in the old flow's order (triggers stop before the swap)."""
    restarted: list[str] = field(default_factory=list)
    """Trigger ids in both versions whose trigger is re-created."""
    close_codes: dict[str, int] = field(default_factory=dict)
    """For each retired trigger: the close code for its WebSocket clients."""
    warnings: list[str] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)

    @property
    def started_triggers(self) -> list[Trigger]:
        return [node for node in self.added if isinstance(node, Trigger)]

    @property
    def stopped_triggers(self) -> list[Trigger]:
        return [node for node in self.retired if isinstance(node, Trigger)]

    def to_close(self) -> list[Node]:
        """Retired nodes to close once the old version's chains are done, last set up
        first. A function node whose module a live node still runs is not closed: its
        module's ``close()`` would close what the live node uses."""
        in_use = modules_in_use(self.live_nodes.values())
        return [
            node
            for node in reversed(self.retired)
            if not (_is_function(node) and id(node.module) in in_use)
        ]


def plan_reload(old: Flow, new: Flow, listening: bool) -> ReloadPlan:
    """Compare the running flow ``old`` with the loaded ``new`` one. ``listening``: the
    running app has a port open (some trigger of it listened at start)."""
    plan = ReloadPlan(live_nodes={})
    plan.refusals = _refusals(old, new, listening)
    for node_id, node in new.nodes.items():
        running = old.nodes.get(node_id)
        if running is not None and _keeps(running, node, plan):
            plan.live_nodes[node_id] = running
            plan.kept.append(node_id)
        else:
            plan.live_nodes[node_id] = node
            plan.added.append(node)
            if isinstance(running, Trigger) and isinstance(node, Trigger):
                plan.restarted.append(node_id)
    kept = set(plan.kept)
    plan.retired = [node for node_id, node in old.nodes.items() if node_id not in kept]
    served = {path for node in plan.live_nodes.values() for path in _paths(node)}
    for trigger in plan.stopped_triggers:
        still_served = bool(_paths(trigger)) and set(_paths(trigger)) <= served
        plan.close_codes[trigger.id] = CLOSE_SERVICE_RESTART if still_served else CLOSE_GOING_AWAY
    return plan


def _keeps(running: Node, loaded: Node, plan: ReloadPlan) -> bool:
    """Whether the running object stands for ``loaded`` (a warning if it does so only
    in part)."""
    if type(running) is not type(loaded):
        return False
    if _is_function(running) and _is_function(loaded) and running.module is not loaded.module:
        return False
    if running.config == loaded.config:
        return True
    if not isinstance(running, Trigger) or not isinstance(loaded, Trigger):
        return False
    if running.http_paths != loaded.http_paths or not holds_connections(running):
        return False
    changed = ", ".join(_changed_params(running.params, loaded.params)) or "name"
    plan.warnings.append(
        f"node {running.id!r}: {changed} changed, but the trigger is kept with its "
        "connections, so it runs on with its old params until lolo-run restarts"
    )
    return True


def holds_connections(trigger: Trigger) -> bool:
    """Whether ``trigger`` serves WebSocket clients (the edge's ``WebSocketRoute``), whose
    connections a re-created trigger would drop."""
    return callable(getattr(trigger, "on_handshake", None)) and hasattr(trigger, "ws_settings")


def _refusals(old: Flow, new: Flow, listening: bool) -> list[Refusal]:
    refusals: list[Refusal] = []
    if new.app != old.app:
        refusals.append(
            Refusal(
                ("app",),
                f"app: {old.app!r} became {new.app!r}: the app's name keys its state and "
                "channels; restart lolo-run to rename it",
            )
        )
    if new.spec.port != old.spec.port:
        refusals.append(
            Refusal(
                ("port",),
                f"port: {old.spec.port} became {new.spec.port}: the port is opened at start; "
                "restart lolo-run to listen elsewhere",
            )
        )
    if not listening:
        for index, spec in enumerate(new.spec.nodes):
            node = new.nodes.get(spec.id)
            if node is not None and _paths(node):
                refusals.append(
                    Refusal(
                        ("nodes", index, "params", "path"),
                        f"node {spec.id!r} serves a URL path, but the running app opened "
                        "no port (no trigger of it listened at start); restart lolo-run",
                    )
                )
    return refusals


def _paths(node: Node) -> list[str]:
    return node.http_paths if isinstance(node, Trigger) else []


def modules_in_use(nodes: Iterable[Node]) -> set[int]:
    """The ids of the handler modules that the function nodes among ``nodes`` run."""
    return {id(node.module) for node in nodes if _is_function(node)}


def _is_function(node: Node) -> TypeGuard[FunctionNode]:
    return isinstance(node, FunctionNode)


def _changed_params(old: Any, new: Any) -> list[str]:
    before = old.model_dump() if hasattr(old, "model_dump") else dict(old)
    after = new.model_dump() if hasattr(new, "model_dump") else dict(new)
    return [
        f"params.{key}"
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    ]
