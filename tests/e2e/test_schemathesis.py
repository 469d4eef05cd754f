"""Schemathesis against a real ``lolo-run`` serving flows/crud-api.yaml: from the document
the app serves at /_lolo/openapi.json it generates requests (valid and not), and checks
every answer: no 5xx, every status, content type, header and body as documented,
created records readable, deleted ones gone, invalid data refused, keys required.

Bounded: a few hundred requests, about 15 s. ``SCHEMATHESIS_SEED`` picks another seed
(the default one keeps CI reproducible); the output names the seed of a failing run.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, LoloProcess, lolo_keys, unavailable

FLOW = ROOT / "flows" / "crud-api.yaml"
SEED = os.environ.get("SCHEMATHESIS_SEED", "20261201")


def run_schemathesis(
    tmp_path: Path, key: str, url: str, examples: int
) -> subprocess.CompletedProcess[str]:
    # The key goes to the document's bearer scheme (not as a plain header), so that
    # Schemathesis knows it is the auth and can check what happens without it.
    config = tmp_path / "schemathesis.toml"
    config.write_text(f'[auth.openapi.bearer]\nbearer = "{key}"\n')
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(config),
            "run",
            url,
            "--checks",
            "all",
            "--max-examples",
            str(examples),
            "--seed",
            SEED,
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )


@pytest.mark.parametrize(("role", "examples"), [("write", 25), ("read", 10)])
def test_schemathesis_finds_nothing_wrong(tmp_path: Path, role: str, examples: int) -> None:
    if importlib.util.find_spec("schemathesis") is None:
        unavailable("schemathesis is not installed (pip install -e '.[test]')")
    state = tmp_path / "state.sqlite3"
    key = lolo_keys(state, "create", "--email", "fuzz@example.com", "--role", role)
    with LoloProcess(FLOW, state=state) as server:
        url = f"http://127.0.0.1:{server.port}/_lolo/openapi.json"
        done = run_schemathesis(tmp_path, key, url, examples)
        log = server.stderr()
    report = f"{done.stdout[-6000:]}\n{done.stderr[-2000:]}\nlolo-run's log:\n{log[-3000:]}"
    assert done.returncode == 0, report
    if role == "write":
        assert "No issues found" in done.stdout, report
    else:  # the 4 writes could only be refused: Schemathesis warns of that, no more
        assert "4 operations returned only 401/403 responses" in done.stdout, report
        assert "failure" not in done.stdout.rsplit("SUMMARY", 1)[-1], report
    assert "Tested: 11" in done.stdout, report  # every operation of the document
    assert " ERROR " not in log, report  # no handler raised, however it was answered
