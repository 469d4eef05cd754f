"""Start a real ``lolo-run`` process for a test and talk to it."""

from __future__ import annotations

import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parent.parent
_LISTENING = re.compile(r"Listening to port (\d+)|Running without a port")


def lolo_run_command() -> list[str]:
    """The installed ``lolo-run`` script, or the module when the script is not on PATH."""
    script = shutil.which("lolo-run")
    return [script] if script else [sys.executable, "-m", "lolo_runtime.cli"]


def unavailable(reason: str) -> NoReturn:
    """Skip for want of a program or package (``reason`` names it, and how to install
    it), except on CI (``CI=true``), where ``.ci/run`` installs it: there the test fails."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def lolo_keys(state: Path, *args: str) -> str:
    """``lolo-run keys ARGS --state STATE``; what it printed on stdout (a new key)."""
    done = subprocess.run(
        [*lolo_run_command(), "keys", *args, "--state", str(state)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.strip()


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LoloProcess:
    """``lolo-run FLOW --port 0 ...`` in a subprocess; stderr is kept for inspection."""

    def __init__(
        self,
        flow: Path | str,
        *args: str,
        env: dict[str, str] | None = None,
        start_timeout: float = 15.0,
        state: Path | None = None,
    ):
        self.flow = Path(flow)
        self._state_dir = tempfile.TemporaryDirectory() if state is None else None
        self.state = state or Path(self._state_dir.name) / "state.sqlite3"  # type: ignore[union-attr]
        self.args = args
        # The example chats limit each client to a human pace; tests flood them on purpose.
        self.env = {**os.environ, "CHAT_MAX_MESSAGES_PER_SECOND": "1000000", **(env or {})}
        self.start_timeout = start_timeout
        self.port = 0
        self.stdout_lines: list[str] = []
        self._stderr = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 - closed in close()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> LoloProcess:
        # With --redis the state lives there (--state and --redis together are refused).
        store = [] if "--redis" in self.args else ["--state", str(self.state)]
        command = [*lolo_run_command(), str(self.flow), "--port", "0", *store, *self.args]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self._stderr, env=self.env, cwd=ROOT
        )
        self.port = self._wait_for_listening()
        return self

    def _wait_for_listening(self) -> int:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + self.start_timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not selector.select(timeout=0.1):
                    continue
                line = self.proc.stdout.readline().decode()
                if not line:
                    break
                self.stdout_lines.append(line)
                match = _LISTENING.search(line)
                if match:
                    return int(match.group(1) or 0)  # 0: no trigger listens
        self.kill()
        raise RuntimeError(f"lolo-run did not start listening; stderr:\n{self.stderr()}")

    def url(self, path: str = "/socket") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def send_signal(self, signum: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Ask the process to shut down and return its exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        self.kill()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()
        if self._state_dir is not None:
            self._state_dir.cleanup()

    def __enter__(self) -> LoloProcess:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def refused_start(flow: Path, state: Path) -> str:
    """Start ``lolo-run flow``, which must exit with status 1 before it listens (a node's
    setup refuses the flow); return what it printed on stderr."""
    server = LoloProcess(flow, state=state, start_timeout=10)
    with pytest.raises(RuntimeError, match="did not start listening"):
        server.start()
    try:
        assert server.wait() == 1
        return server.stderr()
    finally:
        server.close()
