"""Who may see the inspector: the key (digest, constant-time compare), loopback clients
and Host names when there is no key, and same-site pages on the socket."""

from __future__ import annotations

import pytest

from lolo_runtime.edge.types import HttpRequest
from lolo_runtime.inspector.access import (
    Access,
    is_loopback_address,
    is_loopback_name,
    origin_refusal,
    presented_key,
)

KEY = "k" * 24


def request(peer: str = "127.0.0.1:5000", **headers: str) -> HttpRequest:
    head = {"host": "127.0.0.1:4000", **headers}
    return HttpRequest("GET", "/_lolo/metrics", "", list(head.items()), peer=peer)


@pytest.mark.parametrize(
    ("peer", "loopback"),
    [
        ("127.0.0.1:1", True),
        ("127.8.9.10:1", True),
        ("[::1]:1", True),
        ("10.0.0.1:1", False),
        ("[2001:db8::1]:1", False),
        ("[::ffff:10.0.0.1]:1", False),
        ("localhost:1", False),  # a peer is an address, never a name
        (None, False),
    ],
)
def test_loopback_peers(peer: str | None, loopback: bool) -> None:
    assert is_loopback_address(peer) is loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1:4000", True),
        ("localhost:4000", True),
        ("LOCALHOST", True),
        ("app.localhost:4000", True),
        ("[::1]:4000", True),
        ("::1", True),
        ("evil.example:4000", False),
        ("127.0.0.1.nip.io", False),
        ("", False),
    ],
)
def test_loopback_host_names(host: str, loopback: bool) -> None:
    assert is_loopback_name(host) is loopback


def test_without_a_key_only_this_machine_gets_in() -> None:
    access = Access(None)
    assert not access.needs_key
    assert access.http_refusal(request()) is None
    for refused in (request(peer="10.1.2.3:5000"), request(host="rebound.example:4000")):
        answer = access.http_refusal(refused)
        assert answer is not None and answer.status == 403


def test_with_a_key_every_figure_request_must_show_it() -> None:
    access = Access(KEY)
    assert access.needs_key
    assert access.http_refusal(request(authorization=f"Bearer {KEY}")) is None
    assert access.http_refusal(request(authorization=f"bearer   {KEY}")) is None
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": KEY}):
        answer = access.http_refusal(request(**headers))
        assert answer is not None and answer.status == 401
        assert ("www-authenticate", 'Bearer realm="lolo-inspector"') in answer.headers
    # With a key, where the client is does not matter (a proxy, another machine).
    assert access.http_refusal(request(peer="10.1.2.3:5", authorization=f"Bearer {KEY}")) is None


def test_only_a_digest_of_the_key_is_kept() -> None:
    access = Access(KEY)
    assert KEY not in repr(vars(access))
    assert access.key_matches(KEY)
    assert not access.key_matches(KEY + "x")
    assert not access.key_matches(None)
    assert presented_key(f"Bearer {KEY}") == KEY
    assert presented_key(KEY) is None
    assert presented_key("Bearer ") is None


def test_a_page_of_another_site_may_not_open_the_socket() -> None:
    assert origin_refusal(request()) is None  # not a browser
    assert origin_refusal(request(origin="http://127.0.0.1:4000")) is None
    for origin in ("http://evil.example", "http://127.0.0.1:4001", "null"):
        answer = origin_refusal(request(origin=origin))
        assert answer is not None and answer.status == 403
