"""Logging: ``ctx.log``, the text and JSON line formats, and secret redaction.

Every handler installed by :func:`configure_logging` formats through
:class:`RedactingFormatter`, so an API key that reaches a log record from anywhere (our
code, a handler, the websockets library at DEBUG) is masked in the final line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, TextIO
from urllib.parse import unquote

NODE_LOGGER = logging.getLogger("lolo.node")

_SECRET_PATTERNS = (
    # ``lolo-api-key=...`` in a query string or header dump, in any case.
    re.compile(r"(?i)(lolo-api-key(?:%3D|=|['\"]?\s*[:=,]\s*['\"]?))[^&\s'\"]+"),
    # ``Authorization: Bearer <token>``: whatever the token is.
    re.compile(r"(?i)(bearer(?:\s|%20|\+)+)[^\s&'\",]+"),
    # A key on its own: ``lolo_<keyid>_<secret>``; keep the non-secret key id.
    re.compile(r"(lolo_[0-9a-f]{8}_)[A-Za-z0-9_\-]{16,}"),
)


_ENCODED_WORD = re.compile(r"[^\s'\"]*%[0-9A-Fa-f]{2}[^\s'\"]*")
"""A run of text holding percent-escapes (a query string, a path, a header value)."""


def redact(text: str) -> str:
    """Mask every API key in ``text``, also where names or values are percent-encoded
    (once or several times): such a word is shown decoded, with the key masked."""
    text = _redact_plain(text)
    if "%" in text:
        text = _ENCODED_WORD.sub(_redact_encoded, text)
    return text


def _redact_plain(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1[REDACTED]", text)
    return text


def _redact_encoded(match: re.Match[str]) -> str:
    word = decoded = match.group(0)
    for _ in range(4):  # %252D is %2D is -: decode until nothing changes
        once = unquote(decoded, errors="replace")
        if once == decoded:
            break
        decoded = once
    cleaned = _redact_plain(decoded)
    return cleaned if cleaned != decoded else word


class NodeLog:
    """``ctx.log``: ``debug``/``info``/``warning``/``error``, tagged with app, node and session.

    Like Lolo's ``log.info(...)``, any value may be logged; an exception passed to
    ``error`` is logged with its traceback.
    """

    __slots__ = ("_extra",)

    def __init__(self, app: str, node_id: str, session_id: str | None):
        self._extra = {"app": app, "node": node_id, "session": session_id}

    def _log(self, level: int, message: Any, args: tuple[Any, ...]) -> None:
        if not NODE_LOGGER.isEnabledFor(level):
            return
        exc_info = message if isinstance(message, BaseException) else None
        text = str(message) if not isinstance(message, str) else message
        if args:
            text = " ".join([text, *(str(arg) for arg in args)])
        # Handler text may contain ``%``: pass it as data, never as a format string.
        NODE_LOGGER.log(level, "%s", text, exc_info=exc_info, extra=self._extra)

    def debug(self, message: Any, *args: Any) -> None:
        self._log(logging.DEBUG, message, args)

    def info(self, message: Any, *args: Any) -> None:
        self._log(logging.INFO, message, args)

    def warning(self, message: Any, *args: Any) -> None:
        self._log(logging.WARNING, message, args)

    warn = warning

    def error(self, message: Any, *args: Any) -> None:
        self._log(logging.ERROR, message, args)


def _tags(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: getattr(record, key)
        for key in ("app", "node", "session")
        if getattr(record, key, None) is not None
    }


class RedactingFormatter(logging.Formatter):
    """Formats a record as one line of text or JSON, then masks secrets in it.

    ``worker`` (the process's number under ``--workers``) tags every line, so the lines
    of processes that share one stderr can be told apart."""

    def __init__(self, json_lines: bool, worker: int | None = None):
        super().__init__()
        self.json_lines = json_lines
        self.worker = worker
        self._worker_text = f" worker={worker}" if worker is not None else ""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        tags = _tags(record)
        if self.json_lines:
            entry: dict[str, Any] = {
                "ts": _timestamp(record.created),
                "level": record.levelname.lower(),
                "logger": record.name,
                **({"worker": self.worker} if self.worker is not None else {}),
                **tags,
                "message": message,
            }
            if record.exc_info:
                entry["exception"] = self.formatException(record.exc_info)
            line = json.dumps(entry, default=str)
        else:
            where = ""
            if tags:
                place = "/".join(str(tags[k]) for k in ("app", "node") if k in tags)
                session = f" session={tags['session']}" if "session" in tags else ""
                where = f" [{place}{session}]"
            line = (
                f"{_timestamp(record.created)} {record.levelname:<7}{self._worker_text}"
                f"{where} {message}"
            )
            if record.exc_info:
                line += "\n" + self.formatException(record.exc_info)
        return redact(line)


def _timestamp(created: float) -> str:
    millis = int(created * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{millis:03d}Z"


def configure_logging(
    level: str = "info",
    fmt: str = "text",
    stream: TextIO | None = None,
    worker: int | None = None,
) -> None:
    """Send every logger's records, formatted and redacted, to ``stream`` (stderr),
    tagged with ``worker`` when this process is one of ``--workers``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(RedactingFormatter(json_lines=fmt == "json", worker=worker))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # The websockets library's INFO lines ("connection open") repeat what our own lines
    # say with less context; keep them for --log-level debug.
    quiet = logging.DEBUG if level.lower() == "debug" else logging.WARNING
    logging.getLogger("websockets").setLevel(quiet)
