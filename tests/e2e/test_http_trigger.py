"""``lolo/http-trigger`` end to end: a real lolo-run, real HTTP clients (http.client)."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT, LoloProcess, lolo_keys, lolo_run_command

FLOW = ROOT / "tests" / "e2e" / "flows" / "http-trigger.yaml"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    """Lower-case names."""
    body: bytes

    def json(self) -> Any:
        assert self.headers.get("content-type") == "application/json", self.headers
        return json.loads(self.body)


def fetch(
    conn: http.client.HTTPConnection | int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One request, on ``conn`` (kept open for the next) or on a new connection to a port."""
    own = isinstance(conn, int)
    client = (
        http.client.HTTPConnection("127.0.0.1", conn, timeout=10) if isinstance(conn, int) else conn
    )
    try:
        client.request(method, path, body=body, headers=headers or {})
        response = client.getresponse()
        data = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        if own:
            client.close()


def log_lines(server: LoloProcess, *needles: str) -> list[str]:
    """The log lines (tracebacks excluded) holding every one of ``needles``."""
    return [
        line
        for line in server.stderr().splitlines()
        if re.match(r"\d{4}-", line) and all(n in line for n in needles)
    ]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoloProcess]:
    """One server for the tests that only look at answers."""
    state = tmp_path_factory.mktemp("http") / "state.sqlite3"
    with LoloProcess(FLOW, state=state) as process:
        yield process


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LoloProcess]:
    """A server of the test's own, for tests that read its log."""
    with LoloProcess(FLOW, state=tmp_path / "state.sqlite3") as process:
        yield process


# the event


def test_the_event_carries_the_request(shared: LoloProcess) -> None:
    reply = fetch(
        shared.port, "GET", "/users/42/items/x%20y?a=1&a=2&b=&c=%C3%A9", headers={"X-Custom": "yes"}
    )
    assert reply.status == 200
    ev = reply.json()
    assert ev["method"] == "GET"
    assert ev["path"] == "/users/42/items/x y"
    assert ev["routePath"] == "/users/:id/items/:item"
    assert ev["params"] == {"id": "42", "item": "x y"}
    assert ev["query"] == {"a": ["1", "2"], "b": "", "c": "é"}
    assert ev["headers"]["x-custom"] == "yes"
    assert ev["headers"]["host"] == f"127.0.0.1:{shared.port}"
    assert (ev["body"], ev["bodyType"], ev["rawBody"], ev["rawBodyType"]) == (
        None,
        "NoneType",
        "",
        "bytes",
    )
    assert re.fullmatch(r"127\.0\.0\.1:\d+", ev["peer"])
    assert ev["scheme"] == "http"
    assert ev["session"] is None
    assert ev["sessionId"]


def test_a_final_star_captures_the_rest_of_the_path(shared: LoloProcess) -> None:
    deep = fetch(shared.port, "GET", "/files/a/b/c.txt").json()
    assert (deep["routePath"], deep["params"]) == ("/files/*", {"*": "a/b/c.txt"})
    assert fetch(shared.port, "GET", "/files/").json()["params"] == {"*": ""}
    # As in Express, an encoded slash stays inside its param.
    encoded = fetch(shared.port, "GET", "/users/a%2Fb/items/%E2%82%AC").json()
    assert encoded["params"] == {"id": "a/b", "item": "€"}
    assert fetch(shared.port, "GET", "/users/42").status == 404


def test_every_request_has_a_session_id_of_its_own(shared: LoloProcess) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", shared.port, timeout=10)
    try:
        same_connection = [fetch(conn, "GET", "/echo").json()["sessionId"] for _ in range(3)]
    finally:
        conn.close()
    other = fetch(shared.port, "GET", "/echo").json()["sessionId"]
    ids = [*same_connection, other]
    assert len(set(ids)) == 4, ids


@pytest.mark.parametrize(
    ("body", "content_type", "parsed", "kind"),
    [
        (b'{"x": [1, 2], "y": "\\u00e9"}', "application/json", {"x": [1, 2], "y": "é"}, "dict"),
        (b"[1, 2]", "application/json; charset=utf-8", [1, 2], "list"),
        (
            b"a=1&b=2&b=3&c=",
            "application/x-www-form-urlencoded",
            {"a": "1", "b": ["2", "3"], "c": ""},
            "dict",
        ),
        ("héllo".encode(), "text/plain; charset=utf-8", "héllo", "str"),
        (b"\x00\x01\xfe", "application/octet-stream", None, "bytes"),
        (b"\x00\x01\xfe", None, None, "bytes"),
    ],
)
def test_the_body_is_parsed_by_content_type_and_raw_body_is_kept(
    shared: LoloProcess, body: bytes, content_type: str | None, parsed: Any, kind: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    ev = fetch(shared.port, "POST", "/echo", body, headers).json()
    assert (ev["body"], ev["bodyType"]) == (parsed, kind)
    assert ev["rawBody"].encode("latin-1") == body
    assert ev["rawBodyType"] == "bytes"


def test_a_body_over_max_body_bytes_is_413(shared: LoloProcess) -> None:
    assert fetch(shared.port, "POST", "/echo", b"x" * 4096).status == 200
    assert fetch(shared.port, "POST", "/echo", b"x" * 4097).status == 413


def test_json_that_does_not_parse_is_400_before_any_handler_runs(server: LoloProcess) -> None:
    bad = fetch(server.port, "POST", "/echo", b'{"x": ', {"Content-Type": "application/json"})
    assert bad.status == 400
    assert b"not valid JSON" in bad.body
    good = fetch(server.port, "POST", "/echo", b'{"x": 1}', {"Content-Type": "application/json"})
    assert good.status == 200
    assert server.stop() == 0
    assert len(log_lines(server, "describing POST /echo")) == 1  # the good one only


# replies


@pytest.mark.parametrize(
    ("kind", "status", "content_type", "body"),
    [
        ("dict", 200, "application/json", '{"a":1,"é":[true,null]}'.encode()),
        ("list", 200, "application/json", b'[1,"two"]'),
        ("str", 200, "text/plain; charset=utf-8", "plain text é".encode()),
        ("bytes", 200, "application/octet-stream", b"\x00\x01\xfe\xff"),
        ("custom", 202, "text/csv", b"a,b\n"),
        ("empty", 204, None, b""),
        ("late", 200, "text/plain; charset=utf-8", b"late but in time"),
    ],
)
def test_a_reply_is_sent_as_its_body_type_says(
    shared: LoloProcess, kind: str, status: int, content_type: str | None, body: bytes
) -> None:
    reply = fetch(shared.port, "GET", f"/reply?kind={kind}")
    assert (reply.status, reply.headers.get("content-type"), reply.body) == (
        status,
        content_type,
        body,
    )
    if kind == "custom":
        assert reply.headers["x-probe"] == "yes"


def test_a_header_value_that_is_not_a_string_is_500_and_logged_with_the_node_id(
    server: LoloProcess,
) -> None:
    reply = fetch(server.port, "GET", "/reply?kind=bad-header")
    assert reply.status == 500
    assert b"never sent" not in reply.body
    assert server.stop() == 0
    errors = log_lines(server, "ERROR", "[http-probe/replier session=")
    assert len(errors) == 1, server.stderr()
    assert (
        "emit('response', ...): the value of header 'x-count' must be a str, not int (3)"
        in errors[0]
    )


def test_no_response_within_the_timeout_is_504_and_a_warning_names_the_trigger(
    server: LoloProcess,
) -> None:
    started = time.monotonic()
    reply = fetch(server.port, "GET", "/silent")
    waited = time.monotonic() - started
    assert reply.status == 504
    assert 0.4 <= waited < 5, waited
    # The connection stays usable afterwards.
    assert fetch(server.port, "GET", "/reply?kind=str").status == 200
    assert server.stop() == 0
    warnings = log_lines(server, "WARNING", "silent-trigger")
    assert len(warnings) == 1, server.stderr()
    assert "no response within 0.5s to GET /silent; answered 504" in warnings[0]


def test_a_raising_handler_is_500_without_its_detail(server: LoloProcess) -> None:
    reply = fetch(server.port, "GET", "/reply?kind=raise")
    assert reply.status == 500
    assert b"secret-internal-detail" not in reply.body
    assert b"RuntimeError" not in reply.body
    assert server.stop() == 0
    # The operator, not the client, gets the detail.
    errors = log_lines(server, "ERROR", "[http-probe/replier")
    assert len(errors) == 1
    assert "RuntimeError: secret-internal-detail-4711" in errors[0]


def test_a_reject_raised_by_a_handler_answers_its_status(shared: LoloProcess) -> None:
    reply = fetch(shared.port, "GET", "/reply?kind=reject")
    assert (reply.status, reply.body) == (418, b"I'm a teapot, says the probe\n")


def test_methods_outside_the_list_are_405_with_allow(shared: LoloProcess) -> None:
    assert fetch(shared.port, "GET", "/methods").json()["method"] == "GET"
    assert fetch(shared.port, "POST", "/methods", b"x").json()["method"] == "POST"
    for method in ("PUT", "DELETE", "PATCH"):
        refused = fetch(shared.port, method, "/methods")
        assert refused.status == 405, method
        assert refused.headers["allow"] == "GET, HEAD, POST"
    # A trigger without a list serves every method.
    assert fetch(shared.port, "DELETE", "/echo").json()["method"] == "DELETE"


# lolo/api-auth in front of an HTTP trigger


def test_api_auth_takes_the_key_from_header_bearer_or_query(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    ann = lolo_keys(state, "create", "--email", "ann@example.com", "--account", "acct-ann")
    bob = lolo_keys(state, "create", "--email", "bob@example.com")
    revoked = lolo_keys(state, "create", "--email", "eve@example.com")
    lolo_keys(state, "revoke", revoked.split("_")[1])
    wrong = ann[:-4] + ("AAAA" if not ann.endswith("AAAA") else "BBBB")
    with LoloProcess(FLOW, "--log-level", "debug", state=state) as server:
        port = server.port
        granted = [
            fetch(port, "GET", "/private", headers={"lolo-api-key": ann}),
            fetch(port, "GET", "/private", headers={"Authorization": f"Bearer {ann}"}),
            fetch(port, "GET", f"/private?lolo-api-key={bob}"),
        ]
        refused = [
            fetch(port, "GET", "/private"),
            fetch(port, "GET", "/private?lolo-api-key="),
            fetch(port, "GET", "/private", headers={"lolo-api-key": wrong}),
            fetch(port, "GET", "/private", headers={"Authorization": f"Bearer {revoked}"}),
            fetch(port, "GET", f"/private?lolo-api-key={wrong}"),
            fetch(port, "GET", "/private", headers={"Authorization": f"Basic {ann}"}),
        ]
        assert server.stop() == 0
        log = server.stderr()
    assert [r.status for r in granted] == [200, 200, 200]
    sessions = [r.json()["session"] for r in granted]
    ann_session = {"accountId": "acct-ann", "email": "ann@example.com", "role": "write"}
    assert sessions[0] == sessions[1] == ann_session
    assert sessions[2]["email"] == "bob@example.com"
    assert sessions[2]["accountId"]
    assert [r.status for r in refused] == [401] * 6
    assert all(r.headers.get("www-authenticate") == "Bearer" for r in refused)
    assert b"missing lolo-api-key" in refused[0].body
    assert b"invalid lolo-api-key" in refused[2].body
    # DEBUG was on and the handler logged whole requests: no key may reach the log.
    assert "request:" in log
    assert "[REDACTED]" in log
    for key in (ann, bob, revoked, wrong):
        assert key.split("_", 2)[2] not in log


def test_a_path_that_is_not_a_valid_pattern_is_a_load_error(tmp_path: Path) -> None:
    flow = tmp_path / "bad.yaml"
    flow.write_text(
        "app: bad\nnodes:\n"
        "  - {id: a, type: lolo/http-trigger, params: {path: /a/*/b}}\n"
        "  - id: b\n    type: lolo/http-trigger\n    params: {path: '/b/:1'}\n"
    )
    for command in (
        ["check", str(flow)],
        [str(flow), "--port", "0", "--state", str(tmp_path / "s.sqlite3")],
    ):
        done = subprocess.run(
            [*lolo_run_command(), *command], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 2
        assert done.stderr.splitlines() == [
            f"{flow}:3: node 'a': params.path: path '/a/*/b': '*' may only be the last "
            "segment (got '/a/*/b')",
            f"{flow}:6: node 'b': params.path: path '/b/:1': ':1' is not a valid parameter "
            "name (letters, digits and _ after ':') (got '/b/:1')",
        ]
