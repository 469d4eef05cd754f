"""Frame encoding for fan-out, checked against the websockets library's own parser."""

from __future__ import annotations

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from lolo_runtime.nodes.wsframes import FrameCache, frame_header, payload_of


def parse(data: bytes) -> Frame:
    """Read ``data`` as a client of an open connection would (the Sans-I/O layer's
    documented ``receive_data``/``events_received``)."""
    client = ClientProtocol(parse_uri("ws://localhost/"), state=State.OPEN, max_size=None)
    client.receive_data(data)
    events = client.events_received()
    assert len(events) == 1, f"expected one whole frame, got {events!r}"
    frame = events[0]
    assert isinstance(frame, Frame)
    return frame


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_frames_of_every_length_class_parse_back(size: int) -> None:
    body = "x" * size
    frame = parse(FrameCache().frame(body))
    assert frame.opcode is Opcode.TEXT
    assert frame.fin
    assert frame.data == body.encode()


def test_bodies_map_to_text_binary_and_json() -> None:
    assert payload_of("héllo") == (1, "héllo".encode())
    assert payload_of(b"\x00\xff") == (2, b"\x00\xff")
    assert payload_of({"connected": True, "ids": [1, 2]}) == (1, b'{"connected":true,"ids":[1,2]}')
    assert parse(FrameCache().frame(bytearray(b"ab"))).opcode is Opcode.BINARY


def test_header_is_rfc6455() -> None:
    assert frame_header(1, 5) == b"\x81\x05"
    assert frame_header(2, 300) == b"\x82\x7e\x01\x2c"
    assert frame_header(1, 1 << 16) == b"\x81\x7f" + (1 << 16).to_bytes(8, "big")


def test_the_same_text_is_encoded_once_even_as_another_object() -> None:
    cache = FrameCache()
    first = cache.frame("hello there")
    again = cache.frame("".join(["hello", " there"]))  # equal, not identical
    assert again is first
    assert cache.frame("other") != first


def test_mutable_bodies_are_encoded_every_time() -> None:
    cache = FrameCache()
    body = {"n": 1}
    first = cache.frame(body)
    body["n"] = 2
    assert parse(cache.frame(body)).data == b'{"n":2}'
    assert parse(first).data == b'{"n":1}'
