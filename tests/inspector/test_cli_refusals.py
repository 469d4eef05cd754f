"""``lolo-run FLOW --inspect`` refuses, with status 2 and before listening, where the
inspector would be open to others: a non-loopback --host or --proxy-headers without
$LOLO_INSPECT_KEY, a key under 16 characters, and --workers (one process's figures)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT, lolo_run_command

CHAT = ROOT / "flows" / "chat.yaml"


def run(tmp_path: Path, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LOLO_INSPECT_KEY"}
    if key is not None:
        env["LOLO_INSPECT_KEY"] = key
    command = [*lolo_run_command(), str(CHAT), "--inspect", "--port", "0"]
    command += ["--state", str(tmp_path / "state.sqlite3"), *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, env=env, cwd=ROOT, check=False
    )


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--host", "0.0.0.0"), "--inspect on --host 0.0.0.0"),
        (("--host", "192.0.2.7"), "--inspect on --host 192.0.2.7"),
        (("--proxy-headers",), "--inspect behind --proxy-headers"),
    ],
)
def test_an_open_inspector_others_could_reach_is_refused(
    tmp_path: Path, args: tuple[str, ...], said: str
) -> None:
    done = run(tmp_path, *args)
    assert done.returncode == 2, done.stderr
    assert said in done.stderr
    assert "LOLO_INSPECT_KEY" in done.stderr
    assert "Listening" not in done.stdout


def test_a_short_key_is_refused(tmp_path: Path) -> None:
    done = run(tmp_path, "--host", "0.0.0.0", key="only-15-chars.."[:15])
    assert done.returncode == 2, done.stderr
    assert "too short" in done.stderr
    assert "only-15-chars" not in done.stderr  # the key itself is never said
    assert "Listening" not in done.stdout


@pytest.mark.parametrize("key", [None, "a-long-enough-inspector-key"])
def test_workers_are_refused_with_or_without_a_key(tmp_path: Path, key: str | None) -> None:
    # --inspect is refused before --workers asks for --redis.
    done = run(tmp_path, "--workers", "2", key=key)
    assert done.returncode == 2, done.stderr
    assert "--inspect shows one process's figures" in done.stderr
    assert "Listening" not in done.stdout
