"""flows/hello-api.yaml end to end: the example JSON API, as its header comment promises."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.e2e.test_http_trigger import fetch
from tests.support import ROOT, LoloProcess, lolo_keys, lolo_run_command

FLOW = ROOT / "flows" / "hello-api.yaml"
JSON = {"Content-Type": "application/json"}


def test_the_flow_checks() -> None:
    done = subprocess.run(
        [*lolo_run_command(), "check", str(FLOW)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, f"{FLOW}: ok", "")


def test_hello_answers_with_the_name_from_the_path(tmp_path: Path) -> None:
    with LoloProcess(FLOW, state=tmp_path / "state.sqlite3") as server:
        ada = fetch(server.port, "GET", "/hello/ada")
        assert (ada.status, ada.json()) == (200, {"hello": "ada"})
        assert fetch(server.port, "GET", "/hello/J%C3%BCrgen").json() == {"hello": "Jürgen"}
        assert fetch(server.port, "GET", "/hello/").status == 404
        refused = fetch(server.port, "POST", "/hello/ada", b"{}", JSON)
        assert (refused.status, refused.headers["allow"]) == (405, "GET, HEAD")


def test_notes_need_a_key_to_write_and_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite3"
    key = lolo_keys(state, "create", "--email", "ann@example.com")
    with LoloProcess(FLOW, state=state) as server:
        port = server.port
        assert fetch(port, "GET", "/notes").json() == {"notes": []}

        anonymous = fetch(port, "POST", "/notes", b'{"text": "buy milk"}', JSON)
        forged = fetch(
            port,
            "POST",
            "/notes",
            b'{"text": "buy milk"}',
            {**JSON, "Authorization": "Bearer lolo_00000000_" + "A" * 43},
        )
        assert (anonymous.status, forged.status) == (401, 401)
        assert anonymous.headers["www-authenticate"] == "Bearer"

        first = fetch(
            port,
            "POST",
            "/notes",
            b'{"text": "buy milk"}',
            {**JSON, "Authorization": f"Bearer {key}"},
        )
        assert first.status == 201
        assert first.headers["location"] == "/notes/1"
        assert first.json() == {"id": 1, "text": "buy milk", "by": "ann@example.com"}

        # A form works too, and the key may come as a header or in the query.
        second = fetch(
            port,
            "POST",
            "/notes",
            b"text=call+bob",
            {"Content-Type": "application/x-www-form-urlencoded", "lolo-api-key": key},
        )
        assert (second.status, second.headers["location"]) == (201, "/notes/2")
        third = fetch(port, "POST", f"/notes?lolo-api-key={key}", b'{"text": "3"}', JSON)
        assert third.headers["location"] == "/notes/3"

        for wrong in (b'{"txt": "typo"}', b'{"text": ""}', b'["buy milk"]'):
            refused = fetch(port, "POST", "/notes", wrong, {**JSON, "lolo-api-key": key})
            assert refused.status == 400, wrong
            assert "text" in refused.json()["error"]
        assert (
            fetch(port, "POST", "/notes", b'{"text": ', {**JSON, "lolo-api-key": key}).status == 400
        )
        assert fetch(port, "PUT", "/notes", b"{}", JSON).status == 405

        assert fetch(port, "GET", "/notes/1").json() == first.json()
        for missing in ("/notes/4", "/notes/0", "/notes/abc", "/notes/%C2%B2"):
            absent = fetch(port, "GET", missing)
            assert absent.status == 404, missing
            assert "error" in absent.json()
        assert server.stop() == 0

    with LoloProcess(FLOW, state=state) as restarted:
        port = restarted.port
        listing = fetch(port, "GET", "/notes").json()["notes"]
        assert [(n["id"], n["text"]) for n in listing] == [
            (1, "buy milk"),
            (2, "call bob"),
            (3, "3"),
        ]
        assert fetch(port, "GET", "/notes/2").json()["by"] == "ann@example.com"
        fourth = fetch(
            port,
            "POST",
            "/notes",
            json.dumps({"text": "after"}).encode(),
            {**JSON, "lolo-api-key": key},
        )
        assert (fourth.status, fourth.json()["id"]) == (201, 4)
        assert restarted.stop() == 0
        assert "Traceback" not in restarted.stderr()
