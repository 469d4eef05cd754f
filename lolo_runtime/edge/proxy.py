"""``--proxy-headers``: believe ``X-Forwarded-For``/``-Proto`` from trusted proxies only."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """Addresses (or networks, ``10.0.0.0/8``) whose forwarding headers are believed."""

    def __init__(self, entries: Iterable[str]):
        self.networks: list[_Network] = []
        self.everyone = False
        for entry in entries:
            entry = entry.strip()
            if entry == "*":
                self.everyone = True
            elif entry:
                self.networks.append(ipaddress.ip_network(entry, strict=False))

    def trusts(self, host: str) -> bool:
        if self.everyone:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def client(
        self, host: str, port: int, scheme: str, headers: list[tuple[str, str]]
    ) -> tuple[str, str]:
        """``(peer, scheme)`` as the client saw them, when ``host`` is a trusted proxy."""
        peer = _format(host, port)
        if not self.trusts(host):
            return peer, scheme
        forwarded_for = [v for k, v in headers if k == "x-forwarded-for"]
        if forwarded_for:
            hops = [hop.strip() for hop in ",".join(forwarded_for).split(",") if hop.strip()]
            # The nearest hop that is not itself a trusted proxy is the client.
            for hop in reversed(hops):
                if not self.trusts(hop):
                    peer = hop
                    break
            else:
                if hops:
                    peer = hops[0]
        proto = [v for k, v in headers if k == "x-forwarded-proto"]
        if proto:
            value = proto[-1].split(",")[-1].strip().lower()
            if value in ("http", "https", "ws", "wss"):
                scheme = {"ws": "http", "wss": "https"}.get(value, value)
        return peer, scheme


def _format(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def format_peer(peer: tuple[str, int] | None) -> str | None:
    return None if peer is None else _format(peer[0], peer[1])
