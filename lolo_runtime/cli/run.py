"""``lolo-run [run] FLOW``: load a flow and serve it until a signal."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from lolo_runtime.cli.commands import report
from lolo_runtime.cli.settings import choose_port, inspector_key, redis_url, state_backend
from lolo_runtime.cli.status import (
    EXIT_BAD_FLOW,
    EXIT_FAILURE,
    EXIT_FORCED,
    EXIT_OK,
    NO_PORT_LINE,
    WORKER_ENV,
)
from lolo_runtime.edge.listener import ListenError
from lolo_runtime.errors import FlowErrors, UsageError
from lolo_runtime.loader import load_flow
from lolo_runtime.logs import configure_logging

log = logging.getLogger("lolo.cli")


def run_command(options: argparse.Namespace, argv: Sequence[str] = ()) -> int:
    from lolo_runtime.runtime import ForcedShutdown, Runtime, ServeOptions, StartupError
    from lolo_runtime.serving import (
        choose_loop,
        loop_name,
        ssl_context,
        trusted_proxies,
    )

    worker = os.environ.get(WORKER_ENV)
    configure_logging(
        options.log_level,
        options.log_format,
        worker=int(worker) if worker is not None and worker.isdigit() else None,
    )
    try:
        flow = load_flow(options.flow)
    except FlowErrors as errors:
        report(errors)
        return EXIT_BAD_FLOW
    try:
        context = ssl_context(options.ssl_certfile, options.ssl_keyfile)
        loop_factory = choose_loop(options.loop)
        proxies = trusted_proxies(options.proxy_headers, options.forwarded_allow_ips, os.environ)
        port = choose_port(options.port, os.environ, flow)
        backend = state_backend(options, options.state_sync)
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
