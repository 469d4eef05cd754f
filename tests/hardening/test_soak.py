"""Item 8, CI-sized: benchmarks/soak.py with 20 clients for 3 seconds.

The full soak (200 clients, 60 s) is run by hand; its last figures are in
docs/reliability.md. This runs the same script, as a user would, and checks its verdict.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.hardening.wire import figure
from tests.support import ROOT

SOAK = ROOT / "benchmarks" / "soak.py"


def test_short_soak_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    run = subprocess.run(
        [
            sys.executable,
            str(SOAK),
            "--clients",
            "20",
            "--duration",
            "3",
            "--rate",
            "5",
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
    figure("soak.short", run.stdout.strip())
    assert result["ok"] is True
    assert result["sent"] >= 20 * 3 * 5 * 0.9  # the clients really sent at the asked rate
    assert result["expected"] == result["sent"] * 19
    assert result["received"] == result["expected"]
    assert result["lost"] == result["duplicated"] == result["out_of_order"] == 0
    assert result["early_disconnects"] == 0
    assert result["server_alive"] is True
