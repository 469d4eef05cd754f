from __future__ import annotations

import pytest

from lolo_runtime.ports import Ports


def test_ports_read_as_attributes_and_items() -> None:
    ports = Ports(["req", "in", "close"])
    assert ports.req == "req"
    assert ports["in"] == "in"
    assert list(ports) == ["req", "in", "close"]
    assert "close" in ports
    assert "other" not in ports
    assert 3 not in ports
    assert len(ports) == 3


def test_unknown_port_lists_the_known_ones() -> None:
    ports = Ports(["a", "b"])
    with pytest.raises(AttributeError, match="no port 'c'; the ports are a, b"):
        _ = ports.c
    with pytest.raises(KeyError, match="no port 'c'"):
        _ = ports["c"]


def test_ports_are_read_only_and_comparable() -> None:
    ports = Ports(["a"])
    with pytest.raises(AttributeError):
        ports.a = "b"
    assert ports == Ports(["a"])
    assert ports != Ports(["b"])
    assert repr(Ports([])) == "Ports()"
