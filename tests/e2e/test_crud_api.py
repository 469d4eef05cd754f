"""``lolo/crud-api`` and the served OpenAPI document end to end: flows/crud-api.yaml in a
real ``lolo-run``, real HTTP clients; two processes sharing a real redis-server."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.test_http_trigger import fetch
from tests.redis_support import RedisServer
from tests.support import ROOT, LoloProcess, lolo_keys, lolo_run_command

FLOW = ROOT / "flows" / "crud-api.yaml"
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    state = tmp_path_factory.mktemp("crud") / "state.sqlite3"
    write = lolo_keys(state, "create", "--email", "w@example.com")
    read = lolo_keys(state, "create", "--email", "r@example.com", "--role", "read")
    return state, write, read


@pytest.fixture(scope="module")
def server(keys: tuple[Path, str, str]) -> Iterator[LoloProcess]:
    with LoloProcess(FLOW, state=keys[0]) as process:
        yield process


def test_the_flow_checks() -> None:
    done = subprocess.run(
        [*lolo_run_command(), "check", str(FLOW)], capture_output=True, text=True, timeout=30
    )
    assert (done.returncode, done.stderr) == (0, "")


def test_notes_need_a_key_and_go_through_their_whole_life(
    server: LoloProcess, keys: tuple[Path, str, str]
) -> None:
    port, write = server.port, {"Authorization": f"Bearer {keys[1]}"}
    anonymous = fetch(port, "GET", "/notes")
    assert (anonymous.status, anonymous.json()) == (401, {"error": "missing lolo-api-key"})
    assert anonymous.headers["www-authenticate"] == "Bearer"

    made = fetch(port, "POST", "/notes", b'{"title": "milk", "done": false}', {**JSON, **write})
    assert made.status == 201
    note = made.json()
    assert note == {"title": "milk", "done": False, "id": note["id"]}
    url = made.headers["location"]
    assert url == f"/notes/{note['id']}"
    assert fetch(port, "GET", url, headers={"lolo-api-key": keys[1]}).json() == note
    assert note in fetch(port, "GET", f"/notes?lolo-api-key={keys[1]}").json()["items"]

    patched = fetch(port, "PATCH", url, b'{"done": true}', {**JSON, **write})
    assert patched.json() == {**note, "done": True}
    replaced = fetch(port, "PUT", url, b'{"title": "oat milk"}', {**JSON, **write})
    assert replaced.json() == {"title": "oat milk", "id": note["id"]}
    gone = fetch(port, "DELETE", url, headers=write)
    assert (gone.status, gone.body) == (204, b"")
    assert fetch(port, "GET", url, headers=write).status == 404


def test_a_read_key_reads_but_may_not_write(
    server: LoloProcess, keys: tuple[Path, str, str]
) -> None:
    port, read = server.port, {"lolo-api-key": keys[2]}
    assert fetch(port, "GET", "/notes", headers=read).status == 200
    refused = fetch(port, "POST", "/notes", b'{"title": "x"}', {**JSON, **read})
    assert (refused.status, refused.json()) == (403, {"error": "a read key may not create notes"})


def test_bad_bodies_get_400_with_the_schema_errors(
    server: LoloProcess, keys: tuple[Path, str, str]
) -> None:
    headers = {**JSON, "lolo-api-key": keys[1]}
    refused = fetch(server.port, "POST", "/notes", b'{"title": 3, "colour": "red"}', headers)
    assert refused.status == 400
    assert refused.json() == {
        "error": "the body does not match the notes schema",
        "errors": [
            {
                "path": "",
                "message": "Additional properties are not allowed ('colour' was unexpected)",
            },
            {"path": "/title", "message": "3 is not of type 'string'"},
        ],
    }
    broken = fetch(server.port, "POST", "/notes", b'{"title": ', headers)
    assert broken.status == 400 and broken.json()["error"].startswith("the body is not valid JSON")
    big = fetch(server.port, "POST", "/notes", b'{"title": "' + b"x" * 20000 + b'"}', headers)
    assert big.status == 413  # max_body_bytes: 16384, before the key is even looked at


def test_tags_answer_through_their_chain_and_refuse_other_methods(server: LoloProcess) -> None:
    port = server.port
    made = fetch(port, "POST", "/tags", b'{"name": "home"}', JSON)
    assert (made.status, made.headers["x-crud-action"]) == (201, "create")
    listed = fetch(port, "GET", "/tags")
    assert listed.headers["x-crud-action"] == "list"
    assert made.json() in listed.json()["items"]
    head = fetch(port, "HEAD", "/tags")
    assert (head.status, head.body) == (200, b"")
    for method, path in [("PUT", made.headers["location"]), ("PATCH", "/tags/1")]:
        refused = fetch(port, method, path, b"{}", JSON)
        assert (refused.status, refused.headers["allow"]) == (405, "DELETE, GET, HEAD")
    assert fetch(port, "DELETE", "/tags").headers["allow"] == "GET, HEAD, POST"


def test_the_app_serves_its_openapi_document(server: LoloProcess) -> None:
    served = fetch(server.port, "GET", "/_lolo/openapi.json")
    assert served.status == 200
    printed = subprocess.run(
        [*lolo_run_command(), "openapi", str(FLOW)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert served.json() == json.loads(printed.stdout)
    assert fetch(server.port, "POST", "/_lolo/openapi.json").status == 405


def test_records_are_shared_by_every_process_on_redis(redis_server: RedisServer) -> None:
    args = ("--redis", redis_server.url)
    with LoloProcess(FLOW, *args) as one, LoloProcess(FLOW, *args) as two:

        def create(number: int) -> int:
            port = (one, two)[number % 2].port
            made = fetch(port, "POST", "/tags", f'{{"name": "t{number}"}}'.encode(), JSON)
            assert made.status == 201
            record_id: int = made.json()["id"]
            return record_id

        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(create, range(40)))
        assert sorted(ids) == list(range(1, 41))  # one counter for both: no id twice
        for server in (one, two):
            items = fetch(server.port, "GET", "/tags").json()["items"]
            assert [item["id"] for item in items] == list(range(1, 41))
        fetch(one.port, "DELETE", "/tags/7")
        assert fetch(two.port, "GET", "/tags/7").status == 404
