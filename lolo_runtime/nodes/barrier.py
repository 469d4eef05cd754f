"""``lolo/barrier``: run several tasks at once on one event, then go on with all their results.

Ports: one in-port ``in``; out-ports ``out``, an optional ``timeout``, and any number of
others, each a *task tag*. An event arriving on ``in`` is sent, as is, out of every tag
port at once, each as a chain of its own; somewhere along its chain, task ``a`` says it is
finished with ``ctx.emit("a_done", result)``. When every task has, the barrier routes
``{"a": result_a, "b": result_b, ...}`` out of ``out``, on the chain that brought the event.

How the ``*_done`` emits are caught: each task's chain runs on behalf of a
:class:`_TaskInvocation` wrapped around the original invocation (the HTTP request, the
WebSocket session). It keeps the ``<tag>_done`` emits of this barrier's tags and passes
everything else on (a task may still answer the request with ``emit("response")``). The
wrappers nest, so a barrier inside another barrier's task works, and an outer tag's
``_done`` emitted deep inside an inner task still reaches the outer barrier.

Beyond Lolo, which drops the event when the tasks take longer than the barrier's timeout:
when the ``timeout`` out-port is wired the results so far go out of it instead (with the
missing tags left out), else the event is dropped with a warning. A task whose chain raises
ends the wait at once (Lolo would wait for the timeout): the failure reaches the invocation
as any failing chain's does (an HTTP request gets 500), and nothing goes out.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from lolo_runtime.context import Context, SetupContext
from lolo_runtime.errors import NodeConfigError
from lolo_runtime.node import Node, NodeConfig
from lolo_runtime.types import Event, Invocation

log = logging.getLogger("lolo.barrier")

OUT, TIMEOUT, DONE_SUFFIX = "out", "timeout", "_done"


class BarrierParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout: float = Field(
        30,
        gt=0,
        description="Seconds to wait for every task's '<tag>_done'; then the results so far "
        "go out of the 'timeout' port when it is wired, else the event is dropped.",
    )


class Gathering:
    """The results of one event's tasks, as they come in; ``settled`` resolves when every
    task is done or one has failed."""

    def __init__(self, tags: tuple[str, ...]):
        self.tags = tags
        self.results: dict[str, Any] = {}
        self.failed: tuple[str, str] | None = None
        """(tag, node id) of the first task whose chain raised before it was done."""
        self.over = False
        """Set when the barrier stops waiting: later ``_done`` emits are ignored."""
        self.settled: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def tag_of(self, name: str) -> str | None:
        """The tag whose done-event ``name`` is (``a_done`` -> ``a``), if it is one of ours."""
        if name.endswith(DONE_SUFFIX):
            tag = name[: -len(DONE_SUFFIX)]
            if tag in self.tags:
                return tag
        return None

    def done(self, tag: str, result: Any) -> None:
        if self.over or tag in self.results:
            log.debug("barrier task %r: a later or repeated %s%s is ignored", tag, tag, DONE_SUFFIX)
            return
        self.results[tag] = result
        if len(self.results) == len(self.tags):
            self._settle()

    def fail(self, tag: str, node_id: str) -> None:
        if self.over or tag in self.results or self.failed is not None:
            return
        self.failed = (tag, node_id)
        self._settle()

    def _settle(self) -> None:
        if not self.settled.done():
            self.settled.set_result(None)

    def collected(self) -> dict[str, Any]:
        """The results in the order of the tag ports (missing tags left out)."""
        return {tag: self.results[tag] for tag in self.tags if tag in self.results}


class _TaskInvocation:
    """What one task's chain runs on behalf of: keeps this barrier's ``<tag>_done`` emits,
    hands everything else to the invocation it wraps."""

    __slots__ = ("_gathering", "_outer", "_tag")

    def __init__(self, gathering: Gathering, tag: str, outer: Invocation):
        self._gathering = gathering
        self._tag = tag
        self._outer = outer

    @property
    def session_id(self) -> str:
        return self._outer.session_id

    def emit(self, name: str, payload: Any = None) -> None:
        tag = self._gathering.tag_of(name)
        if tag is None:
            self._outer.emit(name, payload)
        else:
            self._gathering.done(tag, payload)

    def fail(self, node_id: str, error: BaseException) -> None:
        self._gathering.fail(self._tag, node_id)
        self._outer.fail(node_id, error)


class BarrierNode(Node):
    """Fans an event out to its task ports and waits for every task's ``<tag>_done``."""

    Params = BarrierParams
    inputs: ClassVar[tuple[str, ...]] = ("in",)
    outputs: ClassVar[tuple[str, ...]] = (OUT,)
    ports_configurable: ClassVar[bool] = True

    def __init__(self, config: NodeConfig):
        super().__init__(config)
        self.params: BarrierParams = config.params  # type: ignore[assignment]
        if list(self.in_ports) != ["in"]:
            raise NodeConfigError(
                f"a barrier has exactly one in-port, 'in' (not {', '.join(self.in_ports)})",
                "inputs",
            )
        if OUT not in self.out_ports:
            raise NodeConfigError(
                "a barrier needs an out-port 'out' (its other out-ports are task tags, "
                "and an optional 'timeout')",
                "outputs",
            )
        self.tags = tuple(port for port in self.out_ports if port not in (OUT, TIMEOUT))
        self._timeout_wired = False

    async def setup(self, ctx: SetupContext) -> None:
        # A task port that leads nowhere can never say it is done: every event would wait
        # out the timeout. That is a mistake in the flow, so the app does not start.
        unwired = [tag for tag in self.tags if not ctx.is_wired(tag)]
        if unwired:
            raise ValueError(
                f"task port(s) {', '.join(map(repr, unwired))} lead nowhere: wire each to "
                f"the task that ends with ctx.emit('<tag>{DONE_SUFFIX}', result)"
            )
        self._timeout_wired = ctx.is_wired(TIMEOUT)
        if TIMEOUT in self.out_ports and not self._timeout_wired:
            ctx.log.warning("the 'timeout' out-port is wired to nothing: late events are dropped")

    async def handle(self, ev: Event, ctx: Context) -> None:
        if not self.tags:  # as on Lolo: nothing to wait for
            ctx.route(ev, OUT)
            return
        gathering = Gathering(self.tags)
        for tag in self.tags:
            ctx.start_chain(ev, tag, _TaskInvocation(gathering, tag, ctx.invocation))
        try:
            await asyncio.wait([gathering.settled], timeout=self.params.timeout)
        finally:
            gathering.over = True
        if gathering.failed is not None:
            tag, node_id = gathering.failed
            ctx.log.info(f"task {tag!r} failed in node {node_id!r}; event dropped")
        elif len(gathering.results) == len(self.tags):
            ctx.route(gathering.collected(), OUT)
        else:
            self._timed_out(gathering, ctx)

    def _timed_out(self, gathering: Gathering, ctx: Context) -> None:
        missing = ", ".join(tag for tag in self.tags if tag not in gathering.results)
        if self._timeout_wired:
            ctx.log.info(
                f"task(s) {missing} not done within {self.params.timeout:g}s; "
                "the results so far go out of 'timeout'"
            )
            ctx.route(gathering.collected(), TIMEOUT)
        else:
            ctx.log.warning(
                f"task(s) {missing} not done within {self.params.timeout:g}s; "
                "the event is dropped (wire a 'timeout' out-port to handle it)"
            )
