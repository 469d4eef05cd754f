"""Deployment options of ``lolo-run``: TLS certificates and the event loop."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path

from lolo_runtime.errors import LoloError


class UsageError(LoloError):
    """A command-line option that cannot be honoured (said in the option's terms)."""


def ssl_context(certfile: Path | None, keyfile: Path | None) -> ssl.SSLContext | None:
    """A server TLS context from PEM files, or None when no certificate is given."""
    if certfile is None:
        if keyfile is not None:
            raise UsageError("--ssl-keyfile needs --ssl-certfile")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except FileNotFoundError as exc:
        raise UsageError(f"--ssl-certfile/--ssl-keyfile: {exc.filename}: no such file") from None
    except (ssl.SSLError, OSError) as exc:
        raise UsageError(
            f"cannot use the certificate {certfile}"
            + (f" with the key {keyfile}" if keyfile else "")
            + f": {getattr(exc, 'reason', None) or exc}") from None
    return context


def choose_loop(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop factory for ``--loop`` (auto: uvloop when installed)."""
    if name == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        if name == "uvloop":
            raise UsageError("--loop uvloop: uvloop is not installed "
                             "(pip install 'lolo-runtime[uvloop]')") from None
        return asyncio.new_event_loop
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
