"""The inspector's HTTP routes (edge ``HttpRoute``\\ s): the page and its two files, which
hold no figures and so load without the key, and ``/_lolo/metrics`` (Prometheus text),
which needs it when one is set. The live socket is ``live.py``."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

from lolo_runtime.edge.types import HttpRequest, HttpResponse
from lolo_runtime.inspector.access import NO_STORE, Access

PAGE_PATH = "/_lolo/"
METRICS_PATH = "/_lolo/metrics"
LIVE_PATH = "/_lolo/live"
ASSETS = {
    PAGE_PATH: ("page.html", "text/html; charset=utf-8"),
    "/_lolo/page.js": ("page.js", "text/javascript; charset=utf-8"),
    "/_lolo/page.css": ("page.css", "text/css; charset=utf-8"),
}
"""Path -> (file next to this module, its type)."""

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The page loads its own script and style and talks to its own socket, nothing else."""


def read_asset(name: str) -> bytes:
    return resources.files("lolo_runtime.inspector").joinpath(name).read_bytes()


class AssetRoute:
    """One file of the page, read once at start-up."""

    methods: frozenset[str] = frozenset({"GET", "HEAD"})
    max_body_bytes: int = 0

    def __init__(self, access: Access, body: bytes, content_type: str) -> None:
        self.access = access
        self.body = body
        self.headers = [
            ("content-type", content_type),
            ("content-security-policy", CONTENT_SECURITY_POLICY),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
            *NO_STORE,
        ]

    async def serve_http(self, request: HttpRequest) -> HttpResponse:
        refusal = self.access.where_refusal(request)
        if refusal is not None:
            return refusal
        return HttpResponse(200, list(self.headers), self.body)


class MetricsRoute:
    """``GET /_lolo/metrics``: the figures as Prometheus text."""

    methods: frozenset[str] = frozenset({"GET", "HEAD"})
    max_body_bytes: int = 0

    def __init__(self, access: Access, render: Callable[[], str], content_type: str) -> None:
        self.access = access
        self.render = render
        self.content_type = content_type

    async def serve_http(self, request: HttpRequest) -> HttpResponse:
        refusal = self.access.http_refusal(request)
        if refusal is not None:
            return refusal
        return HttpResponse(
            200, [("content-type", self.content_type), *NO_STORE], self.render().encode()
        )
