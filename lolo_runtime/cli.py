"""``lolo-run``: run, check and inspect flow files."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from lolo_runtime import __version__
from lolo_runtime.edge.listener import ListenError
from lolo_runtime.errors import FlowErrors, LoloError, UsageError
from lolo_runtime.loader import Flow, load_flow
from lolo_runtime.logs import configure_logging
from lolo_runtime.state.base import StateBackend
from lolo_runtime.state.paths import resolve_state_path

EXIT_OK, EXIT_FAILURE, EXIT_BAD_FLOW, EXIT_FORCED = 0, 1, 2, 3
DEFAULT_PORT = 4000
LOG_LEVELS = ("debug", "info", "warning", "error")
COMMANDS = ("run", "check", "schema", "keys", "openapi", "graph")
NO_PORT_LINE = "Running without a port"
"""Printed instead of 'Listening to port N' when no trigger of the flow listens."""
WORKER_ENV = "LOLO_WORKER"
"""Set by the ``--workers`` supervisor in each worker's environment (its number, from 1):
the worker binds its port with SO_REUSEPORT, beside its siblings."""

log = logging.getLogger("lolo.cli")

USAGE = """\
lolo-run [run] FLOW [--port N] [--host ADDR] [--state PATH] [--state-sync {normal,full}]
                [--log-level LEVEL] [--log-format {text,json}] [--shutdown-timeout SECONDS]
                [--ssl-certfile FILE [--ssl-keyfile FILE]] [--proxy-headers
                [--forwarded-allow-ips LIST]] [--loop {auto,asyncio,uvloop}]
                [--redis URL] [--workers N] [--inspect] [--reload]
       lolo-run check FLOW...
       lolo-run schema [--output FILE]
       lolo-run openapi FLOW [--output FILE]
       lolo-run graph FLOW [--format {mermaid,dot,svg}] [--output FILE]
       lolo-run keys {create,list,revoke} [--state PATH | --redis URL] ..."""

DESCRIPTION = """\
Run a Lolo-style app: a graph of async Python handlers joined by named ports,
started by triggers and described by a YAML flow file.

commands:
  run FLOW      load FLOW, check it, and serve it until Ctrl-C, SIGTERM or SIGHUP
                (the default: 'lolo-run FLOW' is 'lolo-run run FLOW')
  check FLOW    validate flow files without running them; exit 2 if any is wrong
  schema        print the flow files' JSON Schema, for editors
  openapi FLOW  print the OpenAPI 3.1 document of FLOW's HTTP API
  graph FLOW    draw FLOW's nodes and wires (Mermaid, DOT or SVG)
  keys          create, list and revoke the API keys that lolo/api-auth accepts

Run 'lolo-run COMMAND --help' for a command's options."""

EPILOG = """\
The port is --port, else $PORT, else the flow file's 'port:', else 4000.
The state store (ctx.state, and the API keys) is the SQLite file --state, else
$LOLO_STATE, else .lolo/state.sqlite3 under the current directory; apps sharing a
file keep their keys apart by app name. With --redis URL (or $LOLO_REDIS_URL, unless
--state is given) the state lives on that Redis server instead, and channels
(ctx.publish, lolo/broadcast) reach clients connected to any process of the app: run
as many as you like, on one machine (--workers N) or many.
On start-up it prints 'Listening to port N' once clients can connect (or, for a flow
where no trigger listens, such as timers only, 'Running without a port').
Ctrl-C, SIGTERM or SIGHUP shuts down gracefully: clients are closed with code 1001
and in-flight handlers get --shutdown-timeout seconds to finish. A second one stops
at once (the state store is still closed cleanly).

exit status: 0 after a clean shutdown or check, 1 when the app fails at run time
(for example the port is taken), 2 when a flow file is wrong (reported as
'path:line: message') or the command line is, 3 when a second signal cut the
shutdown short."""


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("flow", metavar="FLOW", type=Path, help="the flow file (YAML)")
    parser.add_argument(
        "--port",
        type=_port_number,
        metavar="N",
        help="port to listen on, 0 for any free one (default: see below)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s; 0.0.0.0 for all)",
    )
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="info",
        help="lowest level logged (default: %(default)s)",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="log lines as text, or as one JSON object each (default: text)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long shutdown waits for handlers (default: %(default)s)",
    )
    parser.add_argument(
        "--ssl-certfile",
        type=Path,
        metavar="FILE",
        help="serve HTTPS and WSS with this certificate chain (PEM)",
    )
    parser.add_argument(
        "--ssl-keyfile",
        type=Path,
        metavar="FILE",
        help="the certificate's private key, unencrypted (PEM; omit it when "
        "--ssl-certfile holds the key too)",
    )
    parser.add_argument(
        "--proxy-headers",
        action="store_true",
        help="behind a reverse proxy: take the client's address (ev['peer']) "
        "and scheme (ev['scheme'] of HTTP triggers) from X-Forwarded-For and "
        "X-Forwarded-Proto, when the connection comes from a trusted proxy",
    )
    parser.add_argument(
        "--forwarded-allow-ips",
        metavar="LIST",
        help="with --proxy-headers: the trusted proxies, as comma-separated "
        "addresses or networks, or '*' for any (default: "
        "$FORWARDED_ALLOW_IPS, else 127.0.0.1)",
    )
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="event loop: auto takes uvloop when it is installed, else "
        "asyncio; uvloop fails when it is not (default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=_worker_count,
        default=1,
        metavar="N",
        help="serve the port from N processes (SO_REUSEPORT) under one "
        "supervisor that restarts a crashed one; N > 1 needs --redis "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--inspect",
        action="store_true",
        help="serve the inspector at /_lolo/ (the graph, live counts, handler times, "
        "sessions, a log tail) and Prometheus text at /_lolo/metrics; without "
        "$LOLO_INSPECT_KEY only when --host is a loopback address (docs/inspector.md)",
    )
    parser.add_argument(
        "--reload",
        action="store_true",
        help="for development: watch the flow file and its handler modules and swap "
        "each good edit in without dropping WebSocket clients; a broken edit is "
        "reported and the running version kept (docs/reload.md)",
    )
    _add_state_option(parser, sync=True)


def _worker_count(text: str) -> int:
    count = int(text)
    if not 1 <= count <= 512:
        raise ValueError(text)
    return count


_worker_count.__name__ = "worker count (1 to 512)"


def _port_number(text: str) -> int:
    """``--port``: an int from 0 to 65535 (argparse reports the ValueError as usage)."""
    port = int(text)
    if not 0 <= port <= 65535:
        raise ValueError(text)
    return port


_port_number.__name__ = "port number"  # argparse says "invalid port number value: '70000'"


def _add_state_option(parser: argparse.ArgumentParser, sync: bool = False) -> None:
    parser.add_argument(
        "--state",
        type=Path,
        metavar="PATH",
        help="state store file (default: $LOLO_STATE, else .lolo/state.sqlite3)",
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="keep the state on this Redis server instead of a file, e.g. "
        "redis://:password@host:6379/0 (default: $LOLO_REDIS_URL, if set)",
    )
    if sync:
        parser.add_argument(
            "--state-sync",
            choices=("normal", "full"),
            default="normal",
            help="normal: an acknowledged write survives a crash or kill -9 of lolo-run; "
            "full: also a power loss, at the cost of a disk flush per commit "
            "(default: %(default)s)",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lolo-run",
        usage=USAGE,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lolo-run {__version__}")
    _add_run_options(parser)
    return parser


def build_command_parsers() -> dict[str, argparse.ArgumentParser]:
    raw = argparse.RawDescriptionHelpFormatter
    run = argparse.ArgumentParser(
        prog="lolo-run run", description="Serve a flow file.", epilog=EPILOG, formatter_class=raw
    )
    _add_run_options(run)
    check = argparse.ArgumentParser(
        prog="lolo-run check",
        description="Validate flow files without running them. Prints 'path:line: message' "
        "for each mistake and exits 2 if there is any; prints 'FLOW: ok' otherwise.",
    )
    check.add_argument("flows", metavar="FLOW", type=Path, nargs="+", help="flow files")
    schema = argparse.ArgumentParser(
        prog="lolo-run schema",
        description="Print the JSON Schema of flow files (with the params of every "
        "installed node type), for editors that complete and check YAML.",
    )
    schema.add_argument(
        "--output", "-o", type=Path, metavar="FILE", help="write to FILE instead of stdout"
    )
    keys = argparse.ArgumentParser(
        prog="lolo-run keys",
        description="Manage API keys for lolo/api-auth. Keys live (hashed) in the state "
        "store, so a running app that shares the store sees changes at once.",
    )
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="make a key and print it, once")
    create.add_argument("--email", required=True, help="the key holder's email")
    create.add_argument("--account", metavar="ID", help="account id (default: a new one)")
    create.add_argument(
        "--role",
        choices=("read", "write"),
        default="write",
        help="read keys may only read (lolo/api-auth with authorize: true refuses them "
        "POST, PUT, PATCH and DELETE with 403); write keys may do both (default: write)",
    )
    _add_state_option(create)
    listing = actions.add_parser("list", help="list keys (never the keys themselves)")
    _add_state_option(listing)
    revoke = actions.add_parser("revoke", help="revoke a key by its id or prefix")
    revoke.add_argument("key_id", metavar="KEY_ID", help="as 'keys list' shows: lolo_<id>")
    _add_state_option(revoke)
    openapi = argparse.ArgumentParser(
        prog="lolo-run openapi",
        description="Print the OpenAPI 3.1 document of a flow's HTTP API (its HTTP triggers, "
        "multi-triggers and CRUD resources), as a running app serves it at "
        "/_lolo/openapi.json.",
    )
    openapi.add_argument("flow", metavar="FLOW", type=Path, help="the flow file (YAML)")
    openapi.add_argument(
        "--output", "-o", type=Path, metavar="FILE", help="write to FILE instead of stdout"
    )
    graph = argparse.ArgumentParser(
        prog="lolo-run graph",
        description="Draw a flow: its nodes (name and type; triggers stand out) and the wires "
        "between their ports.",
    )
    graph.add_argument("flow", metavar="FLOW", type=Path, help="the flow file (YAML)")
    graph.add_argument(
        "--format",
        choices=("mermaid", "dot", "svg"),
        default="mermaid",
        help="mermaid (renders on GitHub), dot (Graphviz), or svg (runs Graphviz's 'dot', "
        "Debian package graphviz) (default: %(default)s)",
    )
    graph.add_argument(
        "--output", "-o", type=Path, metavar="FILE", help="write to FILE instead of stdout"
    )
    return {
        "run": run,
        "check": check,
        "schema": schema,
        "keys": keys,
        "openapi": openapi,
        "graph": graph,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every deliberate error becomes one line and an exit status:
    2 for bad input (a flow file, an option, a value), 1 for a failure at run time."""
    try:
        return _dispatch(list(sys.argv[1:] if argv is None else argv))
    except UsageError as exc:
        print(f"lolo-run: {exc}", file=sys.stderr)
        return EXIT_BAD_FLOW
    except FlowErrors as errors:
        _report(errors)
        return EXIT_BAD_FLOW
    except LoloError as exc:
        print(f"lolo-run: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _dispatch(args: list[str]) -> int:
    if args and args[0] in COMMANDS:
        command, rest = args[0], args[1:]
        options = build_command_parsers()[command].parse_args(rest)
    else:
        command = "run"
        options = build_parser().parse_args(args)
    if command == "check":
        return check_command(options.flows)
    if command == "schema":
        return schema_command(options.output)
    if command == "keys":
        from lolo_runtime.keys_command import keys_command

        return keys_command(options, _state_backend(options))
    if command == "openapi":
        from lolo_runtime.openapi import build_document, encode_document

        document = build_document(load_flow(options.flow))  # FlowErrors: exit 2, in main
        return write_output("openapi", encode_document(document), options.output)
    if command == "graph":
        from lolo_runtime.graph import GraphvizError, draw

        try:
            drawing = draw(load_flow(options.flow), options.format)
        except GraphvizError as exc:
            print(f"lolo-run graph: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        return write_output("graph", drawing.encode(), options.output)
    return run_command(options, args)


def _report(errors: FlowErrors) -> None:
    for error in errors.errors:
        print(error, file=sys.stderr)


def check_command(paths: Sequence[Path]) -> int:
    status = EXIT_OK
    for path in paths:
        try:
            load_flow(path)
        except FlowErrors as errors:
            _report(errors)
            status = EXIT_BAD_FLOW
        else:
            print(f"{path}: ok")
    return status


def schema_command(output: Path | None) -> int:
    from lolo_runtime.errors import RegistryError
    from lolo_runtime.schema import flow_json_schema

    try:
        schema = flow_json_schema()
    except RegistryError as exc:
        print(f"lolo-run schema: {exc}; uninstall one of them", file=sys.stderr)
        return EXIT_BAD_FLOW
    return write_output("schema", (json.dumps(schema, indent=2) + "\n").encode(), output)


def write_output(command: str, data: bytes, output: Path | None) -> int:
    """What ``lolo-run COMMAND`` prints: to ``output``, or to stdout when it is None."""
    if output is None:
        # Bytes, not text: drawings and documents hold non-ASCII ("→", names in any
        # script), which must not fail under a stdout encoding such as ASCII.
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is None:  # replaced by a text stream (main() called from Python)
            sys.stdout.write(data.decode())
            return EXIT_OK
        sys.stdout.flush()
        buffer.write(data)
        buffer.flush()
        return EXIT_OK
    try:
        output.write_bytes(data)
    except ValueError:  # a NUL in the path: bad input
        print(
            f"lolo-run {command}: cannot write {output!r}: the path holds a NUL byte",
            file=sys.stderr,
        )
        return EXIT_BAD_FLOW
    except OSError as exc:
        print(f"lolo-run {command}: cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def choose_port(cli_port: int | None, environ: Mapping[str, str], flow: Flow) -> int:
    """--port, else $PORT, else the flow file's ``port:``, else 4000."""
    if cli_port is not None:
        return cli_port
    env_port = environ.get("PORT")
    if env_port:
        try:
            return _port_number(env_port)
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


def _state_backend(options: argparse.Namespace, sync: str = "normal") -> StateBackend:
    """The store the options name: Redis (--redis / $LOLO_REDIS_URL) or a SQLite file."""
    url = redis_url(options, os.environ)
    if url is not None:
        from lolo_runtime.state.redisstore import RedisBackend

        return RedisBackend(url)
    from lolo_runtime.state import SQLiteBackend

    return SQLiteBackend(resolve_state_path(options.state, os.environ), synchronous=sync)


def run_command(options: argparse.Namespace, argv: Sequence[str] = ()) -> int:
    from lolo_runtime.runtime import ForcedShutdown, Runtime, ServeOptions, StartupError
    from lolo_runtime.serving import (
        choose_loop,
        loop_name,
        ssl_context,
        trusted_proxies,
    )

    configure_logging(options.log_level, options.log_format)
    try:
        flow = load_flow(options.flow)
    except FlowErrors as errors:
        _report(errors)
        return EXIT_BAD_FLOW
    try:
        context = ssl_context(options.ssl_certfile, options.ssl_keyfile)
        loop_factory = choose_loop(options.loop)
        proxies = trusted_proxies(options.proxy_headers, options.forwarded_allow_ips, os.environ)
        port = choose_port(options.port, os.environ, flow)
        backend = _state_backend(options, options.state_sync)
        inspect_key = inspector_key(options, os.environ, proxies is not None)
        if options.workers > 1 and redis_url(options, os.environ) is None:
            raise UsageError(
                f"--workers {options.workers} needs --redis URL (or "
                "$LOLO_REDIS_URL): worker processes share their state and "
                "reach each other's clients through Redis"
            )
    except UsageError as exc:
        print(f"lolo-run: {exc}", file=sys.stderr)
        return EXIT_BAD_FLOW
    if options.workers > 1:
        from lolo_runtime.supervisor import run_workers

        return run_workers(argv, options.workers, options.host, port)
    serve = ServeOptions(
        options.host,
        port,
        context,
        proxies,
        options.shutdown_timeout,
        reuse_port=os.environ.get(WORKER_ENV) is not None,
        inspect=options.inspect,
        inspect_key=inspect_key,
        reload=options.reload,
    )
    runtime = Runtime(flow, serve, backend, redis_url(options, os.environ))
    scheme = "https" if context is not None else "http"

    def listening(bound: int | None) -> None:
        if bound is None:
            log.info("app %r running; no trigger of it listens, so no port is open", flow.app)
            print(NO_PORT_LINE, flush=True)
            return
        log.info(
            "app %r listening on %s://%s:%d (%s event loop)",
            flow.app,
            scheme,
            options.host,
            bound,
            loop_name(asyncio.get_running_loop()),
        )
        print(f"Listening to port {bound}", flush=True)

    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(runtime.serve_until_signalled(listening))
    except ForcedShutdown as exc:
        print(f"lolo-run: {exc}", file=sys.stderr)
        return EXIT_FORCED
    except (ListenError, StartupError) as exc:
        print(f"lolo-run: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:  # before the signal handlers were in place
        return EXIT_OK
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
