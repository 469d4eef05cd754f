"""``--reload``, the swap: carry a :class:`~lolo_runtime.reloadplan.ReloadPlan` out on a
running app.

In this order, so that nothing the running version serves is disturbed before the new
version is known to set up:

1. set the added nodes up (each within its ``setup_timeout``); one failing undoes the others
   and raises :class:`SwapFailed`: the running version is untouched;
2. stop the retired triggers: their URL paths stop being routed, their WebSocket clients are
   closed (1012 when the path is still served, else 1001) and their ``close`` chains start
   on the old version, which knew those clients;
3. ``engine.swap``: chains that start from now on travel the new version; chains already
   running finish on the old one;
4. start the added triggers; the runtime adopts the new flow (shutdown order, the watchdog's
   handler table), and ``/_lolo/openapi.json`` describes it;
5. in the background, once the old version's chains are done (``--shutdown-timeout`` at
   most), close the retired nodes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lolo_runtime.context import SetupContext
from lolo_runtime.engine import Wiring
from lolo_runtime.errors import LoloError
from lolo_runtime.loader import Flow
from lolo_runtime.node import Node, Trigger
from lolo_runtime.nodes.function import FunctionNode
from lolo_runtime.openapi import OPENAPI_PATH, OpenApiRoute
from lolo_runtime.reloadplan import ReloadPlan, holds_connections, modules_in_use
from lolo_runtime.runtime import bounded

if TYPE_CHECKING:
    from lolo_runtime.runtime import Runtime

log = logging.getLogger("lolo.reload")

CLIENT_CLOSE_WAIT = 5.0
"""Seconds to wait for the clients of a retired trigger to close before the swap goes on
(a client that does not answer its close frame is dropped after its ``close_timeout``)."""


class SwapFailed(LoloError):
    """A node of the new version could not be set up; the running version is untouched."""

    def __init__(self, node_id: str, message: str):
        super().__init__(message)
        self.node_id = node_id
        self.message = message


@dataclass(frozen=True)
class SwapOutcome:
    """What the swap did, for the reload's summary line."""

    sessions_kept: int
    clients_closed: int
    triggers_not_started: list[str]


async def swap_in(runtime: Runtime, new_flow: Flow, plan: ReloadPlan) -> SwapOutcome:
    """Make ``new_flow`` (as ``plan`` says) the running version of ``runtime``."""
    engine = runtime.engine
    await _set_up_added(runtime, plan)
    closed = await _stop_retired_triggers(runtime, plan)
    await asyncio.sleep(0)  # the close chains of those clients start on the old wiring
    old_wiring = engine.swap(plan.live_nodes, new_flow.table)
    engine.env = dict(new_flow.env)
    live_flow = dataclasses.replace(new_flow, nodes=plan.live_nodes)
    runtime.adopt_reloaded_flow(live_flow, [node.id for node in plan.added])
    not_started = await _start_added_triggers(runtime, plan)
    if runtime.edge is not None and runtime.edge.remove(OPENAPI_PATH) is not None:
        runtime.edge.add_http(OPENAPI_PATH, OpenApiRoute(live_flow))
    engine.spawn(_retire(old_wiring, plan.to_close(), runtime.shutdown_timeout))
    kept = 0
    if runtime.edge is not None:
        for node_id in plan.kept:
            node = plan.live_nodes[node_id]
            if isinstance(node, Trigger) and holds_connections(node):
                kept += len(runtime.edge.clients_of(node))
    return SwapOutcome(kept, closed, not_started)


async def _set_up_added(runtime: Runtime, plan: ReloadPlan) -> None:
    """Set up each added node; if one fails (or the reload is cancelled: a shutdown), close
    the ones set up so far, except where a running node uses the same module."""
    done: list[Node] = []
    try:
        for node in plan.added:
            try:
                await asyncio.wait_for(
                    node.setup(SetupContext(runtime.engine, node)), node.setup_timeout
                )
            except TimeoutError as exc:
                why = f"setup did not finish within {node.setup_timeout:g}s"
                raise SwapFailed(node.id, f"node {node.id!r}: {why}") from exc
            except Exception as exc:
                why = f"setup failed: {type(exc).__name__}: {exc}"
                raise SwapFailed(node.id, f"node {node.id!r}: {why}") from exc
            done.append(node)
    except BaseException:
        in_use = modules_in_use(runtime.flow.nodes.values())
        for ready in reversed(done):
            if not (isinstance(ready, FunctionNode) and id(ready.module) in in_use):
                await bounded(ready.close(), ready.close_timeout, f"closing {ready.id}")
        raise


async def _stop_retired_triggers(runtime: Runtime, plan: ReloadPlan) -> int:
    """Stop each retired trigger, stop routing its paths and close its WebSocket clients;
    return how many clients were closed."""
    closed = 0
    edge = runtime.edge
    for trigger in plan.stopped_triggers:
        await bounded(trigger.stop(), trigger.close_timeout, f"stopping {trigger.id}")
        if edge is None:
            continue
        for path in trigger.http_paths:
            edge.remove(path)
        code = plan.close_codes.get(trigger.id, 1001)
        reason = "service restart" if code == 1012 else "going away"
        closed += await edge.close_clients_of(trigger, code, reason, CLIENT_CLOSE_WAIT)
    return closed


async def _start_added_triggers(runtime: Runtime, plan: ReloadPlan) -> list[str]:
    not_started: list[str] = []
    for trigger in plan.started_triggers:
        try:
            await trigger.start(runtime)
        except Exception as exc:
            log.error(
                "node %r: could not start: %s: %s; fix the flow and save it again, or "
                "restart lolo-run",
                trigger.id,
                type(exc).__name__,
                exc,
            )
            not_started.append(trigger.id)
    return not_started


async def _retire(old_wiring: Wiring, nodes: list[Node], timeout: float) -> None:
    """Close the retired ``nodes`` once the chains on ``old_wiring`` are done."""
    if not await old_wiring.finished(timeout):
        log.warning(
            "chains of the previous version still ran after %gs; closing its nodes anyway",
            timeout,
        )
    for node in nodes:
        await bounded(node.close(), node.close_timeout, f"closing {node.id} (previous version)")
