"""flows/notes-api.yaml end to end (issue 11, item 7): lolo/crud-api with key roles, a
timer that expires old notes, a barrier that gathers two lookups; a real ``lolo-run``,
real HTTP clients, real keys."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_http_trigger import Reply, fetch
from tests.support import ROOT, LoloProcess, lolo_keys, lolo_run_command

FLOW = ROOT / "flows" / "notes-api.yaml"
MAX_AGE = 3
"""Seconds a note lives in these tests; the sweep runs every second."""


class Keys:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.write = lolo_keys(state, "create", "--email", "writer@example.com")
        self.read = lolo_keys(state, "create", "--email", "reader@example.com", "--role", "read")


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path / "state.sqlite3")


@pytest.fixture
def server(keys: Keys) -> Iterator[LoloProcess]:
    env = {"NOTES_SWEEP_EVERY": "1s", "NOTES_MAX_AGE_SECONDS": str(MAX_AGE)}
    with LoloProcess(FLOW, state=keys.state, env=env) as process:
        yield process


def create(server: LoloProcess, key: str, note: dict[str, Any]) -> Reply:
    body = json.dumps(note).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    return fetch(server.port, "POST", "/notes", body, headers)


def test_the_flow_checks_and_documents_its_api() -> None:
    check = subprocess.run(
        [*lolo_run_command(), "check", str(FLOW)], capture_output=True, text=True, timeout=30
    )
    assert (check.returncode, check.stderr) == (0, "")
    printed = subprocess.run(
        [*lolo_run_command(), "openapi", str(FLOW)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    paths = json.loads(printed.stdout)["paths"]
    assert sorted(paths) == ["/notes", "/notes/{id}", "/overview"]
    assert "security" in paths["/notes"]["post"] and "security" in paths["/overview"]["get"]


def test_write_keys_write_read_keys_read_and_nobody_else_gets_in(
    server: LoloProcess, keys: Keys
) -> None:
    made = create(server, keys.write, {"title": "buy milk", "tags": ["home"]})
    assert (made.status, made.json()) == (201, {"title": "buy milk", "tags": ["home"], "id": 1})
    reader = {"lolo-api-key": keys.read}
    assert fetch(server.port, "GET", "/notes/1", headers=reader).json()["title"] == "buy milk"
    refused = create(server, keys.read, {"title": "sneaky"})
    assert (refused.status, refused.json()) == (403, {"error": "a read key may not create notes"})
    deleting = fetch(server.port, "DELETE", "/notes/1", headers=reader)
    assert deleting.status == 403
    assert fetch(server.port, "GET", "/notes").status == 401
    assert fetch(server.port, "GET", "/overview").status == 401
    bad = create(server, keys.write, {"title": "x", "tags": ["Not A Tag"]})
    assert bad.status == 400
    assert bad.json()["errors"][0]["path"] == "/tags/0"


def test_the_overview_gathers_both_lookups(server: LoloProcess, keys: Keys) -> None:
    for title in ("one", "two", "three", "four"):
        assert create(server, keys.write, {"title": title}).status == 201
    reply = fetch(server.port, "GET", "/overview", headers={"lolo-api-key": keys.read})
    assert reply.status == 200
    overview = reply.json()
    assert [note["title"] for note in overview["recent"]] == ["four", "three", "two"]
    stats = overview["stats"]
    assert (stats["count"], stats["ageLimitSeconds"]) == (4, MAX_AGE)
    assert stats["oldestCreatedAt"].endswith("+00:00")


def test_the_timer_expires_old_notes_and_only_those(server: LoloProcess, keys: Keys) -> None:
    reader = {"lolo-api-key": keys.read}
    assert create(server, keys.write, {"title": "old"}).status == 201
    deadline = time.monotonic() + MAX_AGE + 8
    while fetch(server.port, "GET", "/notes/1", headers=reader).status == 200:
        assert time.monotonic() < deadline, "the note was never expired"
        time.sleep(0.2)
    assert create(server, keys.write, {"title": "new"}).status == 201
    listed = fetch(server.port, "GET", "/notes", headers=reader).json()
    assert [note["title"] for note in listed["items"]] == ["new"]
    overview = fetch(server.port, "GET", "/overview", headers=reader).json()
    assert overview["stats"]["count"] == 1
    assert "expired 1 note(s) older than 3s: ['1']" in server.stderr()


def test_a_deleted_note_is_forgotten_by_the_sweep_too(server: LoloProcess, keys: Keys) -> None:
    writer = {"Authorization": f"Bearer {keys.write}"}
    assert create(server, keys.write, {"title": "short-lived"}).status == 201
    assert fetch(server.port, "DELETE", "/notes/1", headers=writer).status == 204
    time.sleep(MAX_AGE + 1.5)  # past the age limit, and a sweep or two
    assert "expired" not in server.stderr()  # nothing was left behind for it to expire
