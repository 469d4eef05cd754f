"""The handlers of flows/chat-cluster.yaml; each node picks its job with ``params.action``.

Nothing here is shared between processes but ``ctx.state`` and channels, so the chat works
on any number of them:

* ``gate``: sends a connecting client through ``lolo/api-auth`` when ``REQUIRE_KEY`` is 1.
* ``welcome``: answers with the tutorial's connect message, joins the client to the
  channel ``chat``, then sends the history (at most ``HISTORY_MAX_BYTES`` of the newest
  entries); if the store cannot be read (Redis away) the client is let in without it.
* ``sign``: turns a message into ``<sender> says: <message>`` for ``lolo/broadcast``.
* ``remember``: appends it to the bounded list ``chat-history`` (``ctx.state.push``), then
  passes it on to ``lolo/broadcast``. Kept first, sent second: a client that joined after
  a message was sent finds it in the history. A binary message, or one over
  ``HISTORY_MAX_MESSAGE_BYTES``, is relayed but not kept; so is every message while the
  store cannot be written (Redis away), with an error logged.
* ``goodbye``: logs the departure (the client leaves its channels by itself).

A client's messages always reach the process it is connected to, so the sender's name
(its key holder's email, else its session id) is kept in this process's memory.
"""

from __future__ import annotations

import json
from typing import Any

from lolo_runtime.state import StateError

CHANNEL = "chat"
HISTORY_KEY = "chat-history"
COUNTER_KEY = "chat-count"

names: dict[str, str] = {}  # session id -> how its messages are signed (this process's clients)


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    action = ctx.params["action"]
    if action == "gate":
        ctx.route(ev, "check" if ctx.env.get("REQUIRE_KEY", "0") == "1" else "pass")
    elif action == "welcome":
        await welcome(ev, ctx)
    elif action == "sign":
        name = names.get(ev["sessionId"], ev["sessionId"])
        ev["from"] = name
        ev["body"] = (
            f"{name} says: {ev['message']}" if isinstance(ev["message"], str) else ev["message"]
        )
        ctx.route(ev)
    elif action == "remember":
        await remember(ev, ctx)
    elif action == "goodbye":
        names.pop(ev["sessionId"], None)
        ctx.log.info("client has disconnected")
    else:
        raise ValueError(f"unknown params.action {action!r}")


async def welcome(ev: dict[str, Any], ctx: Any) -> None:
    session_id = ev["sessionId"]
    email = (ev.get("session") or {}).get("email")
    names[session_id] = email or session_id
    # The greeting goes first: once the client has joined, messages from other clients
    # may reach it at any moment (with Redis, while join waits for the subscription).
    ctx.emit("response", {"body": {"connected": True, "yourConnectionId": session_id}})
    await ctx.join(CHANNEL)
    ctx.log.info("client has connected")
    try:
        stored = await ctx.state.get(HISTORY_KEY, [])
    except StateError as error:
        # The store is away (Redis down): the client can still chat with the others
        # connected to this process; it just misses what was said before it came.
        ctx.log.warning(f"no history for this client: {error}")
        return
    past = newest_within(stored, int(ctx.env.get("HISTORY_MAX_BYTES", "65536")))
    if past:
        ctx.emit("response", {"body": {"history": past}})


def newest_within(entries: list[Any], budget: int) -> list[Any]:
    """The newest ``entries`` whose JSON fits in ``budget`` bytes, oldest first."""
    kept: list[Any] = []
    used = len('{"history":[]}')
    for entry in reversed(entries):
        size = len(json.dumps(entry, ensure_ascii=False).encode()) + 1
        if used + size > budget:
            break
        kept.append(entry)
        used += size
    kept.reverse()
    return kept


async def remember(ev: dict[str, Any], ctx: Any) -> None:
    try:
        await keep(ev, ctx)
    except StateError as error:
        ctx.log.error(f"message relayed but not kept in the history: StateError: {error}")
    ctx.route(ev)


async def keep(ev: dict[str, Any], ctx: Any) -> None:
    slots = int(ctx.env.get("HISTORY_SIZE", "20"))
    message = ev["message"]
    limit = int(ctx.env.get("HISTORY_MAX_MESSAGE_BYTES", "2048"))
    if slots <= 0 or not isinstance(message, str) or len(message.encode()) > limit:
        return
    number = await ctx.state.incr(COUNTER_KEY)
    await ctx.state.push(
        HISTORY_KEY, {"n": number, "from": ev["from"], "message": message}, keep=slots
    )
