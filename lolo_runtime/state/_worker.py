"""A thread that owns one ``sqlite3`` connection and runs queued work with group commit.

Async callers :meth:`~SQLiteWorker.submit` a function of the connection and await its result.
The thread takes every operation waiting in the queue (up to ``max_batch``), runs them all in
one transaction, commits once, and only then resolves their futures: many concurrent writers
share one commit (and, with ``synchronous=FULL``, one fsync). Futures are resolved on the
caller's event loop with ``call_soon_threadsafe``, one wake-up per loop per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .base import StateError

__all__ = ["SQLiteWorker"]

T = TypeVar("T")

_Result = tuple["asyncio.Future[Any]", Any, BaseException | None]


@dataclass(slots=True)
class _Op:
    run: Callable[[sqlite3.Connection], Any]
    writes: bool
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


_STOP = object()


def _settle(results: list[_Result]) -> None:
    """Resolve futures; runs on their event loop."""
    for future, value, error in results:
        if future.done():  # the awaiting task was cancelled
            continue
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)


def _notify(loop: asyncio.AbstractEventLoop, results: list[_Result]) -> None:
    """From the worker thread: have ``loop`` resolve ``results``."""
    with contextlib.suppress(RuntimeError):  # that loop is closed; nobody is waiting any more
        loop.call_soon_threadsafe(_settle, results)


class SQLiteWorker:
    """Runs functions of a private ``sqlite3`` connection on a dedicated thread.

    ``connect`` runs on the thread and must return a connection in autocommit mode
    (``isolation_level=None``): the worker issues BEGIN/COMMIT itself. ``after_write_batch``,
    if given, runs inside every transaction that contains a write, just before COMMIT;
    ``before_write_batch`` runs before such a transaction begins, and a ``StateError`` it
    raises fails every operation of the batch.
    ``label`` names the store in error messages.
    """

    def __init__(
        self,
        label: str,
        connect: Callable[[], sqlite3.Connection],
        *,
        max_batch: int = 1000,
        after_write_batch: Callable[[sqlite3.Connection], None] | None = None,
        before_write_batch: Callable[[], None] | None = None,
    ) -> None:
        self._label = label
        self._connect = connect
        self._max_batch = max(1, max_batch)
        self._after_write_batch = after_write_batch
        self._before_write_batch = before_write_batch
        self._queue: queue.SimpleQueue[_Op | object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._accepting = False

    @property
    def running(self) -> bool:
        return self._accepting

    async def start(self) -> None:
        """Start the thread and open the connection; raise what ``connect`` raised."""
        with self._lock:
            if self._thread is not None:
                raise StateError(f"state store {self._label} is already open")
            loop = asyncio.get_running_loop()
            ready: asyncio.Future[None] = loop.create_future()
            self._queue = queue.SimpleQueue()
            self._thread = threading.Thread(
                target=self._main, args=(loop, ready), name="lolo-state", daemon=True
            )
            self._thread.start()
        try:
            await ready
        except BaseException:
            # Failed (the thread has exited) or cancelled (it may be running): stop it either way.
            self._queue.put(_STOP)
            self._join()
            raise
        self._accepting = True

    async def stop(self) -> None:
        """Finish every queued operation, close the connection and end the thread."""
        with self._lock:
            if self._thread is None or not self._accepting:
                return
            self._accepting = False
            loop = asyncio.get_running_loop()
            done: asyncio.Future[None] = loop.create_future()
            # Queued behind all pending operations, so those run (and commit) first.
            self._queue.put(_Op(lambda conn: None, False, loop, done))
            self._queue.put(_STOP)
        try:
            await done
        finally:
            self._join()

    async def submit(self, run: Callable[[sqlite3.Connection], T], *, writes: bool) -> T:
        """Run ``run(conn)`` on the thread; return once its transaction has committed.

        ``run`` must end with at most one writing statement, so that if it raises it has
        written nothing and the other operations of its batch can still commit.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if not self._accepting:
                raise StateError(f"state store {self._label} is not open")
            self._queue.put(_Op(run, writes, loop, future))
        return await future

    def _join(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()

    # Everything below runs on the worker thread.

    def _main(self, loop: asyncio.AbstractEventLoop, ready: asyncio.Future[None]) -> None:
        try:
            conn = self._connect()
        except sqlite3.Error as exc:  # e.g. "unable to open database file"
            _notify(loop, [(ready, None, StateError(f"cannot open {self._label}: {exc}"))])
            return
        except BaseException as exc:
            _notify(loop, [(ready, None, exc)])
            return
        _notify(loop, [(ready, None, None)])
        try:
            stop = False
            while not stop:
                batch: list[_Op] = []
                item = self._queue.get()
                while True:
                    if item is _STOP:
                        stop = True
                        break
                    assert isinstance(item, _Op)
                    batch.append(item)
                    if len(batch) >= self._max_batch:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    self._run_batch(conn, batch)
        finally:
            conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        writes = any(op.writes for op in batch)
        outcomes: list[tuple[Any, BaseException | None]] = []
        if writes and self._before_write_batch is not None:
            try:
                self._before_write_batch()
            except StateError as refusal:  # nothing of this batch may be acknowledged
                by_loop_refused: dict[asyncio.AbstractEventLoop, list[_Result]] = {}
                for op in batch:
                    by_loop_refused.setdefault(op.loop, []).append((op.future, None, refusal))
                for target, results in by_loop_refused.items():
                    _notify(target, results)
                return
        try:
            conn.execute("BEGIN IMMEDIATE" if writes else "BEGIN")
            for op in batch:
                # An operation that raises has written nothing (see submit), so only it fails.
                # A SQLite error, though, may have aborted the transaction: the batch fails.
                try:
                    outcomes.append((op.run(conn), None))
                except sqlite3.Error:
                    raise
                except Exception as exc:
                    outcomes.append((None, exc))
            if writes and self._after_write_batch is not None:
                self._after_write_batch(conn)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            failure = StateError(f"state store {self._label}: {exc}")
            outcomes = [(None, failure)] * len(batch)
        # Acknowledge only now that the transaction has committed.
        by_loop: dict[asyncio.AbstractEventLoop, list[_Result]] = {}
        for op, (value, error) in zip(batch, outcomes, strict=True):
            by_loop.setdefault(op.loop, []).append((op.future, value, error))
        for target, results in by_loop.items():
            _notify(target, results)
