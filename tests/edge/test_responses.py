"""``edge/responses.py``: which headers may be sent, and the response head. No sockets."""

from __future__ import annotations

import re
from typing import Any

import pytest

from lolo_runtime.edge.responses import (
    CONTINUE,
    HeaderError,
    carries_body,
    check_headers,
    plain,
    response_head,
)
from lolo_runtime.edge.types import HttpResponse


@pytest.mark.parametrize(
    "header",
    [
        ("content-type", "text/plain; charset=utf-8"),
        ("X-Custom_Name.v2", "tab\tand spaces, latin-1 \u00e9"),
        ("set-cookie", "a=b; Path=/; HttpOnly"),
        ("x-empty", ""),
        ("!#$%&'*+-.^_`|~", "token characters only"),
    ],
)
def test_headers_that_can_be_sent(header: tuple[str, str]) -> None:
    check_headers([header])


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (("x-a", "1\r\nset-cookie: evil=1"), "line break or NUL"),
        (("x-a", "1\nx"), "line break or NUL"),
        (("x-a", "1\rx"), "line break or NUL"),
        (("x-a", "nul\0"), "line break or NUL"),
        (("x-a", "bell\x07"), "control character"),
        (("x-a", "del\x7f"), "control character"),
        (("x-a", "euro \u20ac"), "only latin-1"),
        (("bad name", "v"), "not a valid HTTP header name"),
        (("bad:name", "v"), "not a valid HTTP header name"),
        (("bad\tname", "v"), "not a valid HTTP header name"),
        (("x(y)", "v"), "not a valid HTTP header name"),
        (("na\u00efve", "v"), "not a valid HTTP header name"),
        (("", "v"), "not a valid HTTP header name"),
        (("x\r\ny", "v"), "not a valid HTTP header name"),
        ((7, "v"), "not int"),
        (("x-count", 3), "not int"),
        (("x-none", None), "not NoneType"),
    ],
)
def test_headers_that_would_break_the_response_are_refused(header: Any, message: str) -> None:
    with pytest.raises(HeaderError, match=re.escape(message)):
        check_headers([("x-fine", "ok"), header])


def head_lines(head: bytes) -> tuple[str, list[str]]:
    assert head.endswith(b"\r\n\r\n")
    status, *lines = head[:-4].decode("latin-1").split("\r\n")
    return status, lines


def test_the_head_of_an_answer() -> None:
    response = HttpResponse(201, [("content-type", "application/json"), ("x-a", "1")], b"{}")
    status, lines = head_lines(response_head(response, 2, keep_alive=True))
    assert status == "HTTP/1.1 201 Created"
    assert re.fullmatch(r"date: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", lines[0])
    assert lines[1:] == [
        "server: lolo-runtime",
        "content-type: application/json",
        "x-a: 1",
        "content-length: 2",
    ]


def test_the_edge_sets_length_date_server_and_connection_itself() -> None:
    response = HttpResponse(
        200,
        [
            ("Content-Length", "999"),
            ("DATE", "yesterday"),
            ("Server", "spoof"),
            ("connection", "upgrade"),
            ("Transfer-Encoding", "chunked"),
            ("x-kept", "yes"),
        ],
    )
    _, lines = head_lines(response_head(response, 5, keep_alive=False))
    names = [line.split(":")[0].lower() for line in lines]
    assert sorted(names) == ["connection", "content-length", "date", "server", "x-kept"]
    assert "content-length: 5" in lines
    assert "connection: close" in lines
    assert "server: lolo-runtime" in lines


def test_keep_alive_is_said_only_when_asked() -> None:
    _, quiet = head_lines(response_head(HttpResponse(200), 0, keep_alive=True))
    _, said = head_lines(
        response_head(HttpResponse(200), 0, keep_alive=True, announce_keep_alive=True)
    )
    _, closing = head_lines(
        response_head(HttpResponse(200), 0, keep_alive=False, announce_keep_alive=True)
    )
    assert not any(line.startswith("connection") for line in quiet)
    assert "connection: keep-alive" in said
    assert "connection: close" in closing and "connection: keep-alive" not in closing


@pytest.mark.parametrize(
    ("status", "has_length"),
    [
        (100, False),
        (101, False),
        (200, True),
        (204, False),
        (304, False),
        (404, True),
        (500, True),
    ],
)
def test_only_answers_with_a_body_get_a_content_length(status: int, has_length: bool) -> None:
    assert carries_body(status) is has_length
    _, lines = head_lines(response_head(HttpResponse(status), 0, keep_alive=True))
    assert ("content-length: 0" in lines) is has_length


def test_an_unknown_status_still_has_a_status_line() -> None:
    status, _ = head_lines(response_head(HttpResponse(599), 0, keep_alive=True))
    assert status == "HTTP/1.1 599 Unknown"


def test_plain_answers() -> None:
    default = plain(404)
    assert (default.status, default.body) == (404, b"Not Found\n")
    assert default.headers == [("content-type", "text/plain; charset=utf-8")]
    custom = plain(405, "Use GET.\n", ("allow", "GET"))
    assert custom.body == b"Use GET.\n"
    assert ("allow", "GET") in custom.headers
    assert plain(299).body == b"Error\n"
    assert CONTINUE == b"HTTP/1.1 100 Continue\r\n\r\n"
