"""Crash loop: ``kill -9`` a process that is streaming state writes, again and again.

Each round starts a child process that opens the state file through the real
:class:`lolo_runtime.state.SQLiteBackend` and runs eight concurrent writers. Each writer sets
keys, deletes some of the keys it set, and increments a shared counter, and prints one line
per operation *after* the backend acknowledged it (its ``await`` returned). At a random moment
(``--min-delay`` to ``--max-delay`` seconds after the child starts, so some kills land while it
is still opening the file) the parent sends SIGKILL, keeps every complete acknowledgement line
the child managed to print, reopens the file and checks, for all rounds so far:

* every acknowledged ``set`` is there with the value written;
* every acknowledged ``delete`` is gone (a key whose delete was started but not
  acknowledged may be either);
* the counter is at least the largest value an ``incr`` returned, and at most the number of
  increments attempted;
* ``PRAGMA integrity_check`` says ``ok``.

    python benchmarks/crash_loop.py                  # 20 rounds
    python benchmarks/crash_loop.py --rounds 3 --json result.json --sync full

Exit status 0 only if every round passes.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lolo_runtime.state import SQLiteBackend  # noqa: E402

APP = "crash"

CHILD = r"""
import asyncio, sys
from lolo_runtime.state import SQLiteBackend

async def main(path, round_no, sync):
    backend = SQLiteBackend(path, synchronous=sync)
    await backend.open()
    state = backend.for_app("crash")
    out = sys.stdout
    out.write("ready\n")
    out.flush()

    async def writer(w):
        i = 0
        while True:
            key = f"r{round_no}-w{w}-{i}"
            await state.set(key, {"round": round_no, "w": w, "i": i, "pad": "x" * 200})
            out.write(f"set {key}\n")
            if i % 10 == 9:
                gone = f"r{round_no}-w{w}-{i - 5}"
                out.write(f"try-del {gone}\n")
                out.flush()
                await state.delete(gone)
                out.write(f"del {gone}\n")
            out.write("try-incr\n")
            out.flush()
            value = await state.incr("counter")
            out.write(f"incr {value}\n")
            out.flush()
            i += 1

    await asyncio.gather(*(writer(w) for w in range(8)))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
"""


@dataclass
class Round:
    number: int
    kill_after_s: float
    child_was_ready: bool
    acked_sets: int
    acked_deletes: int
    acked_incrs: int
    counter: int
    missing: int
    wrong_values: int
    resurrected: int
    counter_ok: bool
    integrity: str
    verify_s: float
    ok: bool


@dataclass
class Result:
    rounds: list[Round] = field(default_factory=list)
    sync: str = "NORMAL"
    seed: int = 0
    total_acked_writes: int = 0
    ok: bool = False


def integrity(path: Path) -> str:
    with closing(sqlite3.connect(path)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


async def read_back(path: Path) -> tuple[dict[str, Any], int]:
    async with SQLiteBackend(path) as backend:
        state = backend.for_app(APP)
        keys = await state.keys("r")
        values = {key: await state.get(key) for key in keys}
        counter = int(await state.get("counter", 0))
    return values, counter


def run_round(path: Path, number: int, delay: float, sync: str, ledger: dict[str, Any]) -> Round:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    chunks: list[bytes] = []
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(number), sync],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    ) as proc:
        # A pipe opened unbuffered=False is a BufferedReader, which has read1().
        stdout = cast(io.BufferedReader, proc.stdout)
        # Read all along: a full pipe would stall the child and every kill would then land
        # while it waits to print, not while it writes to the database.
        reader = threading.Thread(
            target=lambda: chunks.extend(iter(lambda: stdout.read1(65536), b""))
        )
        reader.start()
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reader.join()
    output = b"".join(chunks)
    lines = output.split(b"\n")[:-1]  # complete lines only: the last may be cut short
    ready = False
    sets = deletes = incrs = 0
    for raw in lines:
        verb, _, arg = raw.decode().partition(" ")
        if verb == "ready":
            ready = True
        elif verb == "set":
            ledger["present"][arg] = int(arg.rsplit("-", 1)[1])
            sets += 1
        elif verb == "try-del":
            # From here on the key may be there or not, until the delete is acknowledged.
            ledger["present"].pop(arg, None)
        elif verb == "del":
            ledger["deleted"].add(arg)
            deletes += 1
        elif verb == "try-incr":
            ledger["incr_attempts"] += 1
        elif verb == "incr":
            ledger["max_incr"] = max(ledger["max_incr"], int(arg))
            incrs += 1

    started = time.monotonic()
    verdict = integrity(path) if path.exists() else "ok"  # killed before creating it
    values, counter = asyncio.run(read_back(path))
    missing = [key for key in ledger["present"] if key not in values]
    wrong = [
        key
        for key, i in ledger["present"].items()
        if key in values and (values[key] or {}).get("i") != i
    ]
    resurrected = [key for key in ledger["deleted"] if key in values]
    # An increment whose ack line was lost may still have committed: the counter may be
    # above the largest acked value, but never above the number of increments attempted.
    counter_ok = ledger["max_incr"] <= counter <= ledger["incr_attempts"]
    verify_s = time.monotonic() - started
    ok = not missing and not wrong and not resurrected and counter_ok and verdict == "ok"
    return Round(
        number,
        round(delay, 3),
        ready,
        sets,
        deletes,
        incrs,
        counter,
        len(missing),
        len(wrong),
        len(resurrected),
        counter_ok,
        verdict,
        round(verify_s, 3),
        ok,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--min-delay",
        type=float,
        default=0.05,
        help="earliest kill, seconds after the child starts",
    )
    parser.add_argument("--max-delay", type=float, default=1.5, help="latest kill")
    parser.add_argument(
        "--sync",
        choices=("normal", "full"),
        default="normal",
        help="SQLite synchronous mode of the child (lolo-run's --state-sync)",
    )
    parser.add_argument("--seed", type=int, help="for the kill moments (default: random)")
    parser.add_argument("--state", type=Path, help="state file (default: a fresh temp file)")
    parser.add_argument("--json", type=Path, help="also write the result to this file")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    result = Result(sync=args.sync.upper(), seed=seed)
    ledger: dict[str, Any] = {"present": {}, "deleted": set(), "max_incr": 0, "incr_attempts": 0}

    with tempfile.TemporaryDirectory() as tmp:
        path = args.state or Path(tmp) / "state.sqlite3"
        for number in range(args.rounds):
            delay = rng.uniform(args.min_delay, args.max_delay)
            outcome = run_round(path, number, delay, args.sync, ledger)
            result.rounds.append(outcome)
            print(
                f"round {number + 1:2}: killed after {outcome.kill_after_s:.3f}s"
                f"{'' if outcome.child_was_ready else ' (while opening)'}; acked "
                f"{outcome.acked_sets} sets, {outcome.acked_deletes} deletes, "
                f"{outcome.acked_incrs} incrs; missing {outcome.missing}, wrong "
                f"{outcome.wrong_values}, resurrected {outcome.resurrected}, counter "
                f"{outcome.counter} {'ok' if outcome.counter_ok else 'WRONG'}, integrity "
                f"{outcome.integrity}: {'OK' if outcome.ok else 'FAIL'}",
                flush=True,
            )
    result.total_acked_writes = sum(
        r.acked_sets + r.acked_deletes + r.acked_incrs for r in result.rounds
    )
    result.ok = bool(result.rounds) and all(r.ok for r in result.rounds)
    print(
        f"crash loop: {len(result.rounds)} rounds (seed {seed}, synchronous={result.sync}), "
        f"{result.total_acked_writes} acknowledged writes, "
        f"{sum(not r.ok for r in result.rounds)} failed rounds: "
        f"{'OK' if result.ok else 'FAIL'}"
    )
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2) + "\n", encoding="utf-8")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
