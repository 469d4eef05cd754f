"""API-key roles end to end: ``lolo-run keys create --role``, ``keys list``, and
``lolo/api-auth`` (with and without ``authorize: true``) in a real lolo-run."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.test_http_trigger import fetch
from tests.support import ROOT, LoloProcess, lolo_keys, lolo_run_command

FLOW = ROOT / "tests" / "e2e" / "flows" / "roles.yaml"
WRITES = ["POST", "PUT", "PATCH", "DELETE"]


@dataclass
class Keys:
    read: str
    write: str
    default: str


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("roles") / "state.sqlite3"


@pytest.fixture(scope="module")
def keys(state: Path) -> Keys:
    return Keys(
        read=lolo_keys(state, "create", "--email", "reader@example.com", "--role", "read"),
        write=lolo_keys(state, "create", "--email", "writer@example.com", "--role", "write"),
        default=lolo_keys(state, "create", "--email", "plain@example.com"),
    )


@pytest.fixture(scope="module")
def server(state: Path, keys: Keys) -> Iterator[LoloProcess]:
    with LoloProcess(FLOW, state=state) as process:
        yield process


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", "content-type": "application/json"}


def test_keys_list_shows_each_role(state: Path, keys: Keys) -> None:
    listed = lolo_keys(state, "list").splitlines()
    roles = {line.split("\t")[1]: line.split("\t")[4] for line in listed}
    assert roles == {
        "reader@example.com": "read",
        "writer@example.com": "write",
        "plain@example.com": "write",  # the default
    }


def test_an_unknown_role_is_a_usage_error(state: Path) -> None:
    create = ["keys", "create", "--email", "x@example.com", "--role", "admin"]
    done = subprocess.run(
        [*lolo_run_command(), *create, "--state", str(state)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "invalid choice: 'admin'" in done.stderr
    assert "x@example.com" not in lolo_keys(state, "list")


def test_the_session_carries_the_role(server: LoloProcess, keys: Keys) -> None:
    for key, email, role in [
        (keys.read, "reader@example.com", "read"),
        (keys.write, "writer@example.com", "write"),
        (keys.default, "plain@example.com", "write"),
    ]:
        reply = fetch(server.port, "GET", "/enforced", headers=bearer(key))
        assert reply.status == 200
        session = reply.json()["session"]
        assert set(session) == {"accountId", "email", "role"}
        assert (session["email"], session["role"]) == (email, role)
        assert session["accountId"].startswith("acct_")


@pytest.mark.parametrize("method", WRITES)
def test_authorize_refuses_a_read_key_every_write(
    server: LoloProcess, keys: Keys, method: str
) -> None:
    reply = fetch(server.port, method, "/enforced", body=b"{}", headers=bearer(keys.read))
    assert reply.status == 403
    assert reply.body == f"a read key may not {method}\n".encode()
    for key in (keys.write, keys.default):
        reply = fetch(server.port, method, "/enforced", body=b"{}", headers=bearer(key))
        assert reply.status == 200
        assert reply.json()["method"] == method


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_a_read_key_may_read(server: LoloProcess, keys: Keys, method: str) -> None:
    assert fetch(server.port, method, "/enforced", headers=bearer(keys.read)).status == 200


def test_without_authorize_a_read_key_may_write_and_the_chain_sees_its_role(
    server: LoloProcess, keys: Keys
) -> None:
    for method in WRITES:
        reply = fetch(server.port, method, "/open", body=b"{}", headers=bearer(keys.read))
        assert reply.status == 200
        assert reply.json()["session"]["role"] == "read"


def test_no_key_is_still_401_before_any_role_is_looked_at(server: LoloProcess) -> None:
    reply = fetch(server.port, "POST", "/enforced", body=b"{}")
    assert reply.status == 401
    assert reply.headers["www-authenticate"] == "Bearer"
