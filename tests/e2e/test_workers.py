"""``lolo-run FLOW --workers N``: real worker processes behind one supervisor, on one port."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lolo_runtime.supervisor import worker_argv
from tests.redis_support import RedisServer
from tests.support import ROOT, LoloProcess, free_port, lolo_run_command

FLOW = ROOT / "tests" / "e2e" / "flows" / "workers.yaml"


class Supervised(LoloProcess):
    """``lolo-run FLOW --port 0 ARGS``: like LoloProcess, without ``--state`` (the workers'
    state is on Redis, and --state with --redis is a usage error)."""

    def start(self) -> Supervised:
        command = [*lolo_run_command(), str(self.flow), "--port", "0", *self.args]
        # In a process group of its own, like a command a shell runs (see test_ctrl_c).
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=self.env,
            cwd=ROOT,
            process_group=0,
        )
        self.port = self._wait_for_listening()
        return self

    def __enter__(self) -> Supervised:
        return self.start()

    def get(self, path: str, timeout: float = 5.0) -> dict[str, object]:
        """GET ``path`` on a new connection (so the kernel picks a worker for it)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            response = conn.getresponse()
            assert response.status == 200, response.status
            answer: dict[str, object] = json.loads(response.read())
            return answer
        finally:
            conn.close()

    def workers(self) -> set[int]:
        assert self.proc is not None
        return children(self.proc.pid)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LOLO_REDIS_URL", "LOLO_WORKER")}
    return {**env, **extra}


def children(parent: int) -> set[int]:
    """The live (not zombie) child processes of ``parent``, from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == parent and state != "Z":
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def pids_answering(server: Supervised, wanted: set[int], tries: int = 200) -> set[int]:
    seen: set[int] = set()
    for _ in range(tries):
        pid = server.get("/probe/pid")["pid"]
        assert isinstance(pid, int)
        seen.add(pid)
        if wanted <= seen:
            break
    return seen


def port_is_free(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        pass
    with socket.socket() as sock:  # and another server (not sharing ports) can have it
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
    return True


def test_worker_command_line_drops_workers_and_pins_the_port() -> None:
    assert worker_argv(["run", "f.yaml", "--workers", "4", "--port", "0"], 4100) == [
        "run",
        "f.yaml",
        "--port",
        "0",
        "--workers",
        "1",
        "--port",
        "4100",
    ]
    assert worker_argv(["f.yaml", "--workers=4", "--redis", "redis://x", "--", "g"], 9) == [
        "f.yaml",
        "--redis",
        "redis://x",
        "--workers",
        "1",
        "--port",
        "9",
        "--",
        "g",
    ]


def test_two_workers_serve_one_port(redis_server: RedisServer) -> None:
    with Supervised(FLOW, "--workers", "2", "--redis", redis_server.url, env=clean_env()) as server:
        workers = server.workers()
        assert len(workers) == 2
        assert pids_answering(server, workers) == workers  # every request answered
        numbers = {server.get("/probe/pid")["worker"] for _ in range(40)}
        assert numbers <= {"1", "2"}
        server.get("/probe/print")
        assert server.stop() == 0, server.stderr()
        assert server.proc is not None and server.proc.stdout is not None
        out = "".join(server.stdout_lines) + server.proc.stdout.read().decode()
        assert out.count("Listening to port") == 1, out
        assert "printed by worker" in out  # the workers' other output passes through


def test_a_killed_worker_is_restarted(redis_server: RedisServer) -> None:
    with Supervised(FLOW, "--workers", "2", "--redis", redis_server.url, env=clean_env()) as server:
        victim, survivor = sorted(server.workers())
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: len(server.workers() - {victim, survivor}) == 1, "a new worker")
        wait_until(lambda: "is serving again" in server.stderr(), "the new worker to serve", 15)
        log = server.stderr()
        assert f"(pid {victim}) was killed by SIGKILL; restarting it in 0.5s" in log, log
        replacement = server.workers() - {survivor}
        assert pids_answering(server, replacement | {survivor}) == replacement | {survivor}
        assert server.stop() == 0, server.stderr()


def test_sigterm_stops_every_worker_and_frees_the_port(redis_server: RedisServer) -> None:
    with Supervised(FLOW, "--workers", "3", "--redis", redis_server.url, env=clean_env()) as server:
        workers = server.workers()
        assert len(workers) == 3
        server.get("/probe/pid")
        assert server.stop(signal.SIGTERM) == 0, server.stderr()
        assert not any(alive(pid) for pid in workers)
        assert port_is_free(server.port)
        assert server.stderr().count("SIGTERM: shutting down") == 3  # once each, not twice
        # Each worker's lines carry its number.
        for number in (1, 2, 3):
            assert f"worker={number} SIGTERM: shutting down" in server.stderr()
        assert "Traceback" not in server.stderr()


def test_a_second_signal_stops_the_workers_at_once(redis_server: RedisServer) -> None:
    with Supervised(
        FLOW,
        "--workers",
        "2",
        "--redis",
        redis_server.url,
        "--shutdown-timeout",
        "30",
        env=clean_env(),
    ) as server:

        def request() -> None:  # cut short by the second signal
            with contextlib.suppress(OSError, http.client.HTTPException, AssertionError):
                server.get("/probe/slow?s=60", timeout=60)

        slow = threading.Thread(target=request, daemon=True)
        slow.start()
        wait_until(lambda: "sleeping" in server.stderr(), "the slow request")
        server.send_signal(signal.SIGTERM)
        wait_until(lambda: server.stderr().count("shutting down") >= 2, "the workers to stop")
        started = time.monotonic()
        server.send_signal(signal.SIGINT)
        assert server.wait(10) == 3, server.stderr()
        assert time.monotonic() - started < 5
        assert "stopped at once by a second signal" in server.stderr()
        slow.join(5)


def test_ctrl_c_reaches_each_worker_once(redis_server: RedisServer) -> None:
    """A terminal's Ctrl-C signals the whole foreground process group: the workers, in
    groups of their own, get it from the supervisor only (twice would stop them at once)."""
    with Supervised(FLOW, "--workers", "2", "--redis", redis_server.url, env=clean_env()) as server:
        assert server.proc is not None
        os.killpg(server.proc.pid, signal.SIGINT)
        assert server.wait() == 0, server.stderr()
        assert server.stderr().count("SIGINT: shutting down") == 2, server.stderr()
        assert "second signal" not in server.stderr()


def test_workers_stop_when_the_supervisor_is_killed(redis_server: RedisServer) -> None:
    with Supervised(FLOW, "--workers", "2", "--redis", redis_server.url, env=clean_env()) as server:
        workers = server.workers()
        server.kill()  # SIGKILL: nothing is forwarded
        wait_until(lambda: not any(alive(pid) for pid in workers), "the workers to exit")
        assert server.stderr().count("SIGTERM: shutting down") == 2, server.stderr()


def test_workers_need_redis() -> None:
    port = free_port()
    done = subprocess.run(
        [*lolo_run_command(), str(FLOW), "--port", str(port), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=20,
        env=clean_env(),
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert "--redis" in done.stderr
    assert "Listening" not in done.stdout
    assert port_is_free(port)


@pytest.mark.parametrize("broken", ["flow", "worker-import"])
def test_a_bad_flow_exits_2_at_once(redis_server: RedisServer, broken: str, tmp_path: Path) -> None:
    flow = FLOW
    if broken == "flow":
        flow = tmp_path / "bad.yaml"
        flow.write_text("app: bad\nnodes:\n  - id: x\n    type: lolo/no-such-type\n")
    started = time.monotonic()
    done = subprocess.run(
        [
            *lolo_run_command(),
            str(flow),
            "--port",
            "0",
            "--workers",
            "2",
            "--redis",
            redis_server.url,
        ],
        capture_output=True,
        text=True,
        timeout=20,
        env=clean_env(WORKER_PROBE_FAIL="import"),
        cwd=ROOT,
    )
    assert done.returncode == 2, done.stderr
    assert time.monotonic() - started < 10
    assert "restarting" not in done.stderr, done.stderr
    if broken == "worker-import":
        assert "broken on purpose in workers" in done.stderr
        assert "at start-up (the flow or the command line is wrong): giving up" in done.stderr


def test_workers_failing_at_startup_give_up_with_status_1(redis_server: RedisServer) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [
            *lolo_run_command(),
            str(FLOW),
            "--port",
            "0",
            "--workers",
            "2",
            "--redis",
            redis_server.url,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(WORKER_PROBE_FAIL="setup"),
        cwd=ROOT,
    )
    assert done.returncode == 1, done.stderr
    assert time.monotonic() - started < 20
    assert "every worker failed to start 3 times in a row" in done.stderr, done.stderr
    assert done.stderr.count("setup broken on purpose") >= 6  # 3 times each
    assert "Listening" not in done.stdout


def test_a_port_in_use_fails_before_any_worker_starts(redis_server: RedisServer) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                *lolo_run_command(),
                str(FLOW),
                "--port",
                str(port),
                "--workers",
                "2",
                "--redis",
                redis_server.url,
            ],
            capture_output=True,
            text=True,
            timeout=20,
            env=clean_env(),
            cwd=ROOT,
        )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr
