"""Who may see the inspector.

* With a key (``$LOLO_INSPECT_KEY``): every request for figures must show it, as
  ``Authorization: Bearer KEY`` over HTTP, or as the text ``Bearer KEY`` in the first
  message on the live WebSocket (so the key stays out of URLs, and out of logs: the log
  redaction masks whatever follows ``Bearer``). Only its SHA-256 digest is kept, and
  digests are compared in constant time.
* Without one (the CLI allows that only on a loopback ``--host``, not behind a proxy):
  a client whose address is not a loopback address gets 403, and so does a request whose
  ``Host`` is not a loopback name, which keeps a web page that rebinds its own DNS name
  to 127.0.0.1 from reading the figures.
* Always: a WebSocket handshake whose ``Origin`` is another site than the ``Host`` it
  asks for gets 403, so another tab cannot open the live socket from its own page.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from urllib.parse import urlsplit

from lolo_runtime.edge.responses import plain
from lolo_runtime.edge.types import HttpRequest, HttpResponse

BEARER = "bearer "
CLOSE_NEEDS_KEY = 4401
"""The live socket's close code for a missing or wrong key (HTTP's 401, in the 4000s)."""


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", errors="surrogatepass")).digest()


def is_loopback_address(peer: str | None) -> bool:
    """Whether ``host:port`` (or ``[v6]:port``) is a loopback address."""
    if not peer:
        return False
    host = peer.rsplit(":", 1)[0] if not peer.startswith("[") else peer[1:].split("]", 1)[0]
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(host: str) -> str:
    """The name in a ``Host`` value, without its port (and brackets), lower-cased."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback_name(host: str | None) -> bool:
    """Whether a ``Host`` header names this machine: ``localhost`` or a loopback address."""
    if not host:
        return False
    name = host_name(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def presented_key(text: str | None) -> str | None:
    """The key in ``Bearer KEY`` (an Authorization header, or a first message)."""
    if text is None or text[: len(BEARER)].lower() != BEARER:
        return None
    return text[len(BEARER) :].strip() or None


class Access:
    """The inspector's door: the key's digest (or None) and the checks made with it."""

    def __init__(self, key: str | None) -> None:
        self._digest = _digest(key) if key else None

    @property
    def needs_key(self) -> bool:
        return self._digest is not None

    def key_matches(self, presented: str | None) -> bool:
        """Whether ``presented`` is the key (always, when no key is set)."""
        if self._digest is None:
            return True
        return hmac.compare_digest(_digest(presented or ""), self._digest)

    def where_refusal(self, request: HttpRequest) -> HttpResponse | None:
        """403 for a client that may not even ask (no key set, and not this machine)."""
        if self._digest is None and not (
            is_loopback_address(request.peer) and is_loopback_name(request.header("host"))
        ):
            return plain(403, "The inspector answers this machine only.\n", *NO_STORE)
        return None

    def http_refusal(self, request: HttpRequest) -> HttpResponse | None:
        """403 (see :meth:`where_refusal`) or 401 (no key, or the wrong one), or None."""
        refusal = self.where_refusal(request)
        if refusal is not None or self._digest is None:
            return refusal
        if not self.key_matches(presented_key(request.header("authorization"))):
            return plain(
                401,
                "The inspector needs its key: 'Authorization: Bearer <$LOLO_INSPECT_KEY>'.\n",
                ("www-authenticate", 'Bearer realm="lolo-inspector"'),
                *NO_STORE,
            )
        return None


def origin_refusal(request: HttpRequest) -> HttpResponse | None:
    """403 for a browser handshake from a page of another site than the one asked."""
    origin = request.header("origin")
    if origin is None:
        return None  # not a browser: Origin is what a browser cannot leave out
    host = (request.header("host") or "").strip().lower()
    if not host or urlsplit(origin.strip()).netloc.lower() != host:
        return plain(403, "The inspector's socket is for its own page.\n", *NO_STORE)
    return None


NO_STORE = (("cache-control", "no-store"),)
