"""Serialising HTTP/1.1 response heads, and the canned answers the edge gives itself."""

from __future__ import annotations

import re
import time
from email.utils import formatdate
from http import HTTPStatus

from lolo_runtime.edge.types import HttpResponse

SERVER_NAME = "lolo-runtime"
_PHRASES = {status.value: status.phrase for status in HTTPStatus}
_FORBIDDEN_IN_HEADERS = frozenset("\r\n\0")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class HeaderError(ValueError):
    """A response header that cannot be sent (not a string, not a token, holding CR/LF)."""


class _DateCache:
    """``Date`` changes once a second; format it once a second."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._value = formatdate(second, usegmt=True)
        return self._value


_dates = _DateCache()


def check_headers(headers: list[tuple[str, str]]) -> None:
    """Refuse header names or values that would break the response (or inject one): a
    name must be an RFC 9110 token; a value may hold no control character but tab, and
    only latin-1 text."""
    for name, value in headers:
        for part in (name, value):
            if not isinstance(part, str):
                raise HeaderError(
                    f"header {name!r}: names and values must be strings, not {type(part).__name__}"
                )
        if _TOKEN.fullmatch(name) is None:
            raise HeaderError(f"header name {name!r} is not a valid HTTP header name")
        if _FORBIDDEN_IN_HEADERS.intersection(value):
            raise HeaderError(f"header {name!r}: value holds a line break or NUL")
        if _CONTROL.search(value) is not None:
            raise HeaderError(f"header {name!r}: value holds a control character")
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise HeaderError(
                f"header {name!r}: only latin-1 text can be sent in a header "
                "(percent-encode the rest)"
            ) from None


def carries_body(status: int) -> bool:
    """Whether a response with ``status`` carries a body (1xx, 204 and 304 never do)."""
    return status >= 200 and status not in (204, 304)


def response_head(
    response: HttpResponse, body_length: int, keep_alive: bool, announce_keep_alive: bool = False
) -> bytes:
    """Status line and headers; ``Content-Length``, ``Date``, ``Server`` and ``Connection``
    are the edge's to set, so a route's own values for them are dropped.
    ``announce_keep_alive``: say ``Connection: keep-alive`` (what HTTP/1.0 needs)."""
    status = response.status
    lines = [
        f"HTTP/1.1 {status} {_PHRASES.get(status, 'Unknown')}\r\n"
        f"date: {_dates.now()}\r\nserver: {SERVER_NAME}\r\n"
    ]
    for name, value in response.headers:
        lowered = name.lower()
        if lowered in ("content-length", "date", "server", "connection", "transfer-encoding"):
            continue
        lines.append(f"{name}: {value}\r\n")
    if carries_body(status):
        lines.append(f"content-length: {body_length}\r\n")
    if not keep_alive:
        lines.append("connection: close\r\n")
    elif announce_keep_alive:
        lines.append("connection: keep-alive\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


def plain(status: int, text: str | None = None, *extra: tuple[str, str]) -> HttpResponse:
    """A short text/plain answer (the body defaults to the status phrase)."""
    body = (text if text is not None else f"{_PHRASES.get(status, 'Error')}\n").encode()
    headers = [("content-type", "text/plain; charset=utf-8"), *extra]
    return HttpResponse(status, headers, body)


def serialize(response: HttpResponse) -> bytes:
    """A whole answer on a connection that closes after it (refusals)."""
    return response_head(response, len(response.body), False) + response.body


def too_busy() -> HttpResponse:
    """The 503 of a server out of room (connections or file descriptors)."""
    return plain(503, "Server is too busy.\n")


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
