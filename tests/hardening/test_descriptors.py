"""File descriptors: ``lolo-run`` under ``RLIMIT_NOFILE`` 256, against 300 clients.

Every connection is a descriptor, and 64 are kept in reserve (``edge/fdlimit.py``), so
192 clients fit. The ones past that must get HTTP 503 at once (none may hang until a
timeout), the server must stay up and keep serving the clients it has, and its log must
say so a few times, not once per refused client. When ``accept`` itself fails (every
descriptor taken, here by /hog), the listener's spare descriptor still lets it answer 503.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.hardening.wire import (
    FLOWS,
    OP_TEXT,
    RawClient,
    alive,
    assert_clean_log,
    figure,
    frame,
)
from tests.support import ROOT, LoloProcess, lolo_run_command, unavailable

LIMIT = 256
CLIENTS = 300
FITS = LIMIT - 64  # fdlimit.RESERVED_DESCRIPTORS
TIMEOUT = 5.0


class LimitedLolo(LoloProcess):
    """``lolo-run`` started with ``RLIMIT_NOFILE`` (LIMIT, LIMIT): soft and hard, so that
    the runtime cannot raise it."""

    def start(self) -> LimitedLolo:
        command = [
            *lolo_run_command(),
            str(self.flow),
            "--port",
            "0",
            "--state",
            str(self.state),
            *self.args,
        ]

        def low_limit() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))

        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=self.env,
            cwd=ROOT,
            preexec_fn=low_limit,
        )
        self.port = self._wait_for_listening()
        return self


@pytest.fixture(scope="module", autouse=True)
def enough_descriptors_here() -> None:
    """This process holds every client socket: raise its own soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = CLIENTS + 200
    if hard != resource.RLIM_INFINITY and hard < wanted:
        unavailable(f"the test process may open only {hard} files; {wanted} needed")
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@pytest.fixture
def server() -> Iterator[LimitedLolo]:
    process = LimitedLolo(FLOWS / "descriptors.yaml")
    try:
        yield process.start()
    finally:
        process.close()


def open_files(server: LoloProcess) -> int:
    assert server.proc is not None
    return len(os.listdir(f"/proc/{server.proc.pid}/fd"))


def try_handshake(client: RawClient, path: str = "/socket") -> int | str:
    """The handshake's status, or what went wrong instead of an answer."""
    try:
        return client.handshake(path).status
    except TimeoutError:
        return "timeout"
    except (ConnectionError, OSError) as error:
        return type(error).__name__


def hello(client: RawClient) -> str:
    opcode, data = client.read_frame()
    assert opcode == OP_TEXT
    greeting = json.loads(data)
    assert greeting["connected"] is True
    return str(greeting["yourConnectionId"])


def warnings(server: LoloProcess, text: str) -> int:
    return sum(text in line for line in server.stderr().splitlines())


def test_the_runtime_warns_when_max_connections_cannot_fit(server: LimitedLolo) -> None:
    log = server.stderr()
    assert "max_connections adds up to 20000 but this process may open only 256 files" in log, log


def test_clients_past_the_limit_get_503_at_once_and_the_rest_are_served(
    server: LimitedLolo,
) -> None:
    started = time.monotonic()
    # Each connects and asks for the upgrade at once, as clients do; those let in stay.
    clients: list[RawClient] = []
    outcomes: list[int | str] = []
    try:
        for _ in range(CLIENTS):
            clients.append(RawClient(server.port, timeout=TIMEOUT))
            outcomes.append(try_handshake(clients[-1]))
        took = time.monotonic() - started
        accepted = [c for c, outcome in zip(clients, outcomes, strict=True) if outcome == 101]
        refused = outcomes.count(503)
        figure(
            "descriptors.300_clients_at_limit_256",
            f"{len(accepted)} accepted, {refused} refused with 503, in {took:.2f}s; "
            f"server holds {open_files(server)} files",
        )
        assert refused + len(accepted) == CLIENTS, sorted(set(map(str, outcomes)))
        assert FITS - 10 <= len(accepted) <= FITS
        assert took < TIMEOUT  # nobody waited for a timeout

        # Those accepted are served: greeted, and a message reaches the others.
        ids = [hello(client) for client in accepted]
        accepted[0].send(frame(OP_TEXT, b"still here?"))
        for client in (accepted[1], accepted[-1]):
            assert client.read_frame() == (OP_TEXT, f"{ids[0]} says: still here?".encode())
    finally:
        for client in clients:
            client.close()
    assert alive(server)

    # Once they are gone there is room again.
    deadline = time.monotonic() + TIMEOUT
    while open_files(server) > 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    with RawClient(server.port, timeout=TIMEOUT) as again:
        assert try_handshake(again) == 101
        hello(again)
    assert warnings(server, "refusing connections with 503") <= 2
    assert warnings(server, "out of file descriptors") <= 2
    assert_clean_log(server)


def test_when_accept_itself_fails_the_spare_descriptor_still_answers_503(
    server: LimitedLolo,
) -> None:
    with (
        RawClient(server.port, timeout=TIMEOUT) as chat,
        RawClient(server.port, timeout=TIMEOUT) as hog,
    ):
        assert try_handshake(chat) == 101
        chat_id = hello(chat)
        assert try_handshake(hog, "/hog") == 101
        hog.send(frame(OP_TEXT, b"hog"))
        opcode, answer = hog.read_frame()
        assert opcode == OP_TEXT and answer.startswith(b"hogged "), answer
        started = time.monotonic()
        outcomes = []
        for _ in range(30):
            with RawClient(server.port, timeout=TIMEOUT) as late:
                outcomes.append(try_handshake(late))
        took = time.monotonic() - started
        figure(
            "descriptors.refused_by_the_spare",
            f"{outcomes.count(503)} of 30 in {took:.2f}s after {answer.decode()}",
        )
        assert outcomes == [503] * 30
        assert took < TIMEOUT
        # The connected client is still served, by itself.
        chat.send(frame(OP_TEXT, b"ping"))
        hog.send(frame(OP_TEXT, b"free"))
        assert hog.read_frame()[1].startswith(b"freed ")
        with RawClient(server.port, timeout=TIMEOUT) as after:
            assert try_handshake(after) == 101
            other = hello(after)
            chat.send(frame(OP_TEXT, b"back"))
            assert after.read_frame() == (OP_TEXT, f"{chat_id} says: back".encode())
        assert other != chat_id
    assert alive(server)
    assert warnings(server, "out of file descriptors") == 1  # once per 10 s, not 30 times
    assert_clean_log(server)
