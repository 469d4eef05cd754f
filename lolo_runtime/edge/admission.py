"""Which route a request head goes to, or why it is refused before any route runs. Pure.

Called by the HTTP protocol once the head is parsed: it finds the route, checks the
method (405 with ``Allow``), the announced body size (413) and, for a WebSocket path,
that the request is a bodiless GET.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from lolo_runtime.edge.responses import plain
from lolo_runtime.edge.types import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from lolo_runtime.edge.listener import RouteEntry
    from lolo_runtime.edge.routes import RouteTable


@dataclass(frozen=True, slots=True)
class Admission:
    entry: RouteEntry | None
    refusal: HttpResponse | None
    max_body: int = 0


def has_body(request: HttpRequest) -> bool:
    length = request.header("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return request.header("transfer-encoding") is not None


def admit(
    routes: RouteTable[RouteEntry], raw_path: str, request: HttpRequest, body: bool
) -> Admission:
    """Route ``request`` (its ``params`` are set) or say how it is refused."""
    found = routes.find_encoded(raw_path)
    if found is None:
        return Admission(None, plain(404, "Nothing is served at this path.\n"))
    entry, request.params = found
    method = request.method
    route = entry.http
    if route is None:  # a WebSocket path
        if method != "GET":
            return Admission(
                entry, plain(405, "A WebSocket handshake is a GET.\n", ("allow", "GET"))
            )
        if body:
            return Admission(entry, plain(400, "A WebSocket handshake has no body.\n"))
        return Admission(entry, None)
    methods = route.methods
    if (
        methods is not None
        and method not in methods
        and not (method == "HEAD" and "GET" in methods)
    ):
        allow = ", ".join(sorted(methods | ({"HEAD"} if "GET" in methods else set())))
        return Admission(entry, plain(405, None, ("allow", allow)))
    limit = route.max_body_bytes
    length = request.header("content-length") if body else None
    if length is not None and length.isdigit() and int(length) > limit:
        return Admission(entry, plain(413, "Request body too large.\n"), limit)
    return Admission(entry, None, limit)
