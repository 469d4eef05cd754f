"""Start, time and always stop the servers under test (lolo-run and the bare baseline).

Each server runs as a child process on a free loopback port, optionally pinned to one core with
`taskset`, in its own session, with PR_SET_PDEATHSIG so it dies with the runner even if the
runner is killed. Its stdout/stderr go to files, so a server that refuses an option or crashes
is reported with the tail of its stderr.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from handshake import probe_handshake

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EXTRA = ["--port", "{port}", "--state", "{state}", "--log-level", "warning"]
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)


class ServerError(RuntimeError):
    """A server could not be started or died; the message carries its stderr tail."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def build_argv(command: str, port: int, state: str) -> list[str]:
    """Split `command`; substitute {port}/{state}/{host}/{dir}, or append lolo-run's options.

    Without a {port} placeholder the runner appends
    `--port PORT --state STATE --log-level warning` (bare_server.py accepts the same options).
    {dir} is the server's own temporary folder (the one holding STATE).
    """
    parts = shlex.split(command)
    if not parts:
        raise ServerError("empty server command")
    if not any("{port}" in p for p in parts):
        parts += DEFAULT_EXTRA
    folder = str(Path(state).parent)
    subst = {"{port}": str(port), "{state}": state, "{host}": HOST, "{dir}": folder}
    out = []
    for part in parts:
        for key, value in subst.items():
            part = part.replace(key, value)
        out.append(part)
    return out


def resolve_program(program: str) -> str:
    """A bare name is looked up next to the running Python first, then on PATH.

    That finds `python` or `lolo-run` in the interpreter's own bin/ directory rather than a
    pyenv-style shim, which is a shell script that would add ~50 ms to every start (S6).
    """
    if os.sep in program:
        return program
    sibling = Path(sys.executable).parent / program
    if sibling.is_file() and os.access(sibling, os.X_OK):
        return str(sibling)
    return shutil.which(program) or program


# A throw-away redis-server for ServerPool.start(name, REDIS_COMMAND, probe=probe_redis): no
# persistence, loopback only, its files in the server's temporary folder, its log on stdout.
REDIS_COMMAND = (
    "redis-server --port {port} --bind {host} --save '' --appendonly no "
    "--protected-mode no --dir {dir} --logfile ''"
)


def probe_redis(port: int, host: str = HOST) -> bool:
    """One PING; True when the answer is +PONG (readiness probe for REDIS_COMMAND)."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when the runner dies, however it dies."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@dataclass
class RunningServer:
    name: str
    argv: list[str]
    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path
    startup_s: float = 0.0
    _files: list[IO[bytes]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output_tail(self, stream: str = "stderr", lines: int = 25) -> str:
        try:
            text = (self.workdir / f"{stream}.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def saw_listening_line(self) -> bool:
        return f"Listening to port {self.port}" in self.output_tail("stdout", 200)

    def check_alive(self) -> None:
        if not self.alive():
            raise ServerError(
                f"{self.name} died (exit code {self.proc.returncode}); command: "
                f"{shlex.join(self.argv)}\n--- stderr tail ---\n{self.output_tail()}"
            )

    def stop(self, grace: float = 3.0) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(grace)
        # Anything the server forked into its own session goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for handle in self._files:
            handle.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


class ServerPool:
    """Starts servers and guarantees every one is stopped when the `with` block ends."""

    def __init__(
        self, pin_cpu: int | None, env: dict[str, str] | None = None, ready_timeout: float = 30.0
    ) -> None:
        self.pin_cpu = pin_cpu
        self.env = env
        self.ready_timeout = ready_timeout
        self.running: list[RunningServer] = []

    def __enter__(self) -> ServerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def stop_all(self) -> None:
        while self.running:
            self.running.pop().stop()

    def stop(self, server: RunningServer) -> None:
        if server in self.running:
            self.running.remove(server)
        server.stop()

    def start(
        self, name: str, command: str, probe: Callable[[int], bool] = probe_handshake
    ) -> RunningServer:
        """Exec the server and time it until ``probe(port)`` first succeeds (by default a
        WebSocket handshake)."""
        workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        port = free_port()
        argv = build_argv(command, port, str(workdir / "bench.sqlite3"))
        argv[0] = resolve_program(argv[0])
        if shutil.which(argv[0]) is None:
            shutil.rmtree(workdir, ignore_errors=True)
            raise ServerError(
                f"{name}: command {argv[0]!r} not found (install the project with "
                "`pip install -e .`, or pass --lolo-cmd)"
            )
        launch = argv
        if self.pin_cpu is not None:
            launch = ["taskset", "-c", str(self.pin_cpu), *argv]
        out = (workdir / "stdout.log").open("wb")
        err = (workdir / "stderr.log").open("wb")
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            launch,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=self.env,
            start_new_session=True,
            preexec_fn=die_with_parent,  # the runner is single-threaded, so this is safe
        )
        server = RunningServer(name, argv, port, proc, workdir, _files=[out, err])
        self.running.append(server)
        deadline = t0 + self.ready_timeout
        while not probe(port):
            server.check_alive()
            if time.perf_counter() > deadline:
                tail = server.output_tail()
                self.stop(server)
                raise ServerError(
                    f"{name} did not answer its readiness probe on port {port} within "
                    f"{self.ready_timeout:.0f} s\n--- stderr tail ---\n{tail}"
                )
            time.sleep(0.005)
        server.startup_s = time.perf_counter() - t0
        return server


def pick_cores(no_pin: bool) -> tuple[int | None, int | None]:
    """The CPUs for the servers and for the load generator (None, None: do not pin)."""
    cpus = sorted(os.sched_getaffinity(0))
    if no_pin or len(cpus) < 2 or shutil.which("taskset") is None:
        return None, None
    return cpus[0], cpus[1]


def git_commit() -> str:
    """The checked-out commit, marked dirty when tracked files changed, for reports."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):

        def run(*args: str) -> str:
            return subprocess.run(
                ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
            ).stdout.strip()

        return run("rev-parse", "--short", "HEAD") + (
            " (dirty)" if run("status", "--porcelain", "--untracked-files=no") else ""
        )
    return "unknown"
