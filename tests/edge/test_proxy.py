"""``edge/proxy.py``: whose forwarding headers are believed, and what they say. No sockets."""

from __future__ import annotations

import pytest

from lolo_runtime.edge.proxy import TrustedProxies, format_peer


def test_entries_are_addresses_networks_or_everyone() -> None:
    proxies = TrustedProxies(["10.0.0.0/8", " 127.0.0.1 ", "", "::1", "192.168.1.7/24"])
    assert proxies.trusts("10.20.30.40")
    assert proxies.trusts("127.0.0.1")
    assert proxies.trusts("::1")
    assert proxies.trusts("192.168.1.200")  # not strict: the host bits are dropped
    assert not proxies.trusts("11.0.0.1")
    assert not proxies.trusts("127.0.0.2")
    assert not proxies.trusts("not-an-address")
    assert not proxies.everyone
    assert TrustedProxies(["*"]).trusts("203.0.113.9")


def test_a_bad_entry_is_refused() -> None:
    with pytest.raises(ValueError):
        TrustedProxies(["10.0.0.300"])


PROXY = TrustedProxies(["10.0.0.0/8"])


def test_an_untrusted_peer_is_itself_whatever_it_claims() -> None:
    headers = [("x-forwarded-for", "1.2.3.4"), ("x-forwarded-proto", "https")]
    assert PROXY.client("203.0.113.9", 5000, "http", headers) == ("203.0.113.9:5000", "http")


def test_a_trusted_proxy_names_the_client() -> None:
    headers = [("x-forwarded-for", "198.51.100.7"), ("x-forwarded-proto", "https")]
    assert PROXY.client("10.0.0.2", 5000, "http", headers) == ("198.51.100.7", "https")


def test_the_nearest_hop_that_is_not_a_trusted_proxy_is_the_client() -> None:
    """The left of X-Forwarded-For is whatever the client wrote: only hops added by
    trusted proxies (from the right) are believed."""
    headers = [("x-forwarded-for", "6.6.6.6, 198.51.100.7"), ("x-forwarded-for", "10.1.1.1")]
    assert PROXY.client("10.0.0.2", 1, "http", headers)[0] == "198.51.100.7"


def test_when_every_hop_is_trusted_the_first_is_the_client() -> None:
    headers = [("x-forwarded-for", "10.9.9.9, 10.1.1.1")]
    assert PROXY.client("10.0.0.2", 1, "http", headers)[0] == "10.9.9.9"


def test_without_forwarding_headers_a_trusted_proxy_is_the_peer() -> None:
    assert PROXY.client("10.0.0.2", 80, "https", []) == ("10.0.0.2:80", "https")
    assert PROXY.client("10.0.0.2", 80, "http", [("x-forwarded-for", " , ")]) == (
        "10.0.0.2:80",
        "http",
    )


@pytest.mark.parametrize(
    ("values", "scheme"),
    [
        (["https"], "https"),
        (["HTTPS"], "https"),
        (["wss"], "https"),
        (["ws"], "http"),
        (["http, https"], "https"),  # the nearest proxy's word is last
        (["https", "http"], "http"),
        (["gopher"], "http"),  # nonsense is ignored
    ],
)
def test_the_forwarded_scheme(values: list[str], scheme: str) -> None:
    headers = [("x-forwarded-proto", value) for value in values]
    assert PROXY.client("10.0.0.2", 1, "http", headers)[1] == scheme


def test_peers_are_formatted_host_colon_port() -> None:
    assert format_peer(None) is None
    assert format_peer(("127.0.0.1", 80)) == "127.0.0.1:80"
    assert format_peer(("::1", 8080)) == "[::1]:8080"
    assert TrustedProxies(["::1"]).client("::1", 9, "http", []) == ("[::1]:9", "http")
