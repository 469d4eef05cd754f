"""``lolo-run FLOW --workers N``: N worker processes serve one port under one supervisor.

A worker is the same command line with ``--workers 1`` and ``$LOLO_WORKER`` set, so it binds
the port with SO_REUSEPORT and the kernel spreads new connections across the workers. The
supervisor serves nothing itself. It:

* reserves the port with a socket bound (SO_REUSEPORT) but never listening, which the kernel
  never hands a connection: that turns ``--port 0`` into one port all workers can bind, and
  keeps the port ours while workers restart;
* prints ``Listening to port N`` once every worker has (their other output passes through);
* restarts a worker that exits on its own after a backoff (0.5 s doubling to 30 s, back to
  0.5 s after 60 s of running), and gives up when a start-up fails with status 2 (a wrong
  flow or command line: retrying cannot help) or every worker failed to start 3 times in a row;
* forwards SIGINT, SIGTERM and SIGHUP to every worker; a second signal too (they stop at once).

Workers get process groups of their own, so a terminal's Ctrl-C reaches them once, through
the supervisor (twice would mean "stop at once"); on Linux, they get SIGTERM if the
supervisor dies without forwarding anything (``kill -9``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lolo_runtime.cli import EXIT_BAD_FLOW, EXIT_FAILURE, EXIT_FORCED, EXIT_OK, WORKER_ENV
from lolo_runtime.edge.listener import ListenError

log = logging.getLogger("lolo.supervisor")

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
FIRST_BACKOFF, MAX_BACKOFF, STABLE_AFTER = 0.5, 30.0, 60.0
MAX_START_FAILURES = 3
"""Consecutive failed start-ups of every worker after which the supervisor gives up."""
LINE_LIMIT = 65536
_LISTENING = re.compile(rb"Listening to port \d+|Running without a port")


def worker_argv(argv: Sequence[str], port: int) -> list[str]:
    """The supervisor's arguments for one worker: ``--workers`` dropped (``--workers N``
    and ``--workers=N``), then ``--workers 1 --port PORT`` added before any ``--``. The
    added options come last, so they also win over abbreviations (``--work 4``)."""
    args = list(argv)
    end = args.index("--") if "--" in args else len(args)
    kept: list[str] = []
    skip = False
    for arg in args[:end]:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            kept.append(arg)
    return [*kept, "--workers", "1", "--port", str(port), *args[end:]]


def reserve_port(host: str, port: int) -> tuple[int, list[socket.socket]]:
    """Bind (never listen) ``host:port`` with SO_REUSEPORT on every address the workers'
    listeners will bind, as they resolve them; return the port (chosen here for port 0)."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sockets: list[socket.socket] = []
    for family, kind, proto, _, address in dict.fromkeys(infos):
        sock = socket.socket(family, kind, proto)
        sockets.append(sock)
        try:
            # No SO_REUSEADDR: a program that does not share ports cannot bind it meanwhile.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address[0], port, *address[2:]))
        except OSError as exc:
            for opened in sockets:
                opened.close()
            raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        port = sock.getsockname()[1]
    return port, sockets


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has Linux send the worker SIGTERM when the supervisor dies."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded before fork, not after
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the supervisor died before prctl
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


@dataclass
class Worker:
    """One worker slot; its process is replaced when it crashes."""

    number: int
    process: asyncio.subprocess.Process | None = None
    started: float = 0.0
    listening: bool = False
    start_failures: int = 0
    backoff: float = FIRST_BACKOFF
    status: int | None = None
    """Its exit status once the supervisor is stopping."""

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None else 0


class Supervisor:
    """Runs ``count`` workers of ``argv`` on ``port`` until signalled or hopeless."""

    def __init__(self, argv: Sequence[str], count: int, port: int):
        self.command = [sys.executable, "-m", "lolo_runtime.cli", *worker_argv(argv, port)]
        self.port = port
        self.workers = [Worker(number) for number in range(1, count + 1)]
        self.stopping = asyncio.Event()
        self.signals: list[int] = []
        self.given_up: int | None = None
        self.announced = False
        self.preexec = _die_with_parent()

    async def run(self) -> int:
        for signum in SIGNALS:  # closing the loop takes the handlers away
            asyncio.get_running_loop().add_signal_handler(signum, self._signalled, signum)
        await asyncio.gather(*(self._keep(worker) for worker in self.workers))
        return self._exit_status()

    def _exit_status(self) -> int:
        if self.given_up is not None:
            return self.given_up
        if len(self.signals) > 1:
            return EXIT_FORCED
        clean = {EXIT_OK, *(-signum for signum in self.signals)}  # killed before it listened
        statuses = [w.status for w in self.workers if w.status is not None]
        if all(status in clean for status in statuses):
            return EXIT_OK
        return EXIT_FORCED if EXIT_FORCED in statuses else EXIT_FAILURE

    def _signalled(self, signum: int) -> None:
        self.signals.append(signum)
        if len(self.signals) == 1:
            log.info(
                "%s: stopping %d workers (send it again to stop them at once)",
                signal.Signals(signum).name,
                len(self.workers),
            )
        self._stop(signum)

    def _stop(self, signum: int) -> None:
        self.stopping.set()
        for worker in self.workers:
            if worker.process is not None and worker.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signum)

    def _give_up(self, status: int, why: str) -> None:
        if self.given_up is None and not self.stopping.is_set():
            log.error("%s: giving up, stopping the other workers", why)
            self.given_up = status
            self._stop(signal.SIGTERM)

    async def _keep(self, worker: Worker) -> None:
        """Run one slot's worker, and its replacements, until the supervisor stops."""
        while True:
            status = await self._run_once(worker)
            if not worker.listening and not self.stopping.is_set():
                self._failed_start(worker, status)
            if self.stopping.is_set():
                worker.status = status
                return
            if time.monotonic() - worker.started >= STABLE_AFTER:
                worker.backoff = FIRST_BACKOFF
            delay, worker.backoff = worker.backoff, min(worker.backoff * 2, MAX_BACKOFF)
            log.warning(
                "worker %d (pid %d) %s; restarting it in %.1fs",
                worker.number,
                worker.pid,
                _describe(status),
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            if self.stopping.is_set():
                return

    def _failed_start(self, worker: Worker, status: int) -> None:
        """Give up on a wrong flow or command line, or when no worker can start."""
        worker.start_failures += 1
        what = f"worker {worker.number} (pid {worker.pid}) {_describe(status)} at start-up"
        if status == EXIT_BAD_FLOW:
            self._give_up(status, f"{what} (the flow or the command line is wrong)")
        elif all(w.start_failures >= MAX_START_FAILURES for w in self.workers):
            self._give_up(
                max(status, EXIT_FAILURE),
                f"every worker failed to start {MAX_START_FAILURES} times in a row (last: {what})",
            )

    async def _run_once(self, worker: Worker) -> int:
        """Start the worker, relay its stdout until it exits; return its exit status."""
        worker.listening = False
        worker.started = time.monotonic()
        worker.process = None
        try:
            process = await asyncio.create_subprocess_exec(
                *self.command,
                stdout=asyncio.subprocess.PIPE,
                env={**os.environ, WORKER_ENV: str(worker.number)},
                process_group=0,
                preexec_fn=self.preexec,
            )
        except OSError as exc:  # out of processes or memory: a failed start, retried
            log.error("cannot start worker %d: %s", worker.number, exc)
            return EXIT_FAILURE
        worker.process = process
        if self.stopping.is_set():  # a signal came while it was being started
            process.send_signal(self.signals[-1] if self.signals else signal.SIGTERM)
        assert process.stdout is not None
        relay = asyncio.create_task(self._relay(worker, process.stdout))
        status = await process.wait()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            # Its output up to the exit; a child it left behind may hold the pipe open.
            await asyncio.wait_for(relay, 1.0)
        return status

    async def _relay(self, worker: Worker, stdout: asyncio.StreamReader) -> None:
        """Pass the worker's stdout through, line by line, except its first
        ``Listening to port`` line, which counts it as listening."""
        pending = b""
        while chunk := await stdout.read(LINE_LIMIT):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                if not worker.listening and _LISTENING.fullmatch(line.strip()):
                    self._listening(worker)
                else:
                    _write(line + b"\n")
            if len(pending) >= LINE_LIMIT:
                _write(pending)
                pending = b""
        if pending:
            _write(pending)

    def _listening(self, worker: Worker) -> None:
        worker.listening = True
        worker.start_failures = 0
        if self.announced:
            log.info("worker %d (pid %d) is serving again", worker.number, worker.pid)
        elif all(w.listening for w in self.workers):
            self.announced = True
            log.info("%d workers serving port %d", len(self.workers), self.port)
            _write(f"Listening to port {self.port}\n".encode())


def _describe(status: int) -> str:
    if status >= 0:
        return f"exited with status {status}"
    try:
        return f"was killed by {signal.Signals(-status).name}"
    except ValueError:  # a real-time signal has no name
        return f"was killed by signal {-status}"


def _write(data: bytes) -> None:
    with contextlib.suppress(OSError, ValueError):  # our stdout closed: drop the output
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


def run_workers(argv: Sequence[str], count: int, host: str = "127.0.0.1", port: int = 0) -> int:
    """Serve ``host:port`` from ``count`` workers (``argv``: the command line after the
    program name); return the exit status, as a single ``lolo-run`` process would."""
    try:
        port, reserved = reserve_port(host, port)
    except ListenError as exc:
        print(f"lolo-run: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        return asyncio.run(Supervisor(argv, count, port).run())
    except KeyboardInterrupt:  # before the signal handlers were in place: no worker yet
        return EXIT_OK
    finally:
        for sock in reserved:
            sock.close()
