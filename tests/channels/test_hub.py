"""The hub of one process, on its own: fake members and a recording link (our own
interfaces), no sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

import pytest

from lolo_runtime.channels.hub import MAX_CHANNEL_NAME, Hub, Outgoing
from lolo_runtime.errors import ChannelError
from lolo_runtime.nodes.wsframes import OP_BINARY, OP_TEXT


class FakeMember:
    """A client that records what it is handed."""

    def __init__(self, session_id: str) -> None:
        self._session_id = session_id
        self.got: list[Outgoing] = []

    @property
    def session_id(self) -> str:
        return self._session_id

    def deliver(self, message: Outgoing) -> None:
        self.got.append(message)

    @property
    def texts(self) -> list[str]:
        return [m.payload.decode() for m in self.got]


class RecordingLink:
    """A link that remembers every call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def subscribe(self, channel: str) -> None:
        self.calls.append(("subscribe", channel))

    async def unsubscribe(self, channel: str) -> None:
        self.calls.append(("unsubscribe", channel))

    def publish(self, channel: str, message: Outgoing, exclude: frozenset[str]) -> None:
        self.calls.append(("publish", channel, message, exclude))

    def send(self, session_id: str, message: Outgoing) -> None:
        self.calls.append(("send", session_id, message))


def hub_with(*ids: str, link: RecordingLink | None = None) -> tuple[Hub, list[FakeMember]]:
    hub = Hub(link)
    members = [FakeMember(session_id) for session_id in ids]
    for member in members:
        hub.register(member)
    return hub, members


async def settle() -> None:
    """Let the hub's background unsubscribe tasks run."""
    for _ in range(3):
        await asyncio.sleep(0)


def test_members_of_a_channel_get_what_is_published_to_it_and_nobody_else() -> None:
    async def scenario() -> list[FakeMember]:
        hub, members = hub_with("a", "b", "c")
        await hub.join("a", "room")
        await hub.join("b", "room")
        await hub.join("c", "other")
        hub.publish("room", "hello")
        hub.publish("other", "elsewhere")
        hub.publish("empty", "to nobody")  # no members: nothing happens, no error
        return members

    a, b, c = asyncio.run(scenario())
    assert a.texts == ["hello"]
    assert b.texts == ["hello"]
    assert c.texts == ["elsewhere"]


@pytest.mark.parametrize(
    ("exclude", "receivers"),
    [
        (None, {"a", "b", "c"}),
        ("a", {"b", "c"}),
        (["a", "c"], {"b"}),
        (("b",), {"a", "c"}),
        ({"a", "b", "c"}, set()),
        ([], {"a", "b", "c"}),
        ("nobody", {"a", "b", "c"}),
    ],
)
def test_publish_leaves_out_the_excluded_sessions(
    exclude: str | Collection[str] | None, receivers: set[str]
) -> None:
    async def scenario() -> list[FakeMember]:
        hub, members = hub_with("a", "b", "c")
        for member in members:
            await hub.join(member.session_id, "room")
        hub.publish("room", "x", exclude=exclude)
        return members

    members = asyncio.run(scenario())
    assert {m.session_id for m in members if m.texts == ["x"]} == receivers
    assert all(m.texts in ([], ["x"]) for m in members)


def test_a_session_id_that_is_a_prefix_of_another_excludes_only_itself() -> None:
    """A str is one session id, not a collection of characters."""

    async def scenario() -> list[FakeMember]:
        hub, members = hub_with("ab", "a", "b")
        for member in members:
            await hub.join(member.session_id, "room")
        hub.publish("room", "x", exclude="ab")
        return members

    ab, a, b = asyncio.run(scenario())
    assert (ab.texts, a.texts, b.texts) == ([], ["x"], ["x"])


def test_leave_stops_delivery_and_leaving_twice_or_unjoined_is_harmless() -> None:
    async def scenario() -> list[FakeMember]:
        hub, members = hub_with("a", "b")
        await hub.join("a", "room")
        await hub.join("b", "room")
        hub.publish("room", "1")
        await hub.leave("a", "room")
        await hub.leave("a", "room")
        await hub.leave("b", "never-joined")
        await hub.leave("ghost", "room")
        hub.publish("room", "2")
        assert hub.local_members("room") == 1
        return members

    a, b = asyncio.run(scenario())
    assert a.texts == ["1"]
    assert b.texts == ["1", "2"]


def test_joining_twice_delivers_once() -> None:
    async def scenario() -> FakeMember:
        hub, (a,) = hub_with("a")
        await hub.join("a", "room")
        await hub.join("a", "room")
        hub.publish("room", "once")
        assert hub.local_members("room") == 1
        return a

    assert asyncio.run(scenario()).texts == ["once"]


def test_unregister_leaves_every_channel() -> None:
    async def scenario() -> tuple[Hub, list[FakeMember]]:
        hub, members = hub_with("a", "b")
        for channel in ("one", "two", "three"):
            await hub.join("a", channel)
        await hub.join("b", "two")
        hub.unregister("a")
        for channel in ("one", "two", "three"):
            hub.publish(channel, channel)
        hub.send("a", "direct")
        hub.unregister("a")  # twice: harmless
        return hub, members

    hub, (a, b) = asyncio.run(scenario())
    assert a.texts == []
    assert b.texts == ["two"]
    assert hub.channels == ["two"]
    assert not hub.is_local("a")
    assert hub.is_local("b")


def test_only_a_registered_session_can_join() -> None:
    async def scenario() -> Hub:
        hub, _ = hub_with("a")
        with pytest.raises(ChannelError, match="ghost"):
            await hub.join("ghost", "room")
        hub.unregister("a")
        with pytest.raises(ChannelError):
            await hub.join("a", "room")
        return hub

    hub = asyncio.run(scenario())
    assert hub.channels == []
    assert hub.local_members("room") == 0


@pytest.mark.parametrize("bad", ["", None, 7, b"room", ["room"], "x" * (MAX_CHANNEL_NAME + 1)])
def test_bad_channel_names_are_refused_everywhere(bad: Any) -> None:
    async def scenario() -> FakeMember:
        hub, (a,) = hub_with("a")
        with pytest.raises(ChannelError):
            await hub.join("a", bad)
        with pytest.raises(ChannelError):
            await hub.leave("a", bad)
        with pytest.raises(ChannelError):
            hub.publish(bad, "x")
        return a

    a = asyncio.run(scenario())
    assert a.got == []


def test_the_longest_allowed_channel_name_works() -> None:
    name = "é" * MAX_CHANNEL_NAME

    async def scenario() -> FakeMember:
        hub, (a,) = hub_with("a")
        await hub.join("a", name)
        hub.publish(name, "ok")
        return a

    assert asyncio.run(scenario()).texts == ["ok"]


def test_send_reaches_one_local_session_whether_or_not_it_joined_anything() -> None:
    link = RecordingLink()

    async def scenario() -> list[FakeMember]:
        hub, members = hub_with("a", "b", link=link)
        hub.send("b", {"to": "b"})
        return members

    a, b = asyncio.run(scenario())
    assert a.got == []
    assert b.texts == ['{"to":"b"}']
    assert link.calls == []  # a local session: the other processes are not bothered


def test_send_to_a_session_elsewhere_goes_over_the_link_or_nowhere() -> None:
    link = RecordingLink()
    hub, _ = hub_with("a", link=link)
    hub.send("far", "hi")
    [(kind, session_id, message)] = link.calls
    assert (kind, session_id, message.opcode, message.payload) == ("send", "far", OP_TEXT, b"hi")

    alone, (a,) = hub_with("a")
    alone.send("far", "hi")  # no link: dropped quietly
    assert a.got == []


@pytest.mark.parametrize("bad", ["", None, 3])
def test_send_needs_a_session_id(bad: Any) -> None:
    hub, _ = hub_with("a")
    with pytest.raises(ChannelError):
        hub.send(bad, "x")


def test_published_messages_arrive_in_publish_order() -> None:
    async def scenario() -> list[FakeMember]:
        hub, members = hub_with("a", "b", "c")
        for member in members:
            await hub.join(member.session_id, "room")
        for i in range(500):
            hub.publish("room", f"m{i}", exclude=members[i % 3].session_id)
        return members

    for index, member in enumerate(asyncio.run(scenario())):
        assert member.texts == [f"m{i}" for i in range(500) if i % 3 != index]


def test_a_body_is_encoded_once_for_every_member_and_the_link() -> None:
    link = RecordingLink()

    async def scenario() -> list[FakeMember]:
        hub, members = hub_with(*(f"s{i}" for i in range(50)), link=link)
        for member in members:
            await hub.join(member.session_id, "room")
        hub.publish("room", {"n": 1, "text": "héllo"})
        return members

    members = asyncio.run(scenario())
    [message] = members[0].got
    assert all(len(m.got) == 1 and m.got[0] is message for m in members)
    publishes = [call for call in link.calls if call[0] == "publish"]
    assert publishes == [("publish", "room", message, frozenset())]
    assert message.opcode == OP_TEXT
    assert message.payload == '{"n":1,"text":"héllo"}'.encode()
    frame = message.frame
    assert message.frame is frame  # the frame is built once too
    assert frame == bytes((0x81, len(message.payload))) + message.payload


def test_bytes_go_as_binary_and_str_as_text() -> None:
    assert (Outgoing.of(b"\x00\xff").opcode, Outgoing.of(b"\x00\xff").payload) == (
        OP_BINARY,
        b"\x00\xff",
    )
    assert Outgoing.of("a").opcode == OP_TEXT
    assert Outgoing.of(b"x" * 70000).frame[:2] == bytes((0x82, 127))


def test_the_link_subscribes_on_the_first_local_join_and_unsubscribes_after_the_last_leave() -> (
    None
):
    link = RecordingLink()

    async def scenario() -> list[tuple[Any, ...]]:
        hub, _ = hub_with("a", "b", "c", link=link)
        await hub.join("a", "room")
        await hub.join("b", "room")
        await hub.join("a", "room")
        await hub.leave("a", "room")
        await settle()
        log_mid = list(link.calls)
        hub.unregister("b")  # the last member goes without calling leave
        await settle()
        await hub.join("c", "room")  # a channel emptied and joined again: subscribed again
        await hub.leave("c", "room")
        await settle()
        await hub.join("c", "lobby")
        await hub.join("c", "room")
        hub.unregister("c")
        await settle()
        return log_mid

    log_mid = asyncio.run(scenario())
    assert log_mid == [("subscribe", "room")]
    assert link.calls[:5] == [
        ("subscribe", "room"),
        ("unsubscribe", "room"),
        ("subscribe", "room"),
        ("unsubscribe", "room"),
        ("subscribe", "lobby"),
    ]
    assert link.calls[5] == ("subscribe", "room")
    assert sorted(link.calls[6:]) == [("unsubscribe", "lobby"), ("unsubscribe", "room")]


def test_join_returns_only_once_the_link_has_subscribed() -> None:
    """A link that takes its time (a Redis round trip): join waits for it."""
    order: list[str] = []

    class SlowLink(RecordingLink):
        async def subscribe(self, channel: str) -> None:
            await asyncio.sleep(0.05)
            order.append("subscribed")

    async def scenario() -> None:
        hub, _ = hub_with("a", link=SlowLink())
        await hub.join("a", "room")
        order.append("joined")

    asyncio.run(scenario())
    assert order == ["subscribed", "joined"]


def test_every_joiner_waits_for_the_subscription_not_only_the_first() -> None:
    """Two clients join a channel at once: the second's join, too, returns only once the
    link has subscribed (else a message from another process could still miss it)."""
    order: list[str] = []

    class SlowLink(RecordingLink):
        async def subscribe(self, channel: str) -> None:
            await asyncio.sleep(0.05)
            order.append("subscribed")

    async def scenario() -> None:
        hub, _ = hub_with("a", "b", "c", link=SlowLink())

        async def join(session_id: str) -> None:
            await hub.join(session_id, "room")
            order.append(f"{session_id} joined")

        await asyncio.gather(join("a"), join("b"))
        await join("c")  # subscribed already: no wait

    asyncio.run(scenario())
    assert order == ["subscribed", "a joined", "b joined", "c joined"]


def test_a_link_that_fails_to_subscribe_fails_every_waiting_join_but_local_delivery_works() -> None:
    class FailingLink(RecordingLink):
        async def subscribe(self, channel: str) -> None:
            await asyncio.sleep(0.01)
            raise ConnectionError("no Redis")

    async def scenario() -> tuple[list[Any], list[FakeMember]]:
        hub, members = hub_with("a", "b", link=FailingLink())
        results = await asyncio.gather(
            hub.join("a", "room"), hub.join("b", "room"), return_exceptions=True
        )
        hub.publish("room", "local")
        return list(results), members

    results, (a, b) = asyncio.run(scenario())
    assert [type(result) for result in results] == [ConnectionError, ConnectionError]
    assert a.texts == b.texts == ["local"]


def test_publish_goes_to_the_link_with_its_exclusion_and_not_when_local_only() -> None:
    link = RecordingLink()

    async def scenario() -> None:
        hub, _ = hub_with("a", "b", link=link)
        await hub.join("a", "room")
        hub.publish("room", "x", exclude=["a", "b"])
        hub.publish("nobody-here", "y")  # other processes may have members

    asyncio.run(scenario())
    publishes = [(c[1], c[2].payload, c[3]) for c in link.calls if c[0] == "publish"]
    assert publishes == [("room", b"x", frozenset({"a", "b"})), ("nobody-here", b"y", frozenset())]


def test_messages_from_the_link_reach_local_members_but_the_excluded() -> None:
    async def scenario() -> list[FakeMember]:
        hub, members = hub_with("a", "b")
        await hub.join("a", "room")
        await hub.join("b", "room")
        hub.deliver_local("room", Outgoing.of("from afar"), frozenset({"b"}))
        hub.deliver_local("unknown", Outgoing.of("lost"), frozenset())
        hub.deliver_direct("b", Outgoing.of("just b"))
        hub.deliver_direct("gone", Outgoing.of("nobody"))
        return members

    a, b = asyncio.run(scenario())
    assert a.texts == ["from afar"]
    assert b.texts == ["just b"]


def test_a_member_that_unregisters_while_a_message_is_delivered_does_not_break_it() -> None:
    """Delivery to one member may close another (a full buffer): the loop goes on."""

    async def scenario() -> list[FakeMember]:
        hub = Hub()

        class Closer(FakeMember):
            def deliver(self, message: Outgoing) -> None:
                super().deliver(message)
                hub.unregister("b")

        members = [Closer("a"), FakeMember("b"), FakeMember("c")]
        for member in members:
            hub.register(member)
            await hub.join(member.session_id, "room")
        hub.publish("room", "x")
        hub.publish("room", "y")
        return members

    a, b, c = asyncio.run(scenario())
    assert a.texts == ["x", "y"]
    assert b.texts in (["x"], [])
    assert c.texts == ["x", "y"]
