"""Deployment options of ``lolo-run``: TLS certificates, trusted proxies, the event loop.

Each is checked before anything listens, and a mistake is reported in the option's
terms (a :class:`UsageError`, exit status 2), never as a traceback.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path

from lolo_runtime.edge.proxy import TrustedProxies
from lolo_runtime.errors import UsageError

DEFAULT_TRUSTED_PROXIES = "127.0.0.1"


class _EncryptedKey(Exception):
    """The private key asks for a password: lolo-run never prompts for one."""


def _no_password() -> str:
    raise _EncryptedKey


def _check_readable(option: str, path: Path) -> None:
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise UsageError(f"{option} {path}: {reason}") from None


def ssl_context(certfile: Path | None, keyfile: Path | None) -> ssl.SSLContext | None:
    """A server TLS context from PEM files, or None when no certificate is given."""
    if certfile is None:
        if keyfile is not None:
            raise UsageError("--ssl-keyfile needs --ssl-certfile")
        return None
    _check_readable("--ssl-certfile", certfile)
    if keyfile is not None:
        _check_readable("--ssl-keyfile", keyfile)
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe.load_verify_locations(cafile=certfile)
    except ssl.SSLError:
        raise UsageError(f"--ssl-certfile {certfile}: no PEM certificate in it") from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    key_source = f"--ssl-keyfile {keyfile}" if keyfile is not None else f"--ssl-certfile {certfile}"
    try:
        context.load_cert_chain(certfile, keyfile, password=_no_password)
    except _EncryptedKey:
        raise UsageError(
            f"{key_source}: the private key is encrypted; give lolo-run an "
            "unencrypted key (openssl pkey -in KEY -out PLAIN.pem)"
        ) from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise UsageError(
                f"{key_source}: the private key does not match the certificate in {certfile}"
            ) from None
        if keyfile is None:
            raise UsageError(
                f"--ssl-certfile {certfile}: no private key in it; give the key with --ssl-keyfile"
            ) from None
        raise UsageError(f"--ssl-keyfile {keyfile}: no PEM private key in it") from None
    except OSError as exc:
        raise UsageError(f"--ssl-certfile {certfile}: {exc.strerror or exc}") from None
    return context


def trusted_proxies(
    enabled: bool, allow_ips: str | None, environ: Mapping[str, str]
) -> TrustedProxies | None:
    """``--proxy-headers`` and ``--forwarded-allow-ips`` (else ``$FORWARDED_ALLOW_IPS``,
    else 127.0.0.1) to the proxies whose forwarding headers are believed, or None."""
    if not enabled:
        if allow_ips is not None:
            raise UsageError("--forwarded-allow-ips needs --proxy-headers")
        return None
    if allow_ips is not None:
        source, value = "--forwarded-allow-ips", allow_ips
    elif environ.get("FORWARDED_ALLOW_IPS"):
        source, value = "$FORWARDED_ALLOW_IPS", environ["FORWARDED_ALLOW_IPS"]
    else:
        source, value = "the default", DEFAULT_TRUSTED_PROXIES
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    if not entries:
        raise UsageError(f"{source} is empty: give addresses or networks of proxies, or '*'")
    try:
        return TrustedProxies(entries)
    except ValueError as exc:
        raise UsageError(
            f"{source}: {exc} (give IP addresses or networks such as "
            "10.0.0.0/8, comma-separated, or '*')"
        ) from None


def choose_loop(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop factory for ``--loop`` (auto: uvloop when installed)."""
    if name == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        if name == "uvloop":
            raise UsageError(
                "--loop uvloop: uvloop is not installed "
                "(pip install 'lolo-runtime[uvloop]', or use --loop asyncio)"
            ) from None
        return asyncio.new_event_loop
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: which loop is running, for the start-up log line."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
