"""The log tail: a ring of formatted, redacted lines with sequence numbers, detached on close."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from lolo_runtime.inspector.logtail import MAX_LINE_CHARS, LogTail


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("tests.inspector.logtail")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    log.handlers.clear()
    log.propagate = True


def test_it_keeps_the_last_lines_numbered_in_order(logger: logging.Logger) -> None:
    tail = LogTail(capacity=3)
    tail.attach(logger)
    for n in range(5):
        logger.info("line %d", n)
    lines = tail.since(0)
    assert [line.seq for line in lines] == [3, 4, 5]
    assert all(line.text.endswith(f"line {n}") for n, line in zip((2, 3, 4), lines, strict=True))
    assert all(line.level == "INFO" for line in lines)
    assert [line.seq for line in tail.since(4)] == [5]
    assert tail.since(5) == []
    assert tail.last_seq == 5
    tail.detach()


def test_lines_are_redacted_like_stderr_and_long_ones_cut(logger: logging.Logger) -> None:
    tail = LogTail()
    tail.attach(logger)
    logger.warning("frame: TEXT 'Bearer s3cr3t-inspector-key-0123' [38 bytes]")
    logger.error("x" * (MAX_LINE_CHARS + 500))
    first, second = tail.since(0)
    assert "s3cr3t" not in first.text
    assert "Bearer [REDACTED]" in first.text
    assert first.level == "WARNING"
    assert len(second.text) <= MAX_LINE_CHARS + 4
    tail.detach()


def test_detach_takes_it_off_the_logger_and_may_be_called_twice(logger: logging.Logger) -> None:
    tail = LogTail()
    tail.attach(logger)
    assert tail in logger.handlers
    tail.detach()
    tail.detach()
    assert tail not in logger.handlers
    logger.info("after")
    assert tail.since(0) == []
