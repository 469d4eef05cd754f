"""The commands that print something and exit: check, schema, openapi, graph."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from lolo_runtime.cli.status import EXIT_BAD_FLOW, EXIT_FAILURE, EXIT_OK
from lolo_runtime.errors import FlowErrors
from lolo_runtime.loader import load_flow


def report(errors: FlowErrors) -> None:
    for error in errors.errors:
        print(error, file=sys.stderr)


def check_command(paths: Sequence[Path]) -> int:
    status = EXIT_OK
    for path in paths:
        try:
            load_flow(path)
        except FlowErrors as errors:
            report(errors)
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
