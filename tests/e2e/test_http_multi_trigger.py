"""``lolo/http-multi-trigger`` end to end: a real lolo-run, real HTTP requests, real keys."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_http_trigger import Reply, fetch, log_lines
from tests.support import ROOT, LoloProcess, lolo_keys, refused_start

FLOW = ROOT / "tests" / "e2e" / "flows" / "multi-trigger.yaml"
JSON = {"content-type": "application/json"}


@dataclass
class Keys:
    ann: str
    cat: str
    """Made for CAT@example.COM: the allow-list says Cat@Example.com."""
    bob: str
    """Valid, but not on the allow-list."""
    reader: str
    """Ann's too, but read-only."""


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("multi") / "state.sqlite3"


@pytest.fixture(scope="module")
def keys(state: Path) -> Keys:
    return Keys(
        ann=lolo_keys(state, "create", "--email", "ann@example.com"),
        cat=lolo_keys(state, "create", "--email", "CAT@example.COM"),
        bob=lolo_keys(state, "create", "--email", "bob@example.com"),
        reader=lolo_keys(state, "create", "--email", "ann@example.com", "--role", "read"),
    )


@pytest.fixture(scope="module")
def server(state: Path, keys: Keys) -> Iterator[LoloProcess]:
    with LoloProcess(FLOW, state=state) as process:
        yield process


def send(server: LoloProcess, method: str, path: str, body: Any = None, **headers: str) -> Reply:
    data = json.dumps(body).encode() if body is not None else None
    return fetch(server.port, method, path, body=data, headers={**JSON, **headers})


def chains_run(server: LoloProcess, method: str, path: str) -> int:
    return len(log_lines(server, f"chain ran: {method} {path}"))


# -- methods and ports ----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
def test_each_method_goes_out_of_its_own_port(server: LoloProcess, method: str) -> None:
    reply = send(server, method, "/items/42", {"name": "pen"})
    assert reply.status == 200
    answer = reply.json()
    assert (answer["port"], answer["method"]) == (method.lower(), method)
    assert answer["params"] == {"id": "42"}
    assert answer["routePath"] == "/items/:id"
    assert answer["session"] is None  # no auth on this path


def test_head_is_served_by_the_get_port_without_a_body(server: LoloProcess) -> None:
    reply = fetch(server.port, "HEAD", "/items/1")
    assert reply.status == 200
    assert reply.body == b""
    assert int(reply.headers["content-length"]) > 0


@pytest.mark.parametrize("method", ["PATCH", "OPTIONS"])
def test_a_method_without_a_port_is_405_with_allow(server: LoloProcess, method: str) -> None:
    reply = send(server, method, "/items/1", {"name": "pen"})
    assert reply.status == 405
    assert reply.headers["allow"] == "DELETE, GET, HEAD, POST, PUT"
    assert chains_run(server, method, "/items/1") == 0


# -- the body schema ------------------------------------------------------------------------


def test_a_body_that_matches_the_schema_reaches_the_chain(server: LoloProcess) -> None:
    body = {"name": "pen", "age": 3, "tags": ["a", "b"]}
    reply = send(server, "PUT", "/items/7", body)
    assert reply.status == 200
    assert reply.json()["body"] == body


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, [{"path": "", "message": "'name' is a required property"}]),
        (
            {"name": "", "age": -1},
            [
                {"path": "/age", "message": "-1 is less than the minimum of 0"},
                {"path": "/name", "message": "'' should be non-empty"},
            ],
        ),
        (
            {"name": "x", "tags": ["ok", 5]},
            [{"path": "/tags/1", "message": "5 is not of type 'string'"}],
        ),
        (
            {"name": "x", "colour": "red"},
            [
                {
                    "path": "",
                    "message": "Additional properties are not allowed ('colour' was unexpected)",
                }
            ],
        ),
        ([1, 2], [{"path": "", "message": "[1, 2] is not of type 'object'"}]),
    ],
)
def test_a_body_that_breaks_the_schema_is_400_with_every_complaint_before_any_chain(
    server: LoloProcess, body: Any, errors: list[dict[str, str]]
) -> None:
    for method in ("POST", "PUT"):
        path = f"/items/bad-{method}-{len(json.dumps(body))}"
        reply = send(server, method, path, body)
        assert reply.status == 400
        assert reply.json() == {"error": "the body does not match the schema", "errors": errors}
        assert chains_run(server, method, path) == 0


def test_a_json_body_is_required_where_the_schema_applies(server: LoloProcess) -> None:
    reply = fetch(server.port, "POST", "/items/1", headers=JSON)
    assert (reply.status, reply.json()) == (400, {"error": "a JSON body is required"})
    reply = fetch(
        server.port, "POST", "/items/1", body=b"name=pen", headers={"content-type": "text/plain"}
    )
    assert reply.status == 415
    reply = fetch(server.port, "POST", "/items/1", body=b"{not json", headers=JSON)
    assert reply.status == 400
    assert reply.json()["error"].startswith("the body is not valid JSON")


def test_get_and_delete_bodies_are_not_checked(server: LoloProcess) -> None:
    for method in ("GET", "DELETE"):
        reply = send(server, method, "/items/1", {"colour": 1})
        assert reply.status == 200
        assert reply.json()["body"] == {"colour": 1}


# -- auth -----------------------------------------------------------------------------------


def test_without_a_valid_key_it_is_401_before_the_body_is_looked_at(server: LoloProcess) -> None:
    for headers in ({}, {"lolo-api-key": "lolo_12345678_" + "x" * 43}):
        reply = fetch(server.port, "POST", "/team", body=b"{not json", headers=headers)
        assert reply.status == 401
        assert reply.headers["www-authenticate"] == "Bearer"
        assert reply.json()["error"] in ("missing lolo-api-key", "invalid lolo-api-key")
    assert chains_run(server, "POST", "/team") == 0


def test_a_listed_email_is_let_in_with_its_session(server: LoloProcess, keys: Keys) -> None:
    for key, email in ((keys.ann, "ann@example.com"), (keys.cat, "CAT@example.COM")):
        for method in ("GET", "POST"):
            reply = send(server, method, "/team", {"x": 1}, authorization=f"Bearer {key}")
            assert reply.status == 200, reply.body
            session = reply.json()["session"]
            assert (session["email"], session["role"]) == (email, "write")
            assert session["accountId"].startswith("acct_")


def test_a_valid_key_of_another_email_is_403(server: LoloProcess, keys: Keys) -> None:
    reply = send(server, "GET", "/team", **{"lolo-api-key": keys.bob})
    assert reply.status == 403
    assert reply.json() == {"error": "this key's email is not allowed here"}
    # Without an allow-list any valid key will do.
    reply = send(server, "GET", "/anyone", **{"lolo-api-key": keys.bob})
    assert reply.status == 200
    assert reply.json()["session"]["email"] == "bob@example.com"


def test_authorize_refuses_a_read_key_that_writes(server: LoloProcess, keys: Keys) -> None:
    reply = send(server, "POST", "/team", {}, authorization=f"Bearer {keys.reader}")
    assert reply.status == 403
    assert reply.json() == {"error": "a read key may not POST"}
    reply = send(server, "GET", "/team", authorization=f"Bearer {keys.reader}")
    assert reply.status == 200
    assert reply.json()["session"]["role"] == "read"


# -- the app refuses to start ----------------------------------------------------------------


def test_a_declared_port_wired_to_nothing_stops_the_app(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        FLOW.read_text()
        .replace("  - items.put -> on-put.in\n", "")
        .replace("../handlers/", str(ROOT / "tests" / "e2e" / "handlers") + "/")
    )
    stderr = refused_start(flow, tmp_path / "state.sqlite3")
    assert "node 'items': setup failed" in stderr
    assert "out-port(s) 'put' lead nowhere" in stderr
