"""One command to benchmark lolo-run's chat against a bare `websockets` chat, side by side.

    python benchmarks/run.py                 # full run (several minutes)
    python benchmarks/run.py --quick         # smoke run, well under a minute (CI)
    python benchmarks/run.py --only S1,S3 --repeats 3 --duration 3
    python benchmarks/run.py --quick --lolo-cmd "python benchmarks/bare_server.py"  # bare vs bare

Both servers are started fresh for every repeat and interleaved (lolo, bare, then bare, lolo, ...);
the medians and the ratio lolo-run / bare are written as Markdown, JSON and a PNG chart to
--out (default benchmarks/results/). See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path

import procstat
import report
from report import BARE, LOLO
from scenarios import ALL, NOISY_CORES, QUICK, Bench, Settings
from servers import ServerError, ServerPool, git_commit, pick_cores

HERE = Path(__file__).resolve().parent
DEFAULT_LOLO = "lolo-run flows/chat.yaml"
# The chat flow rate-limits each client (20 msg/s by default); load tests must lift it.
DEFAULT_ENV = ("CHAT_MAX_MESSAGES_PER_SECOND=1000000000",)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    p.add_argument("--quick", action="store_true", help="tiny smoke run (CI)")
    p.add_argument("--repeats", type=int, help="interleaved repeats per server")
    p.add_argument("--duration", type=float, help="seconds measured per throughput figure")
    p.add_argument("--only", help="comma-separated scenarios, e.g. S1,S3")
    p.add_argument(
        "--lolo-cmd",
        default=DEFAULT_LOLO,
        help="command for the server under test; without {port} the runner appends "
        "--port P --state DIR/bench.sqlite3 --log-level warning",
    )
    p.add_argument("--bare-cmd", default=f"{shlex.quote(sys.executable)} benchmarks/bare_server.py")
    p.add_argument(
        "--server-env",
        action="append",
        default=list(DEFAULT_ENV),
        metavar="KEY=VALUE",
        help="environment for both servers (repeatable)",
    )
    p.add_argument("--s2-rate", type=float, help="fixed S2 rate in messages/s")
    p.add_argument(
        "--quiet-wait",
        type=float,
        help="before each server start, wait up to this many seconds for other load to "
        "fall below 0.3 cores (default 30; 0 in --quick)",
    )
    p.add_argument(
        "--noisy-retries",
        type=int,
        help=f"re-run a figure up to this many times when other processes used more than "
        f"{NOISY_CORES} cores during its window (default 2; 0 in --quick)",
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    p.add_argument("--out", type=Path, default=HERE / "results")
    return p.parse_args(argv)


def build_settings(args: argparse.Namespace) -> Settings:
    s = Settings(**asdict(QUICK)) if args.quick else Settings()
    if args.repeats is not None:
        s.repeats = max(1, args.repeats)
    if args.duration is not None:
        s.duration = max(0.2, args.duration)
    if args.s2_rate:
        s.s2_rate = args.s2_rate
    if args.noisy_retries is not None:
        s.noisy_retries = max(0, args.noisy_retries)
    if args.quiet_wait is not None:
        s.quiet_wait = max(0.0, args.quiet_wait)
    if args.only:
        s.only = [x.strip().upper() for x in args.only.split(",") if x.strip()]
        unknown = set(s.only) - set(ALL)
        if unknown:
            raise SystemExit(f"--only: unknown scenario(s) {sorted(unknown)}; known: {ALL}")
    return s


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = build_settings(args)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM cleans up like Ctrl-C
    procstat.raise_nofile_limit()
    server_cpu, client_cpu = pick_cores(args.no_pin)
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})  # the runner never competes with the server
    env = dict(os.environ)
    env.update(kv.split("=", 1) for kv in args.server_env if "=" in kv)
    pin = {"server": server_cpu, "client": client_cpu}
    commands = {LOLO: args.lolo_cmd, BARE: args.bare_cmd}
    started = time.perf_counter()
    with ServerPool(server_cpu, env=env) as pool:
        bench = Bench(settings, pool, client_cpu)
        try:
            rate, rate_note = (
                bench.calibrate(args.bare_cmd, pin)
                if "S2" in settings.only
                else (0.0, "S2 not run")
            )
            for r in range(settings.repeats):
                print(f"repeat {r + 1}/{settings.repeats} ...", file=sys.stderr, flush=True)
                # A B, B A, A B, ...: interleaved, and neither always goes first.
                for side in (LOLO, BARE) if r % 2 == 0 else (BARE, LOLO):
                    bench.side(side, commands[side], rate, pin)
        except ServerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted: servers stopped", file=sys.stderr)
            return 130
    return finish(args, settings, bench, commands, rate_note, pin, time.perf_counter() - started)


def finish(
    args: argparse.Namespace,
    settings: Settings,
    bench: Bench,
    commands: dict[str, str],
    rate_note: str,
    pin: dict[str, int | None],
    elapsed: float,
) -> int:
    med = report.medians(bench.samples)
    rows = report.evaluate(report.headline_metrics(settings.s1_clients), med)
    other = [
        v
        for side in med.values()
        for k, v in side.items()
        if k.endswith("other_cpu_util") and v > 0.05
    ]
    if other:
        bench.warnings.append(
            f"other processes used up to {max(other):.2f} cores during "
            "measurement windows: figures may be noisy"
        )
    now = dt.datetime.now()
    stamp = now.strftime("%Y%m%d-%H%M%S")
    pinning = (
        "none"
        if pin["server"] is None
        else f"server on CPU {pin['server']}, load generator on CPU {pin['client']}"
    )
    doc = {
        "generated": now.isoformat(timespec="seconds"),
        "machine": procstat.machine_info(),
        "commit": git_commit(),
        "settings": asdict(settings),
        "commands": commands,
        "launched": bench.launched,
        "server_env": args.server_env,
        "pinning": pinning,
        "order": "lolo-run, bare; then bare, lolo-run; ...",
        "s2_rate_note": rate_note,
        "elapsed_s": round(elapsed, 1),
        "noisy_reruns": bench.reruns,
        "figures": [{k: v for k, v in r.items() if k != "fmt"} for r in rows],
        "medians": med,
        "samples": bench.samples,
        "correctness": bench.correctness,
        "errors": bench.errors,
        "warnings": bench.warnings,
        "runs": bench.runs,
    }
    markdown = report.render_markdown(doc, rows)
    written = report.write_outputs(args.out, stamp, doc, markdown)
    chart = report.write_chart(args.out, stamp, rows)
    print(markdown)
    print(f"wrote {', '.join(str(p) for p in written)}")
    print(f"chart: {chart}" if isinstance(chart, Path) else chart)
    print(f"total {elapsed:.0f} s")
    lost = sum(c["lost"] + c["failed_connections"] for c in bench.correctness.values())
    return 1 if bench.errors or lost else 0


if __name__ == "__main__":
    sys.exit(main())
