"""``lolo/broadcast``: what arrives on ``in`` goes to every member of a channel.

The event's ``body`` is sent (str as text, bytes as binary, anything else as JSON) to
every client that joined ``params.channel`` (``ctx.join``), in every process of the app,
except the event's sender (its ``sessionId``) unless ``include_sender`` is set. The event
then goes on, unchanged, out of ``out`` (wire it to keep history, say, or leave it).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from lolo_runtime.context import Context
from lolo_runtime.node import Node
from lolo_runtime.types import Event


class BroadcastParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str = Field(
        min_length=1, max_length=256, description="The channel whose members get the event's body."
    )
    include_sender: bool = Field(
        False, description="Also send it to the client whose event this is."
    )


class BroadcastNode(Node):
    Params = BroadcastParams
    outputs: ClassVar[tuple[str, ...]] = ("out",)

    async def handle(self, ev: Event, ctx: Context) -> None:
        params: BroadcastParams = self.params
        if "body" not in ev:
            raise ValueError(
                f"{self.id}: the event has no 'body' to broadcast "
                f"(its fields: {', '.join(sorted(ev)) or 'none'})"
            )
        sender = None if params.include_sender else ev.get("sessionId")
        ctx.publish(params.channel, ev["body"], exclude=sender)
        ctx.route(ev, "out")
