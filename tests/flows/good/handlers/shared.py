"""One module behind two nodes: a plain ``def`` handler and no ``setup``."""

from __future__ import annotations

from typing import Any

received: list[tuple[str, dict[str, Any]]] = []


def handler(ev: dict[str, Any], ctx: Any) -> None:
    received.append((ctx.node_id, ev))
