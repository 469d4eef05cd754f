"""HTTP/1.1 at the edge, byte for byte: a real ``lolo-run`` and a raw socket that writes
the exact request bytes and reads the exact reply.

tests/e2e/flows/edge-http.yaml serves ``/echo`` (answers the request as JSON, body limit
1000 bytes), ``/users/:id`` (GET and DELETE only), ``/files/*``, ``/slow`` (sleeps
``?ms=``), ``/boom`` (raises), ``/silent`` (never answers; ``timeout: 1``) and a WebSocket
trigger whose ``open_timeout: 1`` makes the head timeout 1 s.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support import ROOT, LoloProcess

FLOW = ROOT / "tests" / "e2e" / "flows" / "edge-http.yaml"
WAIT = 10.0
HEAD_TIMEOUT = 1.0  # the flow's largest open_timeout
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass
class Reply:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key == name]
        assert len(values) <= 1, f"{name} sent {len(values)} times: {self.headers}"
        return values[0] if values else None

    def json(self) -> Any:
        assert self.header("content-type") == "application/json", self.headers
        return json.loads(self.body)


class Http:
    """One TCP connection speaking HTTP/1.1 by hand."""

    def __init__(self, port: int, timeout: float = WAIT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""

    def __enter__(self) -> Http:
        return self

    def __exit__(self, *_: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def read_exactly(self, count: int) -> bytes:
        while len(self.buffer) < count:
            if not self._fill():
                raise EOFError(f"closed after {self.buffer!r}")
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def reply(self, *, to_head: bool = False) -> Reply:
        """The next response; its body is Content-Length bytes (none for HEAD/1xx/204/304)."""
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                raise EOFError(f"closed before a whole response head: {self.buffer!r}")
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        version, status, reason = status_line.split(" ", 2)
        assert version == "HTTP/1.1", status_line
        headers = []
        for line in lines:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        reply = Reply(int(status), reason, headers, b"")
        assert reply.header("transfer-encoding") is None  # the edge always sends a length
        length = reply.header("content-length")
        if to_head or reply.status < 200 or reply.status in (204, 304):
            return reply
        assert length is not None, headers
        reply.body = self.read_exactly(int(length))
        return reply

    def closed(self, within: float = 2.0) -> bool:
        """Whether the server closes the connection within ``within`` seconds, sending
        nothing more (anything it does send fails the test)."""
        self.sock.settimeout(within)
        try:
            extra = self.sock.recv(65536)
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        finally:
            self.sock.settimeout(WAIT)
        assert extra == b"" and self.buffer == b"", f"unexpected bytes: {self.buffer + extra!r}"
        return True


def get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: test", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.fixture(scope="module")
def server() -> Iterator[LoloProcess]:
    with LoloProcess(FLOW) as process:
        yield process


def ask(server: LoloProcess, request: bytes) -> Reply:
    with Http(server.port) as http:
        http.send(request)
        return http.reply()


# --- connections -------------------------------------------------------------------------


def test_keep_alive_serves_two_requests_on_one_socket(server: LoloProcess) -> None:
    with Http(server.port) as http:
        http.send(get("/echo?n=1"))
        first = http.reply()
        assert first.status == 200
        assert first.header("connection") is None  # HTTP/1.1: open unless said otherwise
        assert first.json()["query"] == {"n": "1"}
        http.send(get("/echo?n=2"))
        second = http.reply()
        assert second.json()["query"] == {"n": "2"}
        assert not http.closed(within=0.3)


def test_pipelined_requests_are_answered_in_order_behind_a_slow_one(server: LoloProcess) -> None:
    with Http(server.port) as http:
        started = time.monotonic()
        http.send(get("/slow?ms=400") + get("/users/7") + get("/files/a/b.txt"))
        replies = [http.reply() for _ in range(3)]
        elapsed = time.monotonic() - started
    assert [r.header("x-action") for r in replies] == ["slow", "echo", "echo"]
    assert [r.json()["path"] for r in replies] == ["/slow", "/users/7", "/files/a/b.txt"]
    assert elapsed >= 0.4


def test_http_1_0_without_keep_alive_is_closed_after_the_answer(server: LoloProcess) -> None:
    with Http(server.port) as http:
        http.send(b"GET /echo HTTP/1.0\r\n\r\n")
        reply = http.reply()
        assert reply.status == 200
        assert reply.header("connection") == "close"
        assert http.closed()


def test_http_1_0_with_keep_alive_is_told_the_connection_stays_open(server: LoloProcess) -> None:
    """An HTTP/1.0 client assumes the server closes unless the answer says keep-alive."""
    with Http(server.port) as http:
        http.send(b"GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        reply = http.reply()
        assert reply.status == 200
        assert reply.header("connection") == "keep-alive"
        http.send(b"GET /echo?again=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert http.reply().json()["query"] == {"again": "1"}


def test_connection_close_closes_after_the_answer(server: LoloProcess) -> None:
    with Http(server.port) as http:
        http.send(get("/echo", "Connection: close"))
        reply = http.reply()
        assert reply.status == 200
        assert reply.header("connection") == "close"
        assert http.closed()


def test_a_client_that_half_closes_gets_its_answers_then_the_connection_closes(
    server: LoloProcess,
) -> None:
    with Http(server.port) as http:
        http.send(get("/slow?ms=200") + get("/echo"))
        http.sock.shutdown(socket.SHUT_WR)
        started = time.monotonic()
        assert [http.reply().status for _ in range(2)] == [200, 200]
        assert http.closed(within=2.0)  # not after the 5 s keep-alive timeout
        assert time.monotonic() - started < 2.0


# --- bodies ------------------------------------------------------------------------------


def test_a_content_length_body_reaches_the_handler(server: LoloProcess) -> None:
    body = b'{"name": "ada", "n": [1, 2]}'
    reply = ask(
        server,
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Type: application/json"
        b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body),
    )
    assert reply.status == 200
    seen = reply.json()
    assert seen["method"] == "POST"
    assert seen["body"] == {"name": "ada", "n": [1, 2]}
    assert seen["raw"] == body.decode()


def test_a_chunked_body_is_reassembled(server: LoloProcess) -> None:
    reply = ask(
        server,
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Type: text/plain\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n",
    )
    assert reply.status == 200
    assert reply.json()["body"] == "hello, world"


def test_head_has_the_length_of_get_and_no_body(server: LoloProcess) -> None:
    with Http(server.port) as http:
        http.send(get("/echo"))
        full = http.reply()
        http.send(b"HEAD /echo HTTP/1.1\r\nHost: test\r\n\r\n")
        head = http.reply(to_head=True)
        # Nothing follows the head: the next bytes on the socket are the next response.
        http.send(get("/echo?after=head"))
        after = http.reply()
    assert head.status == 200
    assert int(full.header("content-length") or 0) == len(full.body) > 0
    # The app answers HEAD as it answers GET (the echo names the method): HEAD is told the
    # length that answer has, and is sent none of it.
    as_get = json.dumps({**full.json(), "method": "HEAD"}, separators=(",", ":"))
    assert head.header("content-length") == str(len(as_get.encode()))
    assert head.header("content-type") == "application/json"
    assert after.json()["query"] == {"after": "head"}


def test_a_no_content_answer_has_no_length_and_the_connection_stays_usable(
    server: LoloProcess,
) -> None:
    with Http(server.port) as http:
        http.send(get("/echo?status=204") + get("/echo?status=304") + get("/echo?after=1"))
        no_content, not_modified, after = http.reply(), http.reply(), http.reply()
    assert (no_content.status, not_modified.status) == (204, 304)
    assert no_content.header("content-length") is None
    assert not_modified.header("content-length") is None
    assert after.json()["query"] == {"after": "1"}


def test_an_informational_status_from_the_app_is_a_500(server: LoloProcess) -> None:
    assert ask(server, get("/echo?status=101")).status == 500


def test_expect_100_continue_is_answered_before_the_body_is_sent(server: LoloProcess) -> None:
    with Http(server.port) as http:
        http.send(
            b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        assert http.read_exactly(len(CONTINUE)) == CONTINUE
        http.send(b"hello")
        reply = http.reply()
    assert reply.status == 200
    assert reply.json()["body"] == "hello"


def test_expect_100_continue_behind_a_slow_answer_comes_after_that_answer(
    server: LoloProcess,
) -> None:
    """Answers go out in order, and a 100 is an answer's start: it must not overtake the
    answer to the request before it."""
    with Http(server.port) as http:
        http.send(
            get("/slow?ms=300") + b"POST /echo HTTP/1.1\r\nHost: test\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        assert http.reply().header("x-action") == "slow"
        assert http.read_exactly(len(CONTINUE)) == CONTINUE
        http.send(b"later")
        assert http.reply().json()["body"] == "later"


def test_expect_100_continue_with_a_too_large_body_gets_413_and_no_100(server: LoloProcess) -> None:
    with Http(server.port) as http:
        http.send(
            b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5000\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        reply = http.reply()
        assert reply.status == 413
        assert http.closed()


# --- limits ------------------------------------------------------------------------------


def test_a_too_long_request_line_is_414(server: LoloProcess) -> None:
    with Http(server.port) as http:
        http.send(get("/echo?q=" + "a" * 9000))
        assert http.reply().status == 414
        assert http.closed()


def test_too_large_headers_are_431(server: LoloProcess) -> None:
    headers = [f"X-Filler-{i}: {'v' * 1000}" for i in range(40)]
    with Http(server.port) as http:
        http.send(get("/echo", *headers))
        assert http.reply().status == 431
        assert http.closed()


def test_too_many_headers_are_431(server: LoloProcess) -> None:
    assert ask(server, get("/echo", *(f"X-{i}: 1" for i in range(150)))).status == 431


def test_a_header_line_that_never_ends_is_431_before_the_head_timeout(server: LoloProcess) -> None:
    """httptools keeps a header line until its CRLF: 1 MiB of one line must not be held
    until the head timeout (nor 1 GiB within it)."""
    with Http(server.port) as http:
        http.send(b"GET /echo HTTP/1.1\r\nHost: test\r\nX-Endless: ")
        started = time.monotonic()
        try:
            for _ in range(64):
                http.send(b"v" * 16384)
                time.sleep(0.005)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused while still sending: the answer is already there
        reply = http.reply()
        assert reply.status == 431
        assert time.monotonic() - started < HEAD_TIMEOUT


def test_a_too_large_body_is_413(server: LoloProcess) -> None:
    with Http(server.port) as http:
        http.send(
            b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 1001\r\n\r\n" + b"x" * 1001
        )
        assert http.reply().status == 413
        assert http.closed()


def test_a_too_large_chunked_body_is_413(server: LoloProcess) -> None:
    chunk = b"x" * 600
    with Http(server.port) as http:
        http.send(
            b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
            + (b"258\r\n" + chunk + b"\r\n") * 2
            + b"0\r\n\r\n"
        )
        assert http.reply().status == 413
        assert http.closed()


def test_a_body_at_the_limit_is_accepted(server: LoloProcess) -> None:
    reply = ask(
        server, b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\n" + b"y" * 1000
    )
    assert reply.status == 200
    assert reply.json()["body"] == {"base64": "eXl5" * 333 + "eQ=="}


def test_a_head_not_finished_in_time_is_408(server: LoloProcess) -> None:
    with Http(server.port) as http:
        started = time.monotonic()
        http.send(b"GET /echo HTTP/1.1\r\nHost: te")
        reply = http.reply()
        waited = time.monotonic() - started
        assert reply.status == 408
        assert http.closed()
    assert HEAD_TIMEOUT * 0.8 <= waited < HEAD_TIMEOUT + 1.5


def test_a_head_that_arrives_behind_a_slow_answer_still_times_out(server: LoloProcess) -> None:
    """The second head started while the first request was served; it must not be allowed
    to dribble in forever once the first answer is out."""
    with Http(server.port) as http:
        started = time.monotonic()
        http.send(get("/slow?ms=300") + b"GET /echo HTTP/1.1\r\nHo")
        assert http.reply().status == 200
        late = http.reply()
        waited = time.monotonic() - started
        assert late.status == 408
        assert http.closed()
    assert waited < 0.3 + HEAD_TIMEOUT + 1.5


def test_a_body_that_stops_arriving_is_408(server: LoloProcess) -> None:
    with Http(server.port) as http:
        http.send(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nabc")
        started = time.monotonic()
        reply = http.reply()
        waited = time.monotonic() - started
        assert reply.status == 408
        assert http.closed()
    assert HEAD_TIMEOUT * 0.8 <= waited < HEAD_TIMEOUT + 1.5


def test_a_slow_body_that_keeps_coming_is_not_cut_off(server: LoloProcess) -> None:
    """Only a body that stops is timed out: this one takes twice the timeout in all."""
    with Http(server.port) as http:
        http.send(
            b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 8\r\n\r\n"
        )
        for byte in b"12345678":
            time.sleep(HEAD_TIMEOUT / 4)
            http.send(bytes([byte]))
        reply = http.reply()
    assert reply.status == 200
    assert reply.json()["body"] == "12345678"


def test_an_idle_keep_alive_connection_can_still_send_a_slow_head(server: LoloProcess) -> None:
    """The head timeout counts from the start of a head, not from the previous answer."""
    with Http(server.port) as http:
        http.send(get("/echo"))
        assert http.reply().status == 200
        time.sleep(HEAD_TIMEOUT * 0.7)
        http.send(b"GET /echo?late=1 HTTP/1.1\r\n")
        time.sleep(HEAD_TIMEOUT * 0.7)
        http.send(b"Host: test\r\n\r\n")
        assert http.reply().json()["query"] == {"late": "1"}


# --- routing -----------------------------------------------------------------------------


def test_an_unknown_path_is_404_and_the_connection_stays_usable(server: LoloProcess) -> None:
    with Http(server.port) as http:
        http.send(get("/nowhere"))
        assert http.reply().status == 404
        http.send(get("/echo"))
        assert http.reply().status == 200


def test_a_wrong_method_is_405_with_allow(server: LoloProcess) -> None:
    reply = ask(server, b"POST /users/1 HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n")
    assert reply.status == 405
    assert reply.header("allow") == "DELETE, GET, HEAD"
    assert ask(server, b"DELETE /users/1 HTTP/1.1\r\nHost: test\r\n\r\n").status == 200


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /echo HTTP/1.1\r\nHost test\r\n\r\n",
        b"GET /echo HTTP/9.9\r\nHost: test\r\n\r\n",
        # Request smuggling shapes: both framings, or two lengths.
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
        b"hello!",
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
    ids=["garbage", "header-without-colon", "version", "cl-and-te", "two-lengths", "bad-chunk"],
)
def test_a_malformed_request_is_400_and_closed(server: LoloProcess, request_bytes: bytes) -> None:
    with Http(server.port) as http:
        http.send(request_bytes)
        assert http.reply().status == 400
        assert http.closed()


def test_route_params_and_the_wildcard_are_captured(server: LoloProcess) -> None:
    user = ask(server, get("/users/42?x=1")).json()
    assert (user["params"], user["path"], user["query"]) == ({"id": "42"}, "/users/42", {"x": "1"})
    deep = ask(server, get("/files/a/b/c.txt")).json()
    assert deep["params"] == {"*": "a/b/c.txt"}
    assert ask(server, get("/files/")).json()["params"] == {"*": ""}
    assert ask(server, get("/users/")).status == 404  # a param is never empty
    assert ask(server, get("/users/1/more")).status == 404


def test_the_path_params_and_query_are_percent_decoded(server: LoloProcess) -> None:
    user = ask(server, get("/users/caf%C3%A9")).json()
    assert (user["path"], user["params"]) == ("/users/café", {"id": "café"})
    files = ask(server, get("/files/a%20b/c%3Fd%23e")).json()
    assert files["params"] == {"*": "a b/c?d#e"}
    assert ask(server, get("/%65cho?q=a%20b&r=%C3%A9&q=2")).json()["query"] == {
        "q": ["a b", "2"],
        "r": "é",
    }


def test_an_encoded_slash_stays_inside_its_segment(server: LoloProcess) -> None:
    """As in Express: the path is split on '/' before it is decoded."""
    user = ask(server, get("/users/a%2Fb")).json()
    assert (user["path"], user["params"]) == ("/users/a/b", {"id": "a/b"})
    assert ask(server, get("/ech%6F%2F")).status == 404  # '/echo/' is not '/echo'


# --- the app's answers -------------------------------------------------------------------


def test_a_raising_handler_is_500_without_detail(server: LoloProcess) -> None:
    reply = ask(server, get("/boom"))
    assert reply.status == 500
    assert reply.body == b"Internal Server Error\n"
    assert b"secret" not in reply.body
    deadline = time.monotonic() + WAIT
    while "secret-edge-detail-4711" not in server.stderr():  # logged, not leaked
        assert time.monotonic() < deadline, server.stderr()
        time.sleep(0.02)


def test_a_handler_that_never_answers_is_504_after_its_timeout(server: LoloProcess) -> None:
    started = time.monotonic()
    reply = ask(server, get("/silent"))
    waited = time.monotonic() - started
    assert reply.status == 504
    assert 0.9 <= waited < 3.0


def test_the_server_logged_no_traceback_from_the_edge(server: LoloProcess) -> None:
    """Runs last in this module: the only tracebacks are those of handlers that raised."""
    log = server.stderr()
    assert "Task exception was never retrieved" not in log
    assert "the route failed" not in log
    assert log.count("Traceback") == log.count("handler raised"), log
