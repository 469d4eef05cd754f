"""A :class:`StateBackend` kept in one SQLite file, without blocking the event loop.

One background thread owns the ``sqlite3`` connection (see :mod:`._worker`): the async methods
queue an operation and await a future that is resolved once the operation's transaction has
committed. Concurrent operations are group-committed: one transaction (and one fsync) for all
the operations waiting in the queue.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from pathlib import Path

from ._worker import SQLiteWorker
from .base import INT64_MAX, INT64_MIN, Clock, StateBackend, StateError

__all__ = ["SQLiteBackend"]

SCHEMA_VERSION = 2  # 2 added lolo_list (version-1 files are upgraded in place)

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS lolo_kv (
        app        TEXT NOT NULL,
        key        TEXT NOT NULL,
        value      TEXT NOT NULL,
        expires_at REAL,
        PRIMARY KEY (app, key)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS lolo_kv_expiry ON lolo_kv (expires_at) "
    "WHERE expires_at IS NOT NULL",
    # Lists made by push(): one row per item, so a push writes one small row (and trims
    # old ones by seq) instead of rewriting the whole list. Items of a list have
    # consecutive seq numbers from 1: trimming only ever removes the lowest, and an item's
    # seq is the number push() returns.
    """CREATE TABLE IF NOT EXISTS lolo_list (
        app   TEXT NOT NULL,
        key   TEXT NOT NULL,
        seq   INTEGER NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (app, key, seq)
    ) WITHOUT ROWID""",
)

_LIVE = "(expires_at IS NULL OR expires_at > ?)"

_UPSERT = (
    "INSERT INTO lolo_kv (app, key, value, expires_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (app, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"
)

_CLAIM = (
    "INSERT INTO lolo_kv (app, key, value, expires_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (app, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at "
    "WHERE lolo_kv.expires_at IS NOT NULL AND lolo_kv.expires_at <= ?"
)

# Every this many write batches, rows whose ttl has passed are deleted (they are already
# invisible to readers; this only reclaims space).
_PURGE_EVERY = 500


class SQLiteBackend(StateBackend):
    """State of many apps in one SQLite file (WAL mode), e.g. ``.lolo/app.sqlite3``.

    ``synchronous`` is the SQLite pragma used for commits; see the comment in ``_connect``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        clock: Clock = time.time,
        *,
        synchronous: str = "NORMAL",
        busy_timeout: float = 10.0,
        max_batch: int = 1000,
    ) -> None:
        super().__init__(clock)
        if synchronous.upper() not in ("NORMAL", "FULL"):
            raise StateError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        self.path = Path(path)
        self._synchronous = synchronous.upper()
        self._busy_timeout = busy_timeout
        self._write_batches = 0
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the open file
        self._file_lost: StateError | None = None
        self._worker = SQLiteWorker(
            str(self.path),
            self._connect,
            max_batch=max_batch,
            after_write_batch=self._maintain,
            before_write_batch=self._check_file,
        )

    def __repr__(self) -> str:
        state = "open" if self._worker.running else "closed"
        return f"SQLiteBackend({str(self.path)!r}, {state})"

    @property
    def location(self) -> str:
        return str(self.path)

    def problem(self) -> str | None:
        return None if self._file_lost is None else str(self._file_lost)

    # ----------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        # It holds emails, account ids, key hashes and app data: private to its owner.
        # Folders made here are 0700; the file (and SQLite's -wal and -shm, which take
        # the file's mode) 0600. An existing folder is the user's and is left as it is.
        try:
            missing = [
                folder
                for folder in (self.path.parent, *self.path.parent.parents)
                if not folder.exists()
            ]
            for folder in reversed(missing):  # mkdir(parents=True) ignores mode for these
                folder.mkdir(mode=0o700, exist_ok=True)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            info = self.path.stat()
            if info.st_mode & 0o077 and info.st_uid == os.geteuid() and self.path.is_file():
                self.path.chmod(0o600)
        except ValueError:
            raise StateError(f"cannot open {self.path!r}: the path holds a NUL byte") from None
        except OSError as exc:
            raise StateError(f"cannot create state store {self.path}: {exc}") from exc
        await self._worker.start()

    async def close(self) -> None:
        await self._worker.stop()

    # ----------------------------------------------------------------- on the worker thread

    def _check_file(self) -> None:
        """Refuse to acknowledge writes once the file we write to is no longer the one at
        ``path`` (deleted or replaced while the app runs): they would be lost."""
        if self._file_lost is not None:
            raise self._file_lost
        try:
            now = os.stat(self.path)
            current: tuple[int, int] | None = (now.st_dev, now.st_ino)
        except OSError:
            current = None
        if current == self._identity:
            return
        what = "deleted" if current is None else "replaced by another file"
        self._file_lost = StateError(
            f"state store {self.path} was {what} while the app ran; writes are refused "
            "from now on so that none is acknowledged and lost (restart to use a new file)"
        )
        logging.getLogger("lolo.state").error("%s", self._file_lost)
        raise self._file_lost

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=True,
            )
        except ValueError:  # a NUL in the path
            raise StateError(f"cannot open {self.path!r}: the path holds a NUL byte") from None
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StateError(f"state store {self.path}: cannot use WAL mode (got {mode})")
            # Durability. In WAL mode a commit appends to the -wal file with write(); with
            # synchronous=NORMAL it is not fsync'ed, so it survives a crash or kill -9 of this
            # process (the data is in the OS page cache) but not a power loss or kernel crash.
            # FULL fsyncs the WAL at every commit, so an acknowledged write survives those too.
            # The default is NORMAL, which is the promise ctx.state makes (kill -9 safe): a
            # chain that awaits its writes waits for the disk under FULL, and measured on the
            # chat app that halved its throughput. ``lolo-run --state-sync full`` opts in.
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA foreign_keys=OFF")
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise StateError(
                    f"state store {self.path} has schema version {version}; this lolo-runtime "
                    f"understands up to {SCHEMA_VERSION}"
                )
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("DELETE FROM lolo_kv WHERE expires_at <= ?", (self.clock(),))
            conn.execute("COMMIT")
            opened = os.stat(self.path)
            self._identity = (opened.st_dev, opened.st_ino)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StateError(
                f"state store {self.path} is not a usable SQLite database: {exc}"
            ) from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _maintain(self, conn: sqlite3.Connection) -> None:
        """Every few write batches, delete rows whose ttl has passed (to reclaim space)."""
        self._write_batches += 1
        if self._write_batches % _PURGE_EVERY == 0:
            conn.execute("DELETE FROM lolo_kv WHERE expires_at <= ?", (self.clock(),))

    # ----------------------------------------------------------------- storage primitives

    async def kv_get(self, app: str, key: str, now: float) -> str | None:
        def run(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                f"SELECT value FROM lolo_kv WHERE app = ? AND key = ? AND {_LIVE}",
                (app, key, now),
            ).fetchone()
            if row is not None:
                return str(row[0])
            items = _list_items(conn, app, key)
            return None if not items else "[" + ",".join(items) + "]"

        return await self._worker.submit(run, writes=False)

    async def kv_set(self, app: str, key: str, text: str, expires_at: float | None) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute(_UPSERT, (app, key, text, expires_at))
            conn.execute("DELETE FROM lolo_list WHERE app = ? AND key = ?", (app, key))

        await self._worker.submit(run, writes=True)

    async def kv_delete(self, app: str, key: str, now: float) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            live = conn.execute(
                f"SELECT 1 FROM lolo_kv WHERE app = ? AND key = ? AND {_LIVE}", (app, key, now)
            ).fetchone()
            conn.execute("DELETE FROM lolo_kv WHERE app = ? AND key = ?", (app, key))
            items = conn.execute(
                "DELETE FROM lolo_list WHERE app = ? AND key = ?", (app, key)
            ).rowcount
            return live is not None or items > 0

        return await self._worker.submit(run, writes=True)

    async def kv_keys(self, app: str, prefix: str, now: float) -> list[str]:
        def run(conn: sqlite3.Connection) -> list[str]:
            # Keys sharing a prefix are contiguous in key order: start at the prefix and stop
            # at the first key that does not share it (exact, unlike LIKE with its wildcards).
            found: list[str] = []
            queries = (
                f"SELECT key FROM lolo_kv WHERE app = ? AND key >= ? AND {_LIVE} ORDER BY key",
                "SELECT DISTINCT key FROM lolo_list WHERE app = ? AND key >= ? ORDER BY key",
            )
            for query, args in zip(queries, ((app, prefix, now), (app, prefix)), strict=True):
                for (key,) in conn.execute(query, args):
                    if not key.startswith(prefix):
                        break
                    found.append(key)
            return found

        return await self._worker.submit(run, writes=False)

    async def kv_incr(self, app: str, key: str, by: int, now: float) -> int:
        def run(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                f"SELECT value, expires_at FROM lolo_kv WHERE app = ? AND key = ? AND {_LIVE}",
                (app, key, now),
            ).fetchone()
            current: object = 0
            expires_at: float | None = None
            if row is not None:
                current, expires_at = json.loads(row[0]), row[1]
            elif _is_list(conn, app, key):
                current = []
            if isinstance(current, bool) or not isinstance(current, int):
                raise StateError(
                    f"cannot incr key {key!r}: it holds a {type(current).__name__}, not an int"
                )
            result = current + by
            if not INT64_MIN <= result <= INT64_MAX:
                raise StateError(f"cannot incr key {key!r}: the result would overflow 64 bits")
            conn.execute(_UPSERT, (app, key, json.dumps(result), expires_at))
            return result

        return await self._worker.submit(run, writes=True)

    async def kv_push(self, app: str, key: str, texts: list[str], keep: int, now: float) -> int:
        def run(conn: sqlite3.Connection) -> int:
            value = conn.execute(
                "SELECT expires_at FROM lolo_kv WHERE app = ? AND key = ?", (app, key)
            ).fetchone()
            if value is not None:
                if value[0] is None or value[0] > now:
                    raise StateError(
                        f"cannot push to key {key!r}: it holds a value stored "
                        "with set(); push makes lists of its own"
                    )
                conn.execute("DELETE FROM lolo_kv WHERE app = ? AND key = ?", (app, key))
            # Index seeks only: max(seq) alone is read from the end of the primary key,
            # and the trim is a range delete (empty most of the time). (Measured: a single
            # INSERT ... SELECT max() ... RETURNING took twice as long.)
            (top,) = conn.execute(
                "SELECT max(seq) FROM lolo_list WHERE app = ? AND key = ?", (app, key)
            ).fetchone()
            first = (top or 0) + 1
            conn.executemany(
                "INSERT INTO lolo_list (app, key, seq, value) VALUES (?, ?, ?, ?)",
                [(app, key, first + index, text) for index, text in enumerate(texts)],
            )
            last = first + len(texts) - 1
            conn.execute(
                "DELETE FROM lolo_list WHERE app = ? AND key = ? AND seq <= ?",
                (app, key, last - keep),
            )
            return last

        return await self._worker.submit(run, writes=True)

    async def kv_claim(self, app: str, key: str, text: str, expires_at: float, now: float) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            if _is_list(conn, app, key):
                return False
            # One statement: insert, or take over a row whose ttl has passed; a live row
            # stops the update, and rowcount says which happened. The batch holds SQLite's
            # write lock from its start (BEGIN IMMEDIATE), so other processes wait.
            return conn.execute(_CLAIM, (app, key, text, expires_at, now)).rowcount == 1

        return await self._worker.submit(run, writes=True)

    async def kv_release(self, app: str, key: str, text: str, now: float) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            deleted = conn.execute(
                f"DELETE FROM lolo_kv WHERE app = ? AND key = ? AND value = ? AND {_LIVE}",
                (app, key, text, now),
            )
            return deleted.rowcount == 1

        return await self._worker.submit(run, writes=True)

    async def purge_expired(self) -> int:
        """Delete rows whose ttl has passed (they are already invisible); return how many."""
        now = self.clock()

        def run(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM lolo_kv WHERE expires_at <= ?", (now,)).rowcount

        return await self._worker.submit(run, writes=True)


def _list_items(conn: sqlite3.Connection, app: str, key: str) -> list[str]:
    rows = conn.execute(
        "SELECT value FROM lolo_list WHERE app = ? AND key = ? ORDER BY seq", (app, key)
    )
    return [str(value) for (value,) in rows]


def _is_list(conn: sqlite3.Connection, app: str, key: str) -> bool:
    """Whether ``key`` holds a list made by push()."""
    return (
        conn.execute(
            "SELECT 1 FROM lolo_list WHERE app = ? AND key = ? LIMIT 1", (app, key)
        ).fetchone()
        is not None
    )
