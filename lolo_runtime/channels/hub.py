"""The live sessions of one app process, and the named channels they joined.

Handlers reach clients through it (``ctx.join``, ``ctx.publish``, ``ctx.send``): a message is
encoded once (:class:`Outgoing`) and handed to every local member; with a :class:`Link`
(the Redis bus) it also goes, once, to the app's other processes, which do the same for
their members. Without a link everything stays in this process.

Delivery is synchronous for local members: when ``publish`` returns, the message is queued
on every local member's connection, in publish order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from typing import Any, Protocol

from lolo_runtime.errors import ChannelError
from lolo_runtime.nodes.wsframes import frame_header, payload_of

log = logging.getLogger("lolo.channels")

MAX_CHANNEL_NAME = 256


class Outgoing:
    """One message, encoded once for every recipient: ``payload`` for connections that
    compress, ``frame`` (a whole unmasked WebSocket frame) for those that do not."""

    __slots__ = ("_frame", "opcode", "payload")

    def __init__(self, opcode: int, payload: bytes) -> None:
        self.opcode = opcode
        self.payload = payload
        self._frame: bytes | None = None

    @classmethod
    def of(cls, body: Any) -> Outgoing:
        """str goes as text, bytes as binary, anything else as JSON text."""
        opcode, payload = payload_of(body)
        return cls(opcode, payload)

    @property
    def frame(self) -> bytes:
        if self._frame is None:
            self._frame = frame_header(self.opcode, len(self.payload)) + self.payload
        return self._frame


class Member(Protocol):
    """A connected client that can receive channel messages (a WebSocket session)."""

    @property
    def session_id(self) -> str: ...

    def deliver(self, message: Outgoing) -> None:
        """Queue ``message`` for the client; never blocks, never raises."""


class Link(Protocol):
    """How a hub reaches the app's other processes (see :mod:`.redisbus`)."""

    async def subscribe(self, channel: str) -> None: ...

    async def unsubscribe(self, channel: str) -> None: ...

    def publish(self, channel: str, message: Outgoing, exclude: frozenset[str]) -> None: ...

    def send(self, session_id: str, message: Outgoing) -> None: ...


def check_channel(channel: object) -> str:
    if not isinstance(channel, str) or not channel:
        raise ChannelError(f"a channel name is a non-empty str, not {channel!r}")
    if len(channel) > MAX_CHANNEL_NAME:
        raise ChannelError(f"channel name longer than {MAX_CHANNEL_NAME} characters")
    return channel


def _exclusion(exclude: str | Collection[str] | None) -> frozenset[str]:
    if exclude is None:
        return frozenset()
    if isinstance(exclude, str):
        return frozenset((exclude,))
    return frozenset(exclude)


class Hub:
    """Sessions and channel memberships of this process; ``link`` reaches the others."""

    def __init__(self, link: Link | None = None) -> None:
        self.link = link
        self._members: dict[str, Member] = {}
        self._channels: dict[str, dict[str, Member]] = {}
        self._joined: dict[str, set[str]] = {}  # session id -> its channels
        self._subscribing: dict[str, asyncio.Future[None]] = {}  # channel -> link.subscribe

    # ----------------------------------------------------------------- sessions

    def register(self, member: Member) -> None:
        self._members[member.session_id] = member

    def unregister(self, session_id: str) -> None:
        """The client is gone: it leaves every channel it joined."""
        self._members.pop(session_id, None)
        for channel in self._joined.pop(session_id, ()):
            self._drop(channel, session_id)

    def is_local(self, session_id: str) -> bool:
        return session_id in self._members

    def local_members(self, channel: str) -> int:
        return len(self._channels.get(channel, ()))

    @property
    def channels(self) -> list[str]:
        """Channels with at least one member in this process (what a link subscribes to)."""
        return list(self._channels)

    # ----------------------------------------------------------------- membership

    async def join(self, session_id: str, channel: str) -> None:
        """Add the session to ``channel``. Once it returns, messages published to the
        channel by any process reach the session (the link has subscribed)."""
        check_channel(channel)
        member = self._members.get(session_id)
        if member is None:
            raise ChannelError(
                f"session {session_id} cannot join {channel!r}: only a client connected to "
                "this process can (a WebSocket session, from one of its own chains)"
            )
        members = self._channels.get(channel)
        first = members is None
        if members is None:
            members = self._channels[channel] = {}
        members[session_id] = member
        self._joined.setdefault(session_id, set()).add(channel)
        if self.link is None:
            return
        # Every joiner waits for the subscription, not only the one that asked for it.
        pending = self._subscribing.get(channel)
        if first:
            pending = asyncio.ensure_future(self.link.subscribe(channel))
            self._subscribing[channel] = pending
            pending.add_done_callback(lambda done: self._subscribed(channel, done))
        if pending is not None:
            await asyncio.shield(pending)

    def _subscribed(self, channel: str, done: asyncio.Future[None]) -> None:
        if self._subscribing.get(channel) is done:
            del self._subscribing[channel]
        if not done.cancelled():
            done.exception()  # retrieved: the joiners that waited got it

    async def leave(self, session_id: str, channel: str) -> None:
        check_channel(channel)
        channels = self._joined.get(session_id)
        if channels is None or channel not in channels:
            return
        channels.discard(channel)
        self._drop(channel, session_id)

    def _drop(self, channel: str, session_id: str) -> None:
        members = self._channels.get(channel)
        if members is None:
            return
        members.pop(session_id, None)
        if not members:
            del self._channels[channel]
            if self.link is not None:
                self._unsubscribe_later(channel)

    def _unsubscribe_later(self, channel: str) -> None:
        link = self.link
        assert link is not None
        task = asyncio.get_running_loop().create_task(link.unsubscribe(channel))
        task.add_done_callback(_ignore_result)

    # ----------------------------------------------------------------- sending

    def publish(
        self, channel: str, body: Any, exclude: str | Collection[str] | None = None
    ) -> None:
        """Send ``body`` to every member of ``channel`` in every process, but ``exclude``."""
        check_channel(channel)
        message = Outgoing.of(body)
        excluded = _exclusion(exclude)
        self.deliver_local(channel, message, excluded)
        if self.link is not None:
            self.link.publish(channel, message, excluded)

    def send(self, session_id: str, body: Any) -> None:
        """Send ``body`` to one session, connected to this process or another."""
        if not isinstance(session_id, str) or not session_id:
            raise ChannelError(f"a session id is a non-empty str, not {session_id!r}")
        message = Outgoing.of(body)
        member = self._members.get(session_id)
        if member is not None:
            member.deliver(message)
        elif self.link is not None:
            self.link.send(session_id, message)

    def deliver_local(self, channel: str, message: Outgoing, exclude: frozenset[str]) -> None:
        members = self._channels.get(channel)
        if not members:
            return
        for session_id, member in list(members.items()):
            if session_id not in exclude:
                member.deliver(message)

    def deliver_direct(self, session_id: str, message: Outgoing) -> None:
        member = self._members.get(session_id)
        if member is not None:
            member.deliver(message)


def _ignore_result(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("unsubscribe failed: %s", task.exception())
