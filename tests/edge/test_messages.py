"""``edge/messages.py``: frames to whole messages, without sockets."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode

from lolo_runtime.edge.messages import MAX_FRAGMENTS, MessageAssembler, MessageError


def test_a_single_frame_is_a_message_text_decoded_binary_kept() -> None:
    assembler = MessageAssembler()
    assert assembler.feed(Frame(Opcode.TEXT, "héllo".encode())) == ("héllo", 6)
    assert assembler.feed(Frame(Opcode.BINARY, b"\x00\xff")) == (b"\x00\xff", 2)


def test_fragments_are_joined_and_decoded_once_whole() -> None:
    assembler = MessageAssembler()
    snowman = "☃".encode()  # three bytes, split across two frames
    assert assembler.feed(Frame(Opcode.TEXT, b"a" + snowman[:1], fin=False)) is None
    assert assembler.feed(Frame(Opcode.CONT, snowman[1:], fin=False)) is None
    assert assembler.feed(Frame(Opcode.CONT, b"b")) == ("a☃b", 5)
    # and the next message starts afresh
    assert assembler.feed(Frame(Opcode.BINARY, b"x")) == (b"x", 1)


def test_control_frames_pass_through_without_a_message() -> None:
    assembler = MessageAssembler()
    assert assembler.feed(Frame(Opcode.TEXT, b"a", fin=False)) is None
    assert assembler.feed(Frame(Opcode.PING, b"p")) is None
    assert assembler.feed(Frame(Opcode.CONT, b"b")) == ("ab", 2)


def test_invalid_utf8_is_1007() -> None:
    with pytest.raises(MessageError) as failed:
        MessageAssembler().feed(Frame(Opcode.TEXT, b"\xff\xfe"))
    assert failed.value.code == 1007
    assert "invalid UTF-8" in failed.value.reason


def test_too_many_fragments_is_1009_whatever_their_size() -> None:
    assembler = MessageAssembler()
    assembler.feed(Frame(Opcode.BINARY, b"", fin=False))
    for _ in range(MAX_FRAGMENTS - 1):
        assert assembler.feed(Frame(Opcode.CONT, b"", fin=False)) is None
    with pytest.raises(MessageError) as failed:
        assembler.feed(Frame(Opcode.CONT, b"", fin=False))
    assert failed.value.code == 1009
