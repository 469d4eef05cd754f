"""The HTTP example under real load: wrk against lolo-run's H1/H2 endpoints and the
uvicorn + Starlette reference, through the benchmark runner (``--quick``).

Figures are not judged here (benchmarks/README.md has them); what is checked is that both
servers answer every request of a wrk run, and that the runner's report is complete.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT, unavailable


def test_wrk_load_is_answered_in_full_by_lolo_run_and_the_reference(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        unavailable("needs wrk (Debian package wrk: apt-get install wrk)")
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "http_run.py"),
            "--quick",
            "--no-pin",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "http-quick.json").read_text())["summary"]
    assert set(summary) == {"H1", "H2"}
    for scenario, row in summary.items():
        for server in ("lolo-run", "reference"):
            assert row[f"{server}_rps"] > 100, (scenario, server, row)
            assert row[f"{server}_errors"] == 0, (scenario, server, row)
    assert "| H1 |" in (tmp_path / "http-quick.md").read_text()
