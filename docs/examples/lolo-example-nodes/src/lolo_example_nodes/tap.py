"""``example/tap``: logs and counts the events that pass, like a tap on a wire."""

from __future__ import annotations

from typing import ClassVar, Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from lolo_runtime.context import Context, SetupContext
from lolo_runtime.logs import NodeLog
from lolo_runtime.node import Node, NodeConfig
from lolo_runtime.types import Event


class TapParams(BaseModel):
    """``params:`` of an ``example/tap`` node."""

    model_config = ConfigDict(extra="forbid")

    level: Literal["debug", "info", "warning"] = Field(
        "info", description="Level of the line logged for each event."
    )
    fields: list[str] = Field(
        default_factory=lambda: ["message"], description="Event keys shown in each line."
    )


class Tap(Node):
    """Passes every event from ``in`` to ``out`` unchanged, logging it on the way.

    It shows the lifecycle: ``setup`` starts the count and keeps a logger, ``handle``
    counts, ``close`` logs the total at shutdown.
    """

    Params = TapParams
    inputs: ClassVar[tuple[str, ...]] = ("in",)
    outputs: ClassVar[tuple[str, ...]] = ("out",)
    close_timeout: ClassVar[float] = 2.0

    def __init__(self, config: NodeConfig):
        # Runs at load time, also for ``lolo-run check``: validate, but open nothing here.
        super().__init__(config)
        self.params: TapParams = cast(TapParams, config.params)
        self.count = 0
        self._log: NodeLog | None = None

    async def setup(self, ctx: SetupContext) -> None:
        self.count = 0
        self._log = ctx.log  # ``close`` gets no ctx: keep what it needs
        ctx.log.info(f"tap ready, logging each event at {self.params.level}")

    async def handle(self, ev: Event, ctx: Context) -> None:
        self.count += 1
        shown = " ".join(f"{key}={ev[key]!r}" for key in self.params.fields if key in ev)
        line = f"event #{self.count} on {ctx.input!r}: {shown}"
        if self.params.level == "debug":
            ctx.log.debug(line)
        elif self.params.level == "info":
            ctx.log.info(line)
        else:
            ctx.log.warning(line)
        ctx.route(ev)

    async def close(self) -> None:
        if self._log is not None:
            self._log.info(f"tap saw {self.count} events")
