"""``lolo/crud-api`` without sockets: a loaded flow, a real engine on a real SQLite file,
requests handed to the node's routes as the edge would hand them."""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from lolo_runtime.apikeys import create_key
from lolo_runtime.context import SetupContext
from lolo_runtime.edge.types import HttpRequest, HttpResponse, HttpRoute, WebSocketRoute
from lolo_runtime.engine import Engine
from lolo_runtime.errors import FlowErrors
from lolo_runtime.loader import Flow, load_flow
from lolo_runtime.nodes.crud import CrudApiNode
from lolo_runtime.state import SQLiteBackend
from lolo_runtime.types import Event

T = TypeVar("T")

NOTES_SCHEMA = """
        schema:
          type: object
          required: [title]
          additionalProperties: false
          properties:
            title: {type: string, minLength: 1}
            done: {type: boolean}
"""

RECORDER = """
seen = []

async def handler(ev, ctx):
    seen.append(ev)
    if ev["body"] == {"title": "raise"}:
        raise RuntimeError("the chain broke")
    if ev["body"] == {"title": "silent"}:
        return
    ctx.emit("response", ev["response"])
"""


class Host:
    """What a trigger registers with: the engine, and the routes it asks for."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.routes: dict[str, HttpRoute] = {}

    def add_http_route(self, path: str, route: HttpRoute) -> None:
        assert path not in self.routes
        self.routes[path] = route

    def add_websocket_route(self, path: str, route: WebSocketRoute) -> None:
        raise AssertionError("lolo/crud-api serves no WebSocket")


class App:
    """One flow's CRUD node, started on a real engine and state store."""

    def __init__(self, flow: Flow, backend: SQLiteBackend) -> None:
        self.flow = flow
        self.backend = backend
        self.engine = Engine(
            flow.app, flow.nodes, flow.table, state=backend.for_app(flow.app), backend=backend
        )
        self.host = Host(self.engine)

    async def start(self) -> None:
        await self.backend.open()
        for node in self.flow.nodes.values():
            await node.setup(SetupContext(self.engine, node))
            if isinstance(node, CrudApiNode):
                await node.start(self.host)

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> HttpResponse:
        sent = raw if raw is not None else b"" if body is None else json.dumps(body).encode()
        head = [(k.lower(), v) for k, v in (headers or {}).items()]
        if body is not None and "content-type" not in dict(head):
            head.append(("content-type", "application/json"))
        path, _, query = path.partition("?")
        parts = path.strip("/").split("/")
        pattern = f"/{parts[0]}" if len(parts) == 1 else f"/{parts[0]}/:id"
        params = {"id": parts[1]} if len(parts) == 2 else {}
        route = self.host.routes[pattern]
        assert route.methods is not None
        if method not in route.methods and not (method == "HEAD" and "GET" in route.methods):
            return HttpResponse(405)  # what the edge answers before the route runs
        request = HttpRequest(method, path, query, head, sent, "127.0.0.1:1", params=params)
        return await route.serve_http(request)


def body_of(response: HttpResponse) -> Any:
    return json.loads(response.body) if response.body else None


def write_flow(tmp_path: Path, params: str, wired: bool = False, app: str = "crud") -> Path:
    (tmp_path / "recorder.py").write_text(RECORDER)
    chain = (
        """
  - id: answer
    type: lolo/function
    handler: recorder.py
    outputs: []
edges:
  - notes.out -> answer.in
"""
        if wired
        else ""
    )
    path = tmp_path / "flow.yaml"
    path.write_text(
        f"app: {app}\nnodes:\n  - id: notes\n    type: lolo/crud-api\n    params:\n"
        + textwrap.indent(textwrap.dedent(params).strip(), " " * 6)
        + "\n"
        + chain
    )
    return path


def run_app(
    tmp_path: Path, params: str, test: Callable[[App], Awaitable[T]], wired: bool = False
) -> T:
    flow = load_flow(write_flow(tmp_path, params, wired))

    async def main() -> T:
        app = App(flow, SQLiteBackend(tmp_path / "state.sqlite3"))
        await app.start()
        try:
            return await test(app)
        finally:
            await app.engine.drain(1)
            await app.backend.close()

    return asyncio.run(main())


def seen_events(flow_dir: Path) -> list[Event]:
    """What the recorder handler of the flow in ``flow_dir`` saw (its module's list)."""
    import sys

    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) == str((flow_dir / "recorder.py").resolve()):
            return module.seen  # type: ignore[no-any-return]
    raise AssertionError("the recorder was not loaded")


PARAMS = "resource: notes\n" + textwrap.dedent(NOTES_SCHEMA)


# The actions and what they store


def test_records_are_created_listed_read_replaced_patched_and_deleted(tmp_path: Path) -> None:
    async def test(app: App) -> None:
        assert body_of(await app.request("GET", "/notes")) == {"items": []}
        made = await app.request("POST", "/notes", {"title": "milk", "id": 77})
        assert (made.status, body_of(made)) == (201, {"title": "milk", "id": 1})
        assert ("location", "/notes/1") in made.headers
        second = await app.request("POST", "/notes", {"title": "eggs"})
        assert body_of(second)["id"] == 2
        read = await app.request("GET", "/notes/1")
        assert (read.status, body_of(read)) == (200, {"title": "milk", "id": 1})
        patched = await app.request("PATCH", "/notes/1", {"done": True})
        assert body_of(patched) == {"title": "milk", "done": True, "id": 1}
        replaced = await app.request("PUT", "/notes/1", {"title": "oat milk"})
        assert body_of(replaced) == {"title": "oat milk", "id": 1}
        listed = await app.request("GET", "/notes")
        assert body_of(listed) == {"items": [{"title": "oat milk", "id": 1}, body_of(second)]}
        gone = await app.request("DELETE", "/notes/1")
        assert (gone.status, gone.body, gone.headers) == (204, b"", [])
        assert (await app.request("GET", "/notes/1")).status == 404
        assert (await app.request("DELETE", "/notes/1")).status == 404
        # Ids are never reused, and the records sit in the app's state as notes/<id>.
        assert body_of(await app.request("POST", "/notes", {"title": "x"}))["id"] == 3
        state = app.backend.for_app("crud")
        assert await state.keys("notes") == ["notes#last-id", "notes/2", "notes/3"]
        assert await state.get("notes/3") == {"title": "x", "id": 3}

    run_app(tmp_path, PARAMS, test)


def test_the_list_is_in_id_order_and_skips_keys_that_are_not_records(tmp_path: Path) -> None:
    async def test(app: App) -> None:
        for number in range(12):
            await app.request("POST", "/notes", {"title": f"n{number}"})
        state = app.backend.for_app("crud")
        await state.set("notes/draft", {"title": "a handler's own key"})
        await state.set("notes/13", "not a record")
        ids = [item["id"] for item in body_of(await app.request("GET", "/notes"))["items"]]
        assert ids == list(range(1, 13))  # 10 after 9, not after 1

    run_app(tmp_path, PARAMS, test)


@pytest.mark.parametrize("wanted", ["0", "01", "-1", "1.0", "abc", "٣", "9" * 19])
def test_an_id_that_is_not_a_plain_number_is_unknown(tmp_path: Path, wanted: str) -> None:
    async def test(app: App) -> HttpResponse:
        await app.request("POST", "/notes", {"title": "one"})
        return await app.request("GET", f"/notes/{wanted}")

    answer = run_app(tmp_path, PARAMS, test)
    assert (answer.status, body_of(answer)) == (404, {"error": f"no notes with id {wanted!r}"})


# Bodies: checked against the schema before anything is stored or any chain runs


@pytest.mark.parametrize(
    ("method", "path", "body", "errors"),
    [
        ("POST", "/notes", {}, [{"path": "", "message": "'title' is a required property"}]),
        (
            "POST",
            "/notes",
            {"title": "", "done": "yes"},
            [
                {"path": "/done", "message": "'yes' is not of type 'boolean'"},
                {"path": "/title", "message": "'' should be non-empty"},
            ],
        ),
        (
            "PUT",
            "/notes/1",
            {"done": True},
            [{"path": "", "message": "'title' is a required property"}],
        ),
        (
            "PATCH",
            "/notes/1",
            {"extra": 1},
            [
                {
                    "path": "",
                    "message": "Additional properties are not allowed ('extra' was unexpected)",
                }
            ],
        ),
    ],
)
def test_a_body_that_breaks_the_schema_gets_400_with_the_errors_and_no_chain(
    tmp_path: Path, method: str, path: str, body: Any, errors: list[dict[str, str]]
) -> None:
    async def test(app: App) -> tuple[HttpResponse, Any]:
        await app.request("POST", "/notes", {"title": "kept"})
        seen_events(tmp_path).clear()
        refused = await app.request(method, path, body)
        return refused, await app.backend.for_app("crud").get("notes/1")

    refused, stored = run_app(tmp_path, PARAMS, test, wired=True)
    answer = body_of(refused)
    assert refused.status == 400
    assert answer == {"error": "the body does not match the notes schema", "errors": errors}
    assert stored == {"title": "kept", "id": 1}
    assert seen_events(tmp_path) == []


@pytest.mark.parametrize(
    ("raw", "kind", "status", "error"),
    [
        (b"", None, 400, "the body must be a JSON object, not no body"),
        (b"[1]", "application/json", 400, "the body must be a JSON object, not list"),
        (b'"x"', "application/vnd.api+json", 400, "the body must be a JSON object, not str"),
        (b"{nope", "application/json", 400, "the body is not valid JSON"),
        (b"title=x", "application/x-www-form-urlencoded", 415, "the body must be JSON"),
        (b"{}", "text/plain", 415, "the body must be JSON (Content-Type: application/json)"),
        (b"{}", None, 415, "the body must be JSON"),
    ],
)
def test_a_body_that_is_no_json_object_is_refused(
    tmp_path: Path, raw: bytes, kind: str | None, status: int, error: str
) -> None:
    async def test(app: App) -> list[HttpResponse]:
        await app.request("POST", "/notes", {"title": "kept"})
        headers = {"content-type": kind} if kind else {}
        sent = raw or None
        return [
            await app.request("POST", "/notes", headers=headers, raw=sent),
            await app.request("PATCH", "/notes/1", headers=headers, raw=sent),
        ]

    for refused in run_app(tmp_path, "resource: notes", test):
        assert refused.status == status
        assert body_of(refused)["error"].startswith(error)


def test_a_read_may_carry_any_body(tmp_path: Path) -> None:
    async def test(app: App) -> int:
        return (
            await app.request("GET", "/notes", headers={"content-type": "text/plain"}, raw=b"hi")
        ).status

    assert run_app(tmp_path, "resource: notes", test) == 200


def test_without_a_schema_any_object_is_a_record(tmp_path: Path) -> None:
    async def test(app: App) -> Any:
        made = await app.request("POST", "/notes", {"anything": [1, {"deep": None}]})
        return body_of(made)

    assert run_app(tmp_path, "resource: notes", test) == {"anything": [1, {"deep": None}], "id": 1}


def test_formats_the_library_knows_are_checked(tmp_path: Path) -> None:
    params = """
        resource: people
        schema: {type: object, properties: {mail: {type: string, format: email}}}
    """

    async def test(app: App) -> tuple[int, int]:
        good = await app.request("POST", "/people", {"mail": "ann@example.com"})
        bad = await app.request("POST", "/people", {"mail": "not an address"})
        return good.status, bad.status

    assert run_app(tmp_path, params, test) == (201, 400)


def test_a_huge_value_is_not_echoed_whole_in_the_errors(tmp_path: Path) -> None:
    params = "resource: notes\nschema: {type: object, properties: {t: {maxLength: 3}}}"

    async def test(app: App) -> HttpResponse:
        return await app.request("POST", "/notes", {"t": "x" * 100_000})

    refused = run_app(tmp_path, params, test)
    assert refused.status == 400 and len(refused.body) < 1000


# The event, the chain, and the answer


def test_the_event_carries_the_action_and_the_suggested_response(tmp_path: Path) -> None:
    async def test(app: App) -> list[HttpResponse]:
        return [
            await app.request("POST", "/notes", {"title": "milk"}),
            await app.request("GET", "/notes?x=1"),
            await app.request("GET", "/notes/1"),
            await app.request("PATCH", "/notes/1", {"done": False}),
            await app.request("DELETE", "/notes/1"),
        ]

    answers = run_app(tmp_path, PARAMS, test, wired=True)
    assert [a.status for a in answers] == [201, 200, 200, 200, 204]
    created, listed, read, patched, deleted = seen_events(tmp_path)
    record = {"title": "milk", "id": 1}
    assert created["crud"] == {"action": "create", "resource": "notes"}
    assert (created["resource"], created["resourceKey"]) == (record, "notes/1")
    assert created["response"] == {
        "status": 201,
        "headers": {"location": "/notes/1"},
        "body": record,
    }
    assert (created["method"], created["routePath"], created["body"]) == (
        "POST",
        "/notes",
        {"title": "milk"},
    )
    assert listed["query"] == {"x": "1"}
    assert isinstance(created["sessionId"], str) and "session" not in created
    assert listed["crud"]["action"] == "list" and listed["items"] == [record]
    assert "resource" not in listed
    assert read["crud"]["action"] == "read" and read["params"] == {"id": "1"}
    assert (read["routePath"], read["resourceKey"]) == ("/notes/:id", "notes/1")
    assert patched["resource"] == {"title": "milk", "done": False, "id": 1}
    assert deleted["crud"]["action"] == "delete" and deleted["resource"] == patched["resource"]
    assert deleted["response"] == {"status": 204}


def test_a_chain_that_raises_is_500_and_one_that_never_answers_504(tmp_path: Path) -> None:
    async def test(app: App) -> list[int]:
        broken = await app.request("POST", "/notes", {"title": "raise"})
        silent = await app.request("POST", "/notes", {"title": "silent"})
        return [broken.status, silent.status]

    assert run_app(tmp_path, PARAMS + "timeout: 0.2\n", test, wired=True) == [500, 504]


# Actions, auth, roles


def test_only_the_actions_asked_for_are_served(tmp_path: Path) -> None:
    async def test(app: App) -> list[Any]:
        routes = app.host.routes
        return [routes["/tags"].methods, routes["/tags/:id"].methods]

    params = "resource: tags\nactions: [list, delete]"
    assert run_app(tmp_path, params, test) == [frozenset({"GET"}), frozenset({"DELETE"})]
    none_on_items = "resource: tags\nactions: [create]"
    assert run_app(tmp_path, none_on_items, test) == [frozenset({"POST"}), frozenset()]


def test_with_auth_a_key_is_needed_and_a_read_key_may_only_read(tmp_path: Path) -> None:
    async def test(app: App) -> dict[str, Any]:
        write_key, _ = await create_key(app.backend, "w@example.com", role="write")
        read_key, _ = await create_key(app.backend, "r@example.com", role="read")
        bearer = {"authorization": f"Bearer {write_key}"}
        return {
            "none": await app.request("GET", "/notes"),
            "bogus": await app.request("GET", "/notes", headers={"lolo-api-key": "lolo_x"}),
            "written": await app.request("POST", "/notes", {"title": "a"}, bearer),
            "read": await app.request("GET", "/notes/1", headers={"lolo-api-key": read_key}),
            "refused": [
                await app.request(method, path, body, {"lolo-api-key": read_key})
                for method, path, body in [
                    ("POST", "/notes", {"title": "b"}),
                    ("PUT", "/notes/1", {"title": "b"}),
                    ("PATCH", "/notes/1", {"title": "b"}),
                    ("DELETE", "/notes/1", None),
                ]
            ],
            "kept": await app.backend.for_app("crud").get("notes/1"),
        }

    got = run_app(tmp_path, PARAMS + "auth: true\n", test, wired=True)
    assert (got["none"].status, body_of(got["none"])) == (401, {"error": "missing lolo-api-key"})
    assert ("www-authenticate", "Bearer") in got["none"].headers
    assert body_of(got["bogus"]) == {"error": "invalid lolo-api-key"}
    assert (got["written"].status, got["read"].status) == (201, 200)
    assert [r.status for r in got["refused"]] == [403, 403, 403, 403]
    assert body_of(got["refused"][0]) == {"error": "a read key may not create notes"}
    assert got["kept"] == {"title": "a", "id": 1}
    written, read = seen_events(tmp_path)
    assert written["session"]["email"] == "w@example.com"
    assert read["session"]["role"] == "read"


def test_auth_comes_before_the_body(tmp_path: Path) -> None:
    async def test(app: App) -> list[int]:
        wrong = await app.request("POST", "/notes", {"wrong": 1})
        broken = await app.request("POST", "/notes", raw=b"{nope")
        return [wrong.status, broken.status]

    assert run_app(tmp_path, PARAMS + "auth: true\n", test) == [401, 401]


# Load-time checks: path:line messages


@pytest.mark.parametrize(
    ("params", "line", "message"),
    [
        ("resource: a/b", 6, "params.resource: String should match pattern"),
        ("resource: notes\nactions: [list, list]", 7, "params.actions: list given more than"),
        ("resource: notes\nactions: []", 7, "params.actions: List should have at least 1 item"),
        (
            "resource: notes\nschema:\n  type: object\n  properties:\n    t: {type: text}",
            10,
            "params.schema: not a valid JSON Schema: 'text' is not valid",
        ),
        ("resource: notes\nschema: {type: array}", 7, "params.schema must describe an object"),
        (
            "resource: notes\nschema: {$ref: 'https://example.com/s.json'}",
            7,
            "params.schema: cannot resolve $ref 'https://example.com/s.json'",
        ),
    ],
)
def test_mistakes_are_reported_at_their_line(
    tmp_path: Path, params: str, line: int, message: str
) -> None:
    path = write_flow(tmp_path, params)
    with pytest.raises(FlowErrors) as caught:
        load_flow(path)
    (error,) = caught.value.errors
    assert str(error).startswith(f"{path}:{line}: node 'notes': {message}"), str(error)


@pytest.mark.parametrize("crud_first", [True, False])
def test_a_trigger_on_one_of_its_two_paths_is_refused(tmp_path: Path, crud_first: bool) -> None:
    crud = "  - id: notes\n    type: lolo/crud-api\n    params: {resource: notes}\n"
    http = "  - id: one\n    type: lolo/http-trigger\n    params: {path: '/notes/:key'}\n"
    path = tmp_path / "flow.yaml"
    path.write_text("app: clash\nnodes:\n" + (crud + http if crud_first else http + crud))
    with pytest.raises(FlowErrors) as caught:
        load_flow(path)
    (error,) = caught.value.errors
    if crud_first:
        assert str(error) == (
            f"{path}:8: node 'one': path '/notes/:key' matches the same requests as "
            "'/notes/:id', served by node 'notes'"
        )
    else:
        assert str(error) == (
            f"{path}:8: node 'notes': path '/notes/:id' matches the same requests as "
            "'/notes/:key', served by node 'one'"
        )
