"""``GET /_lolo/health``: whether this process can do its job, for load balancers and
orchestrators. 200 ``{"status": "ok"}``, or 503 ``{"status": "unavailable", "problems":
[...]}`` when the state store is unusable (its file deleted, say) or Redis is unreachable
(its clients are still served locally, but other processes' messages cannot reach them)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from lolo_runtime.edge.types import HttpRequest, HttpResponse

HEALTH_PATH = "/_lolo/health"

Check = Callable[[], str | None]
"""Returns what is wrong, or None."""


class HealthRoute:
    """The health route of one app process (an edge ``HttpRoute``)."""

    methods: frozenset[str] = frozenset({"GET", "HEAD"})
    max_body_bytes: int = 0

    def __init__(self, app: str, checks: list[Check]) -> None:
        self.app = app
        self.checks = checks

    async def serve_http(self, request: HttpRequest) -> HttpResponse:
        problems = [problem for check in self.checks if (problem := check()) is not None]
        body: dict[str, object] = {
            "status": "unavailable" if problems else "ok",
            "app": self.app,
            "pid": os.getpid(),
        }
        if problems:
            body["problems"] = problems
        return HttpResponse(
            503 if problems else 200,
            [("content-type", "application/json"), ("cache-control", "no-store")],
            json.dumps(body).encode() + b"\n",
        )
