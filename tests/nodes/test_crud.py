"""``lolo/crud-api`` in a flow run in-process (:func:`lolo_runtime.testing.run_flow`): a
real engine on a real SQLite file, real HTTP requests through the edge."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from lolo_runtime.apikeys import create_key
from lolo_runtime.errors import FlowErrors
from lolo_runtime.loader import load_flow
from lolo_runtime.testing import HttpAnswer, LoloApp, run_flow
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

EDGE_HEADERS = {"date", "server", "connection"}
"""What the edge adds to every answer, whatever the route said."""


def body_of(answer: HttpAnswer) -> Any:
    return answer.json() if answer.body else None


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
    tmp_path: Path, params: str, test: Callable[[LoloApp], Awaitable[T]], wired: bool = False
) -> T:
    """Run the flow of ``params`` (and, if ``wired``, the recorder behind it) in-process
    on a fresh state file; ``test`` talks to it over HTTP."""
    flow = write_flow(tmp_path, params, wired)

    async def main() -> T:
        async with run_flow(flow, state=tmp_path / "state.sqlite3") as app:
            return await test(app)

    return asyncio.run(main())


def seen_events(app: LoloApp) -> list[Event]:
    """What the recorder handler of ``app`` saw so far (its module's list, kept live)."""
    return app.flow.nodes["answer"].module.seen  # type: ignore[attr-defined, no-any-return]


PARAMS = "resource: notes\n" + textwrap.dedent(NOTES_SCHEMA)


# The actions and what they store


def test_records_are_created_listed_read_replaced_patched_and_deleted(tmp_path: Path) -> None:
    async def test(app: LoloApp) -> None:
        assert body_of(await app.http("GET", "/notes")) == {"items": []}
        made = await app.http("POST", "/notes", {"title": "milk", "id": 77})
        assert (made.status, body_of(made)) == (201, {"title": "milk", "id": 1})
        assert made.headers["location"] == "/notes/1"
        second = await app.http("POST", "/notes", {"title": "eggs"})
        assert body_of(second)["id"] == 2
        read = await app.http("GET", "/notes/1")
        assert (read.status, body_of(read)) == (200, {"title": "milk", "id": 1})
        patched = await app.http("PATCH", "/notes/1", {"done": True})
        assert body_of(patched) == {"title": "milk", "done": True, "id": 1}
        replaced = await app.http("PUT", "/notes/1", {"title": "oat milk"})
        assert body_of(replaced) == {"title": "oat milk", "id": 1}
        listed = await app.http("GET", "/notes")
        assert body_of(listed) == {"items": [{"title": "oat milk", "id": 1}, body_of(second)]}
        gone = await app.http("DELETE", "/notes/1")
        assert (gone.status, gone.body) == (204, b"")
        assert set(gone.headers) <= EDGE_HEADERS  # no header of the node's: no content-type
        assert (await app.http("GET", "/notes/1")).status == 404
        assert (await app.http("DELETE", "/notes/1")).status == 404
        # Ids are never reused, and the records sit in the app's state as notes/<id>.
        assert body_of(await app.http("POST", "/notes", {"title": "x"}))["id"] == 3
        state = app.state
        assert await state.keys("notes") == ["notes#last-id", "notes/2", "notes/3"]
        assert await state.get("notes/3") == {"title": "x", "id": 3}

    run_app(tmp_path, PARAMS, test)


def test_the_list_is_in_id_order_and_skips_keys_that_are_not_records(tmp_path: Path) -> None:
    async def test(app: LoloApp) -> None:
        for number in range(12):
            await app.http("POST", "/notes", {"title": f"n{number}"})
        state = app.state
        await state.set("notes/draft", {"title": "a handler's own key"})
        await state.set("notes/13", "not a record")
        ids = [item["id"] for item in body_of(await app.http("GET", "/notes"))["items"]]
        assert ids == list(range(1, 13))  # 10 after 9, not after 1

    run_app(tmp_path, PARAMS, test)


@pytest.mark.parametrize("wanted", ["0", "01", "-1", "1.0", "abc", "٣", "9" * 19])
def test_an_id_that_is_not_a_plain_number_is_unknown(tmp_path: Path, wanted: str) -> None:
    async def test(app: LoloApp) -> HttpAnswer:
        await app.http("POST", "/notes", {"title": "one"})
        return await app.http("GET", f"/notes/{wanted}")

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
    async def test(app: LoloApp) -> tuple[HttpAnswer, Any]:
        await app.http("POST", "/notes", {"title": "kept"})
        seen_events(app).clear()
        refused = await app.http(method, path, body)
        assert seen_events(app) == []
        return refused, await app.state.get("notes/1")

    refused, stored = run_app(tmp_path, PARAMS, test, wired=True)
    answer = body_of(refused)
    assert refused.status == 400
    assert answer == {"error": "the body does not match the notes schema", "errors": errors}
    assert stored == {"title": "kept", "id": 1}


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
    async def test(app: LoloApp) -> list[HttpAnswer]:
        await app.http("POST", "/notes", {"title": "kept"})
        headers = {"content-type": kind} if kind else {}
        sent = raw or None
        return [
            await app.http("POST", "/notes", sent, headers),
            await app.http("PATCH", "/notes/1", sent, headers),
        ]

    for refused in run_app(tmp_path, "resource: notes", test):
        assert refused.status == status
        assert body_of(refused)["error"].startswith(error)


def test_a_read_may_carry_any_body(tmp_path: Path) -> None:
    async def test(app: LoloApp) -> int:
        return (await app.http("GET", "/notes", b"hi", {"content-type": "text/plain"})).status

    assert run_app(tmp_path, "resource: notes", test) == 200


def test_without_a_schema_any_object_is_a_record(tmp_path: Path) -> None:
    async def test(app: LoloApp) -> Any:
        made = await app.http("POST", "/notes", {"anything": [1, {"deep": None}]})
        return body_of(made)

    assert run_app(tmp_path, "resource: notes", test) == {"anything": [1, {"deep": None}], "id": 1}


def test_formats_the_library_knows_are_checked(tmp_path: Path) -> None:
    params = """
        resource: people
        schema: {type: object, properties: {mail: {type: string, format: email}}}
    """

    async def test(app: LoloApp) -> tuple[int, int]:
        good = await app.http("POST", "/people", {"mail": "ann@example.com"})
        bad = await app.http("POST", "/people", {"mail": "not an address"})
        return good.status, bad.status

    assert run_app(tmp_path, params, test) == (201, 400)


def test_a_huge_value_is_not_echoed_whole_in_the_errors(tmp_path: Path) -> None:
    params = "resource: notes\nschema: {type: object, properties: {t: {maxLength: 3}}}"

    async def test(app: LoloApp) -> HttpAnswer:
        return await app.http("POST", "/notes", {"t": "x" * 100_000})

    refused = run_app(tmp_path, params, test)
    assert refused.status == 400 and len(refused.body) < 1000


# The event, the chain, and the answer


def test_the_event_carries_the_action_and_the_suggested_response(tmp_path: Path) -> None:
    async def test(app: LoloApp) -> tuple[list[HttpAnswer], list[Event]]:
        answers = [
            await app.http("POST", "/notes", {"title": "milk"}),
            await app.http("GET", "/notes?x=1"),
            await app.http("GET", "/notes/1"),
            await app.http("PATCH", "/notes/1", {"done": False}),
            await app.http("DELETE", "/notes/1"),
        ]
        return answers, seen_events(app)

    answers, seen = run_app(tmp_path, PARAMS, test, wired=True)
    assert [a.status for a in answers] == [201, 200, 200, 200, 204]
    created, listed, read, patched, deleted = seen
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
    async def test(app: LoloApp) -> list[int]:
        broken = await app.http("POST", "/notes", {"title": "raise"})
        silent = await app.http("POST", "/notes", {"title": "silent"})
        return [broken.status, silent.status]

    assert run_app(tmp_path, PARAMS + "timeout: 0.2\n", test, wired=True) == [500, 504]


# Actions, auth, roles


METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def test_only_the_actions_asked_for_are_served(tmp_path: Path) -> None:
    """The edge answers the methods the node does not serve with 405 and ``Allow`` (the
    node's methods, HEAD with GET); the others reach the node."""

    async def test(app: LoloApp) -> dict[str, dict[str, tuple[int, str | None]]]:
        return {
            path: {
                method: (answer.status, answer.headers.get("allow"))
                for method in METHODS
                for answer in [await app.http(method, path, {"title": "t"})]
            }
            for path in ("/tags", "/tags/1")
        }

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    params = "resource: tags\nactions: [list, delete]"
    refused = (405, "DELETE")
    assert run_app(tmp_path / "a", params, test) == {
        "/tags": {"GET": (200, None)} | {m: (405, "GET, HEAD") for m in METHODS[1:]},
        "/tags/1": {m: refused for m in METHODS[:-1]} | {"DELETE": (404, None)},
    }
    none_on_items = "resource: tags\nactions: [create]"
    assert run_app(tmp_path / "b", none_on_items, test) == {
        "/tags": {m: (201, None) if m == "POST" else (405, "POST") for m in METHODS},
        "/tags/1": {m: (405, "") for m in METHODS},
    }


def test_with_auth_a_key_is_needed_and_a_read_key_may_only_read(tmp_path: Path) -> None:
    async def test(app: LoloApp) -> dict[str, Any]:
        write_key, _ = await create_key(app.runtime.engine.backend, "w@example.com", role="write")
        read_key, _ = await create_key(app.runtime.engine.backend, "r@example.com", role="read")
        bearer = {"authorization": f"Bearer {write_key}"}
        return {
            "none": await app.http("GET", "/notes"),
            "bogus": await app.http("GET", "/notes", headers={"lolo-api-key": "lolo_x"}),
            "written": await app.http("POST", "/notes", {"title": "a"}, bearer),
            "read": await app.http("GET", "/notes/1", headers={"lolo-api-key": read_key}),
            "refused": [
                await app.http(method, path, body, {"lolo-api-key": read_key})
                for method, path, body in [
                    ("POST", "/notes", {"title": "b"}),
                    ("PUT", "/notes/1", {"title": "b"}),
                    ("PATCH", "/notes/1", {"title": "b"}),
                    ("DELETE", "/notes/1", None),
                ]
            ],
            "kept": await app.state.get("notes/1"),
            "seen": seen_events(app),
        }

    got = run_app(tmp_path, PARAMS + "auth: true\n", test, wired=True)
    assert (got["none"].status, body_of(got["none"])) == (401, {"error": "missing lolo-api-key"})
    assert got["none"].headers["www-authenticate"] == "Bearer"
    assert body_of(got["bogus"]) == {"error": "invalid lolo-api-key"}
    assert (got["written"].status, got["read"].status) == (201, 200)
    assert [r.status for r in got["refused"]] == [403, 403, 403, 403]
    assert body_of(got["refused"][0]) == {"error": "a read key may not create notes"}
    assert got["kept"] == {"title": "a", "id": 1}
    written, read = got["seen"]
    assert written["session"]["email"] == "w@example.com"
    assert read["session"]["role"] == "read"


def test_auth_comes_before_the_body(tmp_path: Path) -> None:
    async def test(app: LoloApp) -> list[int]:
        wrong = await app.http("POST", "/notes", {"wrong": 1})
        broken = await app.http("POST", "/notes", b"{nope")
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
