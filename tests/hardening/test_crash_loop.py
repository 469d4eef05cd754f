"""Item 9, CI-sized: benchmarks/crash_loop.py for 3 rounds of kill -9 during state writes.

The full run (20 rounds) is done by hand; its last figures are in docs/reliability.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hardening.wire import figure
from tests.support import ROOT

CRASH_LOOP = ROOT / "benchmarks" / "crash_loop.py"


@pytest.mark.parametrize("sync", ["normal", "full"])
def test_every_acknowledged_write_survives_kill_9(tmp_path: Path, sync: str) -> None:
    out = tmp_path / "crash.json"
    run = subprocess.run(
        [
            sys.executable,
            str(CRASH_LOOP),
            "--rounds",
            "3",
            "--min-delay",
            "0.3",
            "--max-delay",
            "0.8",
            "--sync",
            sync,
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=100,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(out.read_text(encoding="utf-8"))
    figure(f"crash_loop.short.{sync}", run.stdout.strip().splitlines()[-1])
    assert result["ok"] is True
    assert len(result["rounds"]) == 3
    assert result["total_acked_writes"] > 0  # the kills really landed among writes
    for outcome in result["rounds"]:
        assert outcome["missing"] == outcome["wrong_values"] == outcome["resurrected"] == 0
        assert outcome["counter_ok"] is True
        assert outcome["integrity"] == "ok"
