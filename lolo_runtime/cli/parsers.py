"""The command line of ``lolo-run``: its commands, their options and their help."""

from __future__ import annotations

import argparse
from pathlib import Path

from lolo_runtime import __version__

LOG_LEVELS = ("debug", "info", "warning", "error")
COMMANDS = ("run", "check", "schema", "keys", "openapi", "graph")

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


def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("flow", metavar="FLOW", type=Path, help="the flow file (YAML)")
    parser.add_argument(
        "--port",
        type=port_number,
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
    add_state_option(parser, sync=True)


def _worker_count(text: str) -> int:
    count = int(text)
    if not 1 <= count <= 512:
        raise ValueError(text)
    return count


_worker_count.__name__ = "worker count (1 to 512)"


def port_number(text: str) -> int:
    """``--port``: an int from 0 to 65535 (argparse reports the ValueError as usage)."""
    port = int(text)
    if not 0 <= port <= 65535:
        raise ValueError(text)
    return port


port_number.__name__ = "port number"  # argparse says "invalid port number value: '70000'"


def add_state_option(parser: argparse.ArgumentParser, sync: bool = False) -> None:
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
    add_run_options(parser)
    return parser


def build_command_parsers() -> dict[str, argparse.ArgumentParser]:
    raw = argparse.RawDescriptionHelpFormatter
    run = argparse.ArgumentParser(
        prog="lolo-run run", description="Serve a flow file.", epilog=EPILOG, formatter_class=raw
    )
    add_run_options(run)
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
    add_state_option(create)
    listing = actions.add_parser("list", help="list keys (never the keys themselves)")
    add_state_option(listing)
    revoke = actions.add_parser("revoke", help="revoke a key by its id or prefix")
    revoke.add_argument("key_id", metavar="KEY_ID", help="as 'keys list' shows: lolo_<id>")
    add_state_option(revoke)
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
