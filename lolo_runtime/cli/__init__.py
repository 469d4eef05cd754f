"""``lolo-run``: run, check and inspect flow files."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from lolo_runtime.cli.commands import check_command, report, schema_command, write_output
from lolo_runtime.cli.parsers import COMMANDS, build_command_parsers, build_parser
from lolo_runtime.cli.run import run_command
from lolo_runtime.cli.settings import state_backend
from lolo_runtime.cli.status import (
    DEFAULT_PORT,
    EXIT_BAD_FLOW,
    EXIT_FAILURE,
    EXIT_FORCED,
    EXIT_OK,
    NO_PORT_LINE,
    WORKER_ENV,
)
from lolo_runtime.errors import FlowErrors, LoloError, UsageError
from lolo_runtime.loader import load_flow

__all__ = [
    "DEFAULT_PORT",
    "EXIT_BAD_FLOW",
    "EXIT_FAILURE",
    "EXIT_FORCED",
    "EXIT_OK",
    "NO_PORT_LINE",
    "WORKER_ENV",
    "build_command_parsers",
    "build_parser",
    "main",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every deliberate error becomes one line and an exit status:
    2 for bad input (a flow file, an option, a value), 1 for a failure at run time."""
    try:
        return _dispatch(list(sys.argv[1:] if argv is None else argv))
    except UsageError as exc:
        print(f"lolo-run: {exc}", file=sys.stderr)
        return EXIT_BAD_FLOW
    except FlowErrors as errors:
        report(errors)
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

        return keys_command(options, state_backend(options))
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
