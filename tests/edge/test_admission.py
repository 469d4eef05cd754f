"""``edge/admission.py``: route or refuse a request head before any route runs. No sockets."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from lolo_runtime.edge.admission import admit, has_body
from lolo_runtime.edge.listener import RouteEntry
from lolo_runtime.edge.routes import RouteTable
from lolo_runtime.edge.types import HttpRequest, HttpResponse, WebSocketRoute


@dataclass
class Route:
    methods: frozenset[str] | None
    max_body_bytes: int = 10

    async def serve_http(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(200)


def table() -> RouteTable[RouteEntry]:
    routes: RouteTable[RouteEntry] = RouteTable()
    routes.add("/get", RouteEntry("/get", http=Route(frozenset({"GET"}))))
    routes.add("/post", RouteEntry("/post", http=Route(frozenset({"POST"}))))
    routes.add("/any/:id", RouteEntry("/any/:id", http=Route(None)))
    websocket: WebSocketRoute = object()  # type: ignore[assignment]  # never called here
    routes.add("/socket", RouteEntry("/socket", websocket=websocket))
    return routes


def request(method: str, *headers: tuple[str, str]) -> HttpRequest:
    return HttpRequest(method, "/", "", list(headers))


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "allow"),
    [
        ("GET", "/nowhere", (), 404, None),
        ("POST", "/get", (), 405, "GET, HEAD"),
        ("DELETE", "/post", (), 405, "POST"),
        ("POST", "/post", (("content-length", "11"),), 413, None),
        ("POST", "/socket", (("content-length", "2"),), 405, "GET"),
        ("HEAD", "/socket", (), 405, "GET"),
        ("GET", "/socket", (("content-length", "2"),), 400, None),
    ],
)
def test_refusals(
    method: str, path: str, headers: tuple[tuple[str, str], ...], status: int, allow: str | None
) -> None:
    head = request(method, *headers)
    admission = admit(table(), path, head, has_body(head))
    assert admission.refusal is not None
    assert admission.refusal.status == status
    assert dict(admission.refusal.headers).get("allow") == allow


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/get", ()),
        ("HEAD", "/get", ()),  # GET serves HEAD
        ("POST", "/post", (("content-length", "10"),)),  # exactly the limit
        ("PATCH", "/any/7", (("transfer-encoding", "chunked"),)),  # checked as it arrives
        ("GET", "/socket", ()),
    ],
)
def test_admitted(method: str, path: str, headers: tuple[tuple[str, str], ...]) -> None:
    head = request(method, *headers)
    admission = admit(table(), path, head, has_body(head))
    assert admission.refusal is None
    assert admission.entry is not None


def test_route_params_are_set_on_the_request() -> None:
    head = request("GET")
    admit(table(), "/any/a%2Fb", head, False)
    assert head.params == {"id": "a/b"}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ((), False),
        ((("content-length", "0"),), False),
        ((("content-length", "5"),), True),
        ((("transfer-encoding", "chunked"),), True),
    ],
)
def test_has_body(headers: tuple[tuple[str, str], ...], expected: bool) -> None:
    assert has_body(request("POST", *headers)) is expected
