"""Process Request: keeps a table of open connections, as in the Lolo tutorial.

In-ports ``req`` (a client connects), ``msg`` (it sends) and ``close`` (it leaves);
out-ports ``req`` and ``msg``. Behind ``lolo/api-auth`` (flows/chat-auth.yaml) each
connection also keeps the email of its key's holder as its ``username``.
"""

from __future__ import annotations

from typing import Any

# Lives as long as the app: every event of every client sees the same table.
connections: dict[str, dict[str, Any]] = {}


async def handler(ev: dict[str, Any], ctx: Any) -> None:
    session_id = ev["sessionId"]

    if ctx.input == ctx.inputs.req:
        emit = ctx.emit  # bound to this client's connection; still works after we return
        session = ev.get("session") or {}
        connections[session_id] = {
            "send": lambda body: emit("response", {"body": body}),
            "end": lambda: emit("response", {"end": True}),
            "info": ev["headers"],
            "username": session.get("email"),  # set by lolo/api-auth, if it ran
        }
        ev["body"] = {"connected": True, "yourConnectionId": session_id}
        ctx.route(ev, "req")

    elif ctx.input == ctx.inputs.msg:
        ctx.route(
            {"connections": connections, "message": ev["message"], "sessionId": session_id},
            "msg",
        )

    elif ctx.input == ctx.inputs.close:
        ctx.log.info("client has disconnected")
        connections.pop(session_id, None)
