"""The Redis link of a :class:`~.hub.Hub`: channel messages to and from the app's other
processes, over Redis pub/sub.

* One Redis channel per app channel with local members (``SUBSCRIBE`` when the first local
  client joins, ``UNSUBSCRIBE`` after the last leaves), plus one per app for ``ctx.send``
  to a session connected elsewhere (every process hears it; the one holding the session
  delivers it).
* A publish is queued and written by one task, pipelined: one ``PUBLISH`` per message, in
  queue order, so a publisher's messages arrive everywhere in the order it sent them.
  Each message carries this process's id; a process skips its own echo (its local members
  got the message when it was published).
* At most once. Lost: messages published while Redis is unreachable (dropped at once, and
  counted), messages in flight when a connection breaks, and messages published to a
  channel in the moment before another process's subscription to it was confirmed.
* Redis away: local delivery goes on; the outage is logged once, the link reconnects with
  backoff (0.1 s doubling to 1 s) and resubscribes to every channel that has local
  members, and the recovery is logged once, with the messages dropped meanwhile. Idle
  connections are dropped on reconnection, so none cut with the old server is reused.
* A publish that fails while Redis still answers a PING (a stale connection, a refusal
  such as an ACL's) is no outage: its messages are dropped and counted, in a WARNING at
  most every ``BROKEN_EVERY`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections import deque
from typing import Any
from urllib.parse import quote

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from lolo_runtime.channels.hub import Hub, Outgoing
from lolo_runtime.state.base import StateError
from lolo_runtime.state.redisstore import redact_url

log = logging.getLogger("lolo.channels")

MAX_QUEUED = 10_000
"""Messages waiting for Redis, at most; past it the oldest are dropped (and counted)."""
PING_AFTER = 5.0
"""Seconds without traffic on the subscription before it is checked with a PING."""
RETRY_FIRST, RETRY_MAX = 0.1, 1.0
BROKEN_EVERY = 10.0
"""Seconds between two warnings about messages Redis refused or a broken connection lost."""


class RedisBus:
    """Joins the hub of this process to those of the app's other processes."""

    def __init__(
        self, url: str, app: str, hub: Hub, *, timeout: float = 2.0, namespace: str = "lolo"
    ) -> None:
        self.url = url
        self.hub = hub
        self.timeout = timeout
        self.origin = uuid.uuid4().hex.encode()
        self._prefix = f"{quote(namespace, safe='')}:{quote(app, safe='')}:"
        self._direct = f"{self._prefix}direct"
        self._client: aioredis.Redis | None = None
        self._pubsub: Any = None  # redis.asyncio.client.PubSub while connected
        self._outbox: deque[tuple[str, bytes]] = deque()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        self._stale = False  # set when the subscription must be made again
        self._down_since: float | None = None
        self._reason = ""
        self._dropped_in_outage = 0
        self._broken_said_at: float | None = None
        self._broken_unsaid = 0
        self.dropped = 0
        """Messages for other processes dropped because Redis was away (or the queue full)."""

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Connect and subscribe; raises :class:`StateError` if Redis cannot be reached."""
        self._client = aioredis.Redis.from_url(
            self.url, socket_connect_timeout=self.timeout, socket_timeout=self.timeout
        )
        try:
            await self._connect()
        except (RedisError, OSError) as exc:
            await self._client.aclose()
            raise StateError(f"cannot reach Redis at {redact_url(self.url)}: {exc}") from None
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._read_forever()),
            loop.create_task(self._write_forever()),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._close_pubsub()
        if self._client is not None:
            await self._client.aclose()

    def problem(self) -> str | None:
        """Why other processes cannot be reached now (for /_lolo/health), or None."""
        if self._down_since is None:
            return None
        return (
            f"Redis at {redact_url(self.url)} unreachable for "
            f"{time.monotonic() - self._down_since:.1f}s: {self._reason}"
        )

    # ----------------------------------------------------------------- the hub's Link

    async def subscribe(self, channel: str) -> None:
        pubsub = self._pubsub
        if pubsub is None:
            return  # resubscribed on reconnection
        name = self._prefix + "ch:" + channel
        waiter = self._confirmed.setdefault(name, asyncio.get_running_loop().create_future())
        try:
            await pubsub.subscribe(name)
            await asyncio.wait_for(asyncio.shield(waiter), self.timeout)
        except (RedisError, OSError, TimeoutError) as exc:
            log.debug("subscribing to %s: %s (retried on reconnection)", channel, exc)

    async def unsubscribe(self, channel: str) -> None:
        pubsub = self._pubsub
        if pubsub is not None and self.hub.local_members(channel) == 0:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.unsubscribe(self._prefix + "ch:" + channel)

    def publish(self, channel: str, message: Outgoing, exclude: frozenset[str]) -> None:
        head = [message.opcode, sorted(exclude) if exclude else None, None]
        self._queue(self._prefix + "ch:" + channel, head, message.payload)

    def send(self, session_id: str, message: Outgoing) -> None:
        self._queue(self._direct, [message.opcode, None, session_id], message.payload)

    # ----------------------------------------------------------------- outgoing

    def _drop(self, count: int) -> None:
        self.dropped += count
        if self._down_since is not None:
            self._dropped_in_outage += count

    def _queue(self, name: str, head: list[Any], payload: bytes) -> None:
        if self._down_since is not None:
            self._drop(1)
            return
        if len(self._outbox) >= MAX_QUEUED:
            self._outbox.popleft()
            self._drop(1)
        data = (
            self.origin + b" " + json.dumps(head, separators=(",", ":")).encode() + b"\n" + payload
        )
        self._outbox.append((name, data))
        self._wake.set()

    async def _write_forever(self) -> None:
        assert self._client is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                batch = list(self._outbox)
                self._outbox.clear()
                try:
                    async with self._client.pipeline(transaction=False) as pipe:
                        for name, data in batch:
                            pipe.publish(name, data)
                        replies = await pipe.execute(raise_on_error=False)
                except (RedisError, OSError) as exc:
                    # Not resent: some may have been published (at most once).
                    if await self._answers():
                        # Only this connection broke (a stale one, closed by Redis
                        # or a proxy): Redis is there, nothing else to mend.
                        self._drop(len(batch))
                        self._broken(len(batch), exc)
                        continue
                    self._went_down(exc)
                    self._drop(len(batch))
                    self._stale = True  # the reader reconnects, then says we are back
                    continue
                refused = [reply for reply in replies if isinstance(reply, Exception)]
                if refused:  # Redis answered, but said no (ACL, out of memory...)
                    self._drop(len(refused))
                    self._broken(len(refused), refused[0])

    async def _answers(self) -> bool:
        """Whether Redis answers a PING on a new connection."""
        assert self._client is not None
        try:
            await self._client.connection_pool.disconnect(inuse_connections=False)
            await self._client.ping()
        except (RedisError, OSError):
            return False
        return True

    def _broken(self, count: int, exc: BaseException) -> None:
        """Messages lost while Redis is up: said at most once per BROKEN_EVERY seconds."""
        self._broken_unsaid += count
        now = time.monotonic()
        if self._broken_said_at is not None and now - self._broken_said_at < BROKEN_EVERY:
            return
        log.warning(
            "%d message(s) for other processes were dropped: publishing to Redis at %s failed: %s",
            self._broken_unsaid,
            redact_url(self.url),
            str(exc) or type(exc).__name__,
        )
        self._broken_said_at = now
        self._broken_unsaid = 0

    # ----------------------------------------------------------------- incoming

    async def _connect(self) -> None:
        assert self._client is not None
        # Idle pooled connections may have been cut with the last one (Redis restarted):
        # left in the pool, the next publish would fail on one and look like an outage.
        await self._client.connection_pool.disconnect(inuse_connections=False)
        pubsub = self._client.pubsub()
        names = [self._direct, *(self._prefix + "ch:" + ch for ch in self.hub.channels)]
        try:
            await pubsub.subscribe(*names)
        except BaseException:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            raise
        self._pubsub = pubsub
        self._stale = False
        # A client that joined while we were connecting may be missing from ``names``.
        missing = {self._prefix + "ch:" + ch for ch in self.hub.channels} - set(names)
        if missing:
            await pubsub.subscribe(*missing)

    async def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _read_forever(self) -> None:
        delay = RETRY_FIRST
        while True:
            if self._pubsub is None:
                try:
                    await self._connect()
                except (RedisError, OSError) as exc:
                    self._went_down(exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX)
                    continue
                delay = RETRY_FIRST
                self._came_back()
            try:
                await self._read(self._pubsub)
            except (RedisError, OSError) as exc:
                self._went_down(exc)
                await self._close_pubsub()

    async def _read(self, pubsub: Any) -> None:
        last_heard = time.monotonic()
        pinged = False
        while True:
            if self._stale:
                raise ConnectionError("publishing failed")
            message = await pubsub.get_message(timeout=1.0)
            now = time.monotonic()
            if message is None:
                if now - last_heard > PING_AFTER + self.timeout and pinged:
                    raise ConnectionError("no answer to PING")
                if now - last_heard > PING_AFTER and not pinged:
                    await pubsub.ping()
                    pinged = True
                continue
            last_heard, pinged = now, False
            kind = message["type"]
            if kind == "message":
                self._received(message["channel"], message["data"])
            elif kind == "subscribe":
                name = message["channel"].decode()
                waiter = self._confirmed.pop(name, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

    def _received(self, channel: bytes, data: bytes) -> None:
        try:
            origin, _, rest = data.partition(b" ")
            if origin == self.origin:
                return  # our own publish: local members already have it
            head_text, _, payload = rest.partition(b"\n")
            opcode, exclude, target = json.loads(head_text)
            message = Outgoing(int(opcode), payload)
            if target is not None:
                self.hub.deliver_direct(str(target), message)
                return
            name = channel.decode()
            if name.startswith(self._prefix + "ch:"):
                self.hub.deliver_local(
                    name[len(self._prefix) + 3 :], message, frozenset(exclude or ())
                )
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            log.warning("ignoring a malformed channel message on %r: %s", channel, exc)

    # ----------------------------------------------------------------- health

    def _went_down(self, exc: BaseException) -> None:
        if self._down_since is not None:
            return
        self._down_since = time.monotonic()
        self._reason = str(exc) or type(exc).__name__
        self._dropped_in_outage = 0
        self._drop(len(self._outbox))
        self._outbox.clear()
        log.error(
            "Redis at %s unreachable (%s): messages to other processes are dropped "
            "until it is back; clients of this process are still served (pid %d)",
            redact_url(self.url),
            self._reason,
            os.getpid(),
        )

    def _came_back(self) -> None:
        if self._down_since is None:
            return
        lasted = time.monotonic() - self._down_since
        self._down_since = None
        log.warning(
            "Redis at %s is back after %.1fs: resubscribed to %d channel(s); %d "
            "message(s) for other processes were dropped meanwhile",
            redact_url(self.url),
            lasted,
            len(self.hub.channels),
            self._dropped_in_outage,
        )
