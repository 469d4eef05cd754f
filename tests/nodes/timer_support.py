"""Helpers of the timer tests: wall-clock times by zone, and a node that records the
events a timer sends it. (The clock itself is :class:`lolo_runtime.testing.TestClock`.)"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import ClassVar
from zoneinfo import ZoneInfo

from lolo_runtime.context import Context
from lolo_runtime.node import Node, NodeConfig
from lolo_runtime.types import Event


def at(text: str, zone: str = "UTC") -> float:
    """``"2024-03-31T01:59"`` on the wall clock of ``zone`` (first copy if repeated) as a
    Unix timestamp."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


class Recorder(Node):
    """Records every event it gets. A test may hold each chain at ``gate`` (to keep it
    running), or have the chain raise after recording (``fail`` is true)."""

    inputs: ClassVar[tuple[str, ...]] = ("in",)
    outputs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: NodeConfig):
        super().__init__(config)
        self.events: list[Event] = []
        self.gate: asyncio.Event | None = None
        self.fail = False
        self.running = 0
        self.most_running = 0

    async def handle(self, ev: Event, ctx: Context) -> None:
        self.events.append(ev)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
            ctx.emit("response", {"body": "nobody is listening"})  # a timer drops it
            if self.fail:
                raise RuntimeError("this chain fails on purpose")
        finally:
            self.running -= 1
