"""``example/uppercase``: passes each event on with one of its fields upper-cased."""

from __future__ import annotations

from typing import ClassVar, cast

from pydantic import BaseModel, ConfigDict, Field

from lolo_runtime.context import Context
from lolo_runtime.node import Node, NodeConfig
from lolo_runtime.types import Event


class UppercaseParams(BaseModel):
    """``params:`` of an ``example/uppercase`` node, validated when the flow loads."""

    model_config = ConfigDict(extra="forbid")  # a misspelt param is an error, not ignored

    field: str = Field("message", min_length=1, description="The event key to upper-case.")


class Uppercase(Node):
    """Routes every event out of ``out`` with ``ev[params.field]`` upper-cased.

    Text and bytes are upper-cased; an event without the field, or whose field holds
    anything else, passes through unchanged.
    """

    Params = UppercaseParams
    inputs: ClassVar[tuple[str, ...]] = ("in",)
    outputs: ClassVar[tuple[str, ...]] = ("out",)

    def __init__(self, config: NodeConfig):
        super().__init__(config)
        # The loader has validated ``params:`` with ``Params``; this only tells mypy so.
        self.params: UppercaseParams = cast(UppercaseParams, config.params)

    async def handle(self, ev: Event, ctx: Context) -> None:
        field = self.params.field
        value = ev.get(field)
        if isinstance(value, str | bytes):
            # Fan-out hands the same dict to every wired node: change a copy, not ``ev``.
            ev = {**ev, field: value.upper()}
        ctx.route(ev)
