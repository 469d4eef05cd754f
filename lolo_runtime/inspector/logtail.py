"""The last lines the app logged, for the inspector's live log tail.

:class:`LogTail` is a :class:`logging.Handler` on the root logger that keeps the last
``capacity`` records, formatted by the same :class:`~lolo_runtime.logs.RedactingFormatter`
as stderr's lines (so API keys are masked here too), each with a sequence number: a
reader asks for the lines after the last number it has seen. :meth:`LogTail.detach`
takes it off the logger again (the inspector does so when it closes).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

from lolo_runtime.logs import RedactingFormatter

DEFAULT_CAPACITY = 200
MAX_LINE_CHARS = 2000
"""A longer line (a traceback) is cut: the tail is for glancing, stderr has it whole."""


@dataclass(frozen=True, slots=True)
class LogLine:
    seq: int
    level: str
    text: str


class LogTail(logging.Handler):
    """A ring buffer of formatted log lines."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        super().__init__()
        self.setFormatter(RedactingFormatter(json_lines=False))
        self._lines: deque[LogLine] = deque(maxlen=capacity)
        self._seq = 0
        self._logger: logging.Logger | None = None

    @property
    def last_seq(self) -> int:
        """The number of the newest line (0: none yet)."""
        return self._seq

    def emit(self, record: logging.LogRecord) -> None:
        # Handler.handle holds self.lock around emit: a thread that logs is safe.
        try:
            text = self.format(record)
        except Exception:
            self.handleError(record)
            return
        if len(text) > MAX_LINE_CHARS:
            text = text[:MAX_LINE_CHARS] + " ..."
        self._seq += 1
        self._lines.append(LogLine(self._seq, record.levelname, text))

    def since(self, seq: int) -> list[LogLine]:
        """The lines kept whose number is above ``seq``, oldest first."""
        assert self.lock is not None  # made by Handler.__init__
        with self.lock:
            return [line for line in self._lines if line.seq > seq]

    def attach(self, logger: logging.Logger | None = None) -> None:
        """Start keeping what ``logger`` (the root logger) handles."""
        self._logger = logger or logging.getLogger()
        self._logger.addHandler(self)

    def detach(self) -> None:
        """Stop keeping lines; safe to call twice."""
        if self._logger is not None:
            self._logger.removeHandler(self)
            self._logger = None
        self.close()
