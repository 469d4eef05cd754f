"""``lolo-run ... --redis URL`` end to end: real lolo-run processes on a real redis-server.

The API keys (``lolo-run keys``) and an app's ``ctx.state`` live on Redis, shared by every
process that names the same server; an unreachable Redis is a quick, one-line failure that
never shows the password.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.e2e.test_http_trigger import fetch
from tests.redis_support import RedisServer
from tests.state.test_redis_store import PASSWORD, USER, password_url
from tests.support import ROOT, LoloProcess, free_port, lolo_run_command

FLOW = ROOT / "flows" / "hello-api.yaml"
JSON = {"Content-Type": "application/json"}
KEY = re.compile(r"lolo_([0-9a-f]{8})_[A-Za-z0-9_-]{43}")


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without a store chosen by the caller's own variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("LOLO_REDIS_URL", "LOLO_STATE", "LOLO_WORKER")
    }
    return {**env, **extra}


def lolo(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*lolo_run_command(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env or clean_env(),
    )


class OnRedis(LoloProcess):
    """``lolo-run FLOW --port 0 --redis URL``: like LoloProcess, without ``--state`` (which
    with --redis is a usage error), run in ``cwd`` so a stray SQLite file would show."""

    def __init__(self, flow: Path, url: str, cwd: Path, *args: str) -> None:
        super().__init__(flow, "--redis", url, *args, env=clean_env())
        self.cwd = cwd

    def start(self) -> OnRedis:
        command = [*lolo_run_command(), str(self.flow), "--port", "0", *self.args]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self._stderr, env=self.env, cwd=self.cwd
        )
        self.port = self._wait_for_listening()
        return self

    def __enter__(self) -> OnRedis:
        return self.start()


def everything_on(url: str) -> list[str]:
    """Every key name and value on the server, as text."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        texts: list[str] = []
        for name in client.scan_iter():
            texts.append(str(name))
            kind = str(client.type(name))
            if kind == "hash":
                texts += [f"{k!s}={v!s}" for k, v in client.hgetall(name).items()]
            elif kind == "list":
                texts += [str(item) for item in client.lrange(name, 0, -1)]
            elif kind == "string":
                texts.append(str(client.get(name)))
        return texts
    finally:
        client.close()


def create_key(url: str, email: str, cwd: Path) -> str:
    done = lolo("keys", "create", "--email", email, "--redis", url, cwd=cwd)
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    assert KEY.fullmatch(key), key
    return key


def test_keys_create_list_revoke_on_redis(redis_server: RedisServer, tmp_path: Path) -> None:
    url = password_url(redis_server)
    shown = f"redis://{USER}:***@127.0.0.1:{redis_server.port}/0"
    outputs: list[str] = []

    def keys(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        store = [] if env is not None else ["--redis", url]
        done = lolo("keys", *args, *store, cwd=tmp_path, env=env)
        outputs.append(done.stdout + done.stderr)
        return done

    created = keys("create", "--email", "a@b.co")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    match = KEY.fullmatch(key)
    assert match is not None, key
    prefix = f"lolo_{match.group(1)}"
    assert f"created {prefix} for a@b.co" in created.stderr
    assert f"in {shown}" in created.stderr

    listed = keys("list")
    assert listed.returncode == 0, listed.stderr
    assert [line.split("\t")[:2] for line in listed.stdout.splitlines()] == [[prefix, "a@b.co"]]
    # $LOLO_REDIS_URL names the same store as --redis.
    from_env = keys("list", env=clean_env(LOLO_REDIS_URL=url))
    assert (from_env.returncode, from_env.stdout) == (0, listed.stdout)
    # The key is on the server (hashed), not in a file.
    stored = everything_on(url)
    assert stored and all(key not in text for text in stored)
    assert not (tmp_path / ".lolo").exists()

    revoked = keys("revoke", prefix)
    assert revoked.returncode == 0, revoked.stderr
    assert f"revoked {prefix}" in revoked.stderr
    after = keys("list")
    assert (after.returncode, after.stdout) == (0, "")
    assert f"no keys in {shown}" in after.stderr
    again = keys("revoke", prefix)
    assert again.returncode == 1
    assert prefix in again.stderr
    assert f"in {shown}" in again.stderr
    assert all(PASSWORD not in output for output in outputs)


@pytest.mark.parametrize(
    "args",
    [
        ["keys", "create", "--email", "a@b.co"],
        ["keys", "list"],
        ["keys", "revoke", "lolo_00000000"],
        [str(FLOW), "--port", "0"],
    ],
)
def test_state_and_redis_together_are_a_usage_error(args: list[str], tmp_path: Path) -> None:
    done = lolo(
        *args,
        "--state",
        str(tmp_path / "s.sqlite3"),
        "--redis",
        f"redis://127.0.0.1:{free_port()}/0",
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "--state" in done.stderr and "--redis" in done.stderr
    assert done.stdout == ""
    assert not (tmp_path / "s.sqlite3").exists()


@pytest.mark.parametrize(
    "args",
    [
        [str(FLOW), "--port", "0"],
        ["keys", "create", "--email", "a@b.co"],
        ["keys", "list"],
        ["keys", "revoke", "lolo_00000000"],
    ],
)
def test_unreachable_redis_fails_quickly_without_showing_the_password(
    args: list[str], tmp_path: Path
) -> None:
    port = free_port()
    url = f"redis://:secretpw@127.0.0.1:{port}/0"
    for env, extra in ((clean_env(), ["--redis", url]), (clean_env(LOLO_REDIS_URL=url), [])):
        started = time.monotonic()
        done = lolo(*args, *extra, cwd=tmp_path, env=env, timeout=20)
        took = time.monotonic() - started
        assert done.returncode == 1, (done.stdout, done.stderr)
        assert took < 10, took
        assert f"redis://:***@127.0.0.1:{port}/0" in done.stderr
        assert "secretpw" not in done.stdout + done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / ".lolo").exists()


def test_notes_on_redis_are_shared_by_processes(redis_server: RedisServer, tmp_path: Path) -> None:
    url = redis_server.url
    key = create_key(url, "ann@example.com", tmp_path)
    auth = {**JSON, "Authorization": f"Bearer {key}"}
    with OnRedis(FLOW, url, tmp_path) as one, OnRedis(FLOW, url, tmp_path) as two:
        assert fetch(one.port, "GET", "/notes").json() == {"notes": []}
        first = fetch(one.port, "POST", "/notes", b'{"text": "buy milk"}', auth)
        assert first.status == 201, first.body
        assert first.json() == {"id": 1, "text": "buy milk", "by": "ann@example.com"}
        assert redis_server.command("EXISTS", "lolo:hello-api:note:1") == ":1"

        # The other process reads it, and counts on from the same counter.
        assert fetch(two.port, "GET", "/notes/1").json() == first.json()
        second = fetch(two.port, "POST", "/notes", b'{"text": "call bob"}', auth)
        assert (second.status, second.json()["id"]) == (201, 2)
        for server in (one, two):
            notes = fetch(server.port, "GET", "/notes").json()["notes"]
            assert [(n["id"], n["text"]) for n in notes] == [(1, "buy milk"), (2, "call bob")]
        # Many writes through both at once: every id handed out once.
        ids = [
            fetch(server.port, "POST", "/notes", b'{"text": "x"}', auth).json()["id"]
            for _ in range(10)
            for server in (one, two)
        ]
        assert sorted(ids) == list(range(3, 23))
        # A key revoked on Redis is refused by the running processes.
        prefix = "lolo_" + KEY.fullmatch(key).group(1)  # type: ignore[union-attr]
        assert lolo("keys", "revoke", prefix, "--redis", url, cwd=tmp_path).returncode == 0
        for server in (one, two):
            assert fetch(server.port, "POST", "/notes", b'{"text": "late"}', auth).status == 401
        assert one.stop() == 0
        assert two.stop() == 0

    # Nothing went to a SQLite file; a new process finds the notes on Redis.
    assert not (tmp_path / ".lolo").exists()
    with OnRedis(FLOW, url, tmp_path) as later:
        assert len(fetch(later.port, "GET", "/notes").json()["notes"]) == 22


def test_serving_through_a_redis_outage(redis_server: RedisServer, tmp_path: Path) -> None:
    """Redis goes away under a running app: requests that need the state fail at once
    (500), the others are still served, the log names Redis without its password; once
    Redis is back on the same port the same process uses it again."""
    url = password_url(redis_server)
    key = create_key(url, "ann@example.com", tmp_path)
    auth = {**JSON, "Authorization": f"Bearer {key}"}
    with OnRedis(FLOW, url, tmp_path, "--log-level", "debug") as app:
        assert fetch(app.port, "POST", "/notes", b'{"text": "one"}', auth).status == 201

        redis_server.stop()
        for method, path, body in (
            ("GET", "/notes", None),
            ("GET", "/notes/1", None),
            ("POST", "/notes", b'{"text": "two"}'),
        ):
            started = time.monotonic()
            reply = fetch(app.port, method, path, body, auth)
            assert reply.status == 500, (method, path, reply.status)
            assert time.monotonic() - started < 3
        assert fetch(app.port, "GET", "/hello/ada").json() == {"hello": "ada"}

        redis_server.start()  # empty (no persistence): the user and the key are made again
        password_url(redis_server)
        key = create_key(url, "ann@example.com", tmp_path)
        assert fetch(app.port, "GET", "/notes").json() == {"notes": []}
        again = fetch(
            app.port,
            "POST",
            "/notes",
            b'{"text": "two"}',
            {**JSON, "Authorization": f"Bearer {key}"},
        )
        assert (again.status, again.json()["id"]) == (201, 1)
        assert app.stop() == 0
        log = app.stderr()
    shown = f"redis://{USER}:***@127.0.0.1:{redis_server.port}/0"
    assert shown in log
    assert PASSWORD not in log


@pytest.mark.parametrize(
    "url", ["", "http://127.0.0.1:6379/0", "localhost:6379", "http://:secretpw@127.0.0.1/0"]
)
@pytest.mark.parametrize("args", [[str(FLOW), "--port", "0"], ["keys", "list"]])
def test_a_url_that_is_not_redis_is_a_usage_error(
    url: str, args: list[str], tmp_path: Path
) -> None:
    for env, extra in ((clean_env(), ["--redis", url]), (clean_env(LOLO_REDIS_URL=url), [])):
        if not url and not extra:
            continue  # an empty $LOLO_REDIS_URL means none: see the next test
        done = lolo(*args, *extra, cwd=tmp_path, env=env)
        assert done.returncode == 2, (url, done.stderr)
        assert "redis://" in done.stderr and "secretpw" not in done.stderr
        assert "Traceback" not in done.stderr


def test_an_explicit_state_file_wins_over_lolo_redis_url(tmp_path: Path) -> None:
    # $LOLO_REDIS_URL points nowhere; --state names a file: the file is used.
    env = clean_env(LOLO_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    state = tmp_path / "s.sqlite3"
    done = lolo("keys", "create", "--email", "a@b.co", "--state", str(state), cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert KEY.fullmatch(done.stdout.strip())
    assert state.exists()


def test_an_empty_lolo_redis_url_means_a_state_file(tmp_path: Path) -> None:
    done = lolo(
        "keys", "create", "--email", "a@b.co", cwd=tmp_path, env=clean_env(LOLO_REDIS_URL="")
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / ".lolo" / "state.sqlite3").exists()
