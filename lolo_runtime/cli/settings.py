"""From parsed options (and the environment) to what a command uses: the port, the
state store, the Redis URL, the inspector's key. Wrong values are :class:`UsageError`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

from lolo_runtime.cli.parsers import port_number
from lolo_runtime.cli.status import DEFAULT_PORT
from lolo_runtime.errors import UsageError
from lolo_runtime.loader import Flow
from lolo_runtime.state.base import StateBackend
from lolo_runtime.state.paths import resolve_state_path


def choose_port(cli_port: int | None, environ: Mapping[str, str], flow: Flow) -> int:
    """--port, else $PORT, else the flow file's ``port:``, else 4000."""
    if cli_port is not None:
        return cli_port
    env_port = environ.get("PORT")
    if env_port:
        try:
            return port_number(env_port)
        except ValueError:
            raise UsageError(
                f"$PORT must be a port number from 0 to 65535, not {env_port!r}"
            ) from None
    return flow.spec.port or DEFAULT_PORT


def redis_url(options: argparse.Namespace, environ: Mapping[str, str]) -> str | None:
    """--redis, else $LOLO_REDIS_URL unless --state chose a file; None: SQLite.

    --state and --redis together, an empty URL, or one that is not redis://, rediss:// or
    unix:// are usage errors."""
    if options.redis is not None:
        if options.state is not None:
            raise UsageError("--state and --redis choose different stores; give one of them")
        url: str | None = options.redis
    elif options.state is not None:
        return None  # an explicit file wins over $LOLO_REDIS_URL
    else:
        url = environ.get("LOLO_REDIS_URL") or None  # set but empty: not set
        if url is None:
            return None
    if not url or not url.startswith(("redis://", "rediss://", "unix://")):
        from lolo_runtime.state.redisstore import redact_url

        shown = redact_url(url) if url else "an empty string"
        raise UsageError(
            f"the Redis URL must start with redis://, rediss:// or unix:// "
            f"(e.g. redis://localhost:6379/0), not {shown}"
        )
    return url


INSPECT_KEY_ENV = "LOLO_INSPECT_KEY"


def inspector_key(
    options: argparse.Namespace, environ: Mapping[str, str], behind_proxy: bool
) -> str | None:
    """The key ``--inspect`` asks for: $LOLO_INSPECT_KEY, if set. Without one the
    inspector is open, so it is allowed only where no one else can reach it: on a
    loopback --host, not behind a proxy, and in one process (its figures are that
    process's own; --workers would show a random worker's)."""
    if not options.inspect:
        return None
    if options.workers > 1:
        raise UsageError(
            "--inspect shows one process's figures; run it without --workers "
            "(or scrape each worker on its own)"
        )
    key = environ.get(INSPECT_KEY_ENV) or None
    if key is not None:
        if len(key) < 16:
            raise UsageError(
                f"${INSPECT_KEY_ENV} is too short to guess-proof: use 16 characters or more"
            )
        return key
    if behind_proxy or not is_loopback(options.host):
        where = "behind --proxy-headers" if behind_proxy else f"on --host {options.host}"
        raise UsageError(
            f"--inspect {where} would show the app's logs to anyone who can reach it: "
            f"set ${INSPECT_KEY_ENV} to a secret (e.g. 'openssl rand -hex 24'), or "
            "listen on 127.0.0.1"
        )
    return None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or 'localhost') can be reached only from this machine."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def state_backend(options: argparse.Namespace, sync: str = "normal") -> StateBackend:
    """The store the options name: Redis (--redis / $LOLO_REDIS_URL) or a SQLite file."""
    url = redis_url(options, os.environ)
    if url is not None:
        from lolo_runtime.state.redisstore import RedisBackend

        return RedisBackend(url)
    from lolo_runtime.state import SQLiteBackend

    return SQLiteBackend(resolve_state_path(options.state, os.environ), synchronous=sync)
