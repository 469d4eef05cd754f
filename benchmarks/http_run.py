"""HTTP benchmark: lolo-run's HTTP trigger vs uvicorn + Starlette, side by side, with wrk.

    python benchmarks/http_run.py            # 5 interleaved repeats of H1 and H2
    python benchmarks/http_run.py --quick    # smoke run (CI): 1 repeat, 1 s windows

H1: ``GET /hello/:name`` -> ``{"hello": name}`` through one function node.
H2: a 1 KiB JSON document POSTed to ``/echo`` and sent back.

Both servers are pinned to core 0 and wrk (Debian package ``wrk``) to core 1, 50
connections. For each repeat and scenario the two servers are measured back to back (the
order alternates); reported are the medians of the per-repeat ratios lolo-run/reference
of requests/s and of server CPU per request (utime + stime of the server's process tree
over the measured window, divided by the requests wrk completed), and p50/p99 latency.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from procstat import machine_info, tree_cpu_seconds
from servers import ServerPool

HERE = Path(__file__).resolve().parent
FLOW = HERE / "http" / "flow.yaml"
POST_SCRIPT = HERE / "http" / "post.lua"
SCENARIOS = {"H1": ("/hello/ada", None), "H2": ("/echo", POST_SCRIPT)}
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


@dataclass
class Measure:
    server: str
    scenario: str
    repeat: int
    requests: int
    seconds: float
    rps: float
    cpu_us_per_request: float
    p50_ms: float
    p99_ms: float
    errors: int


def probe_http(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET /hello/probe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def parse_wrk(text: str) -> tuple[int, float, float, float, int]:
    """(requests, seconds, p50 ms, p99 ms, errors) from ``wrk --latency`` output."""
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s)", text)
    if done is None:
        raise RuntimeError(f"unexpected wrk output:\n{text}")
    latency = {
        m[0]: float(m[1]) * _UNITS[m[2]] * 1000
        for m in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)", text, re.M)
    }
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    errors += int(m[1]) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", text)) else 0
    return (
        int(done[1]),
        float(done[2]) * _UNITS[done[3]],
        latency.get("50", 0.0),
        latency.get("99", 0.0),
        errors,
    )


def run_wrk(port: int, scenario: str, seconds: float, connections: int, pin: bool) -> str:
    path, script = SCENARIOS[scenario]
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    if script is not None:
        argv += ["-s", str(script)]
    argv.append(f"http://127.0.0.1:{port}{path}")
    if pin:
        argv = ["taskset", "-c", "1", *argv]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def measure(
    server_name: str, pid: int, port: int, scenario: str, repeat: int, options: argparse.Namespace
) -> Measure:
    run_wrk(port, scenario, 1, options.connections, not options.no_pin)  # warm-up
    before = tree_cpu_seconds(pid)
    output = run_wrk(port, scenario, options.duration, options.connections, not options.no_pin)
    cpu = tree_cpu_seconds(pid) - before
    requests, seconds, p50, p99, errors = parse_wrk(output)
    return Measure(
        server_name,
        scenario,
        repeat,
        requests,
        seconds,
        requests / seconds,
        cpu / max(requests, 1) * 1e6,
        p50,
        p99,
        errors,
    )


def summarise(results: list[Measure]) -> dict[str, dict[str, float]]:
    summary: dict[str, dict[str, float]] = {}
    for scenario in SCENARIOS:
        pairs: dict[int, dict[str, Measure]] = {}
        for m in results:
            if m.scenario == scenario:
                pairs.setdefault(m.repeat, {})[m.server] = m
        ratios_rps = [p["lolo-run"].rps / p["reference"].rps for p in pairs.values()]
        ratios_cpu = [
            p["lolo-run"].cpu_us_per_request / p["reference"].cpu_us_per_request
            for p in pairs.values()
        ]
        row: dict[str, float] = {
            "rps_ratio": statistics.median(ratios_rps),
            "cpu_per_request_ratio": statistics.median(ratios_cpu),
        }
        for name in ("lolo-run", "reference"):
            mine = [p[name] for p in pairs.values()]
            row[f"{name}_rps"] = statistics.median(m.rps for m in mine)
            row[f"{name}_cpu_us"] = statistics.median(m.cpu_us_per_request for m in mine)
            row[f"{name}_p50_ms"] = statistics.median(m.p50_ms for m in mine)
            row[f"{name}_p99_ms"] = statistics.median(m.p99_ms for m in mine)
            row[f"{name}_errors"] = sum(m.errors for m in mine)
        summary[scenario] = row
    return summary


def report(summary: dict[str, dict[str, float]], options: argparse.Namespace) -> str:
    lines = [
        f"# HTTP benchmark: lolo-run vs uvicorn + Starlette ({time.strftime('%Y-%m-%d')})",
        "",
        f"{options.repeats} interleaved repeats of {options.duration:g} s, wrk -t1 "
        f"-c{options.connections}, servers on core 0, wrk on core 1"
        + (" (not pinned)" if options.no_pin else "")
        + ". Ratios: medians of per-repeat "
        "lolo-run / reference.",
        "",
        "| scenario | requests/s ratio | CPU/request ratio | lolo-run req/s | reference req/s "
        "| lolo-run CPU us/req | reference CPU us/req | lolo-run p50/p99 ms "
        "| reference p50/p99 ms | errors (lolo/ref) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in summary.items():
        lines.append(
            f"| {name} | {row['rps_ratio']:.2f} | {row['cpu_per_request_ratio']:.2f} "
            f"| {row['lolo-run_rps']:.0f} | {row['reference_rps']:.0f} "
            f"| {row['lolo-run_cpu_us']:.0f} | {row['reference_cpu_us']:.0f} "
            f"| {row['lolo-run_p50_ms']:.2f} / {row['lolo-run_p99_ms']:.2f} "
            f"| {row['reference_p50_ms']:.2f} / {row['reference_p99_ms']:.2f} "
            f"| {row['lolo-run_errors']:.0f} / {row['reference_errors']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 repeat of 1 s (smoke run)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per window")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    options = parser.parse_args()
    if options.quick:
        options.repeats, options.duration = 1, 1.0
    if shutil.which("wrk") is None:
        print("http_run: wrk is missing (Debian package wrk: apt-get install wrk)", file=sys.stderr)
        return 2
    if shutil.which("taskset") is None:
        options.no_pin = True
    commands = {
        "lolo-run": f"lolo-run {FLOW} --port {{port}} --state {{state}} --log-level warning",
        "reference": f"python {HERE / 'http' / 'reference.py'} --port {{port}}",
    }
    results: list[Measure] = []
    with ServerPool(None if options.no_pin else 0) as pool:
        servers = {
            name: pool.start(name, command, probe=probe_http) for name, command in commands.items()
        }
        for repeat in range(options.repeats):
            order = list(servers) if repeat % 2 == 0 else list(reversed(servers))
            for scenario in SCENARIOS:
                for name in order:
                    server = servers[name]
                    results.append(
                        measure(name, server.pid, server.port, scenario, repeat, options)
                    )
                    server.check_alive()
    summary = summarise(results)
    text = report(summary, options)
    print(text)
    options.out.mkdir(parents=True, exist_ok=True)
    stem = "http-quick" if options.quick else "http"
    (options.out / f"{stem}.md").write_text(text)
    (options.out / f"{stem}.json").write_text(
        json.dumps(
            {"machine": machine_info(), "summary": summary, "runs": [asdict(m) for m in results]},
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
