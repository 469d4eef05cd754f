"""Item 6, what tests/test_yamlsource.py and tests/test_broken_flows.py leave out: how fast the
hostile flow files are refused (measured and recorded, never asserted), a few bigger bombs,
and a flow file that is a stream rather than a regular file.

Every case must end in a located ``FlowError`` (``path:line: message``); the seconds it took
are reported as figures for docs/reliability.md.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lolo_runtime.errors import FlowError
from lolo_runtime.yamlsource import MAX_DEPTH, MAX_FLOW_BYTES, MAX_VALUES, read_yaml_file
from tests.hardening.wire import figure
from tests.support import ROOT, lolo_run_command

BROKEN = ROOT / "tests" / "flows" / "broken"
MINIMAL = ROOT / "tests" / "flows" / "good" / "minimal.yaml"


def alias_bomb(levels: int, width: int = 10) -> str:
    """``levels`` anchors, each a list of ``width`` aliases of the one before: the last one
    stands for ``width ** levels`` strings."""
    rows = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        rows.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    return "\n".join(rows) + "\n"


def mapping_bomb(levels: int, width: int = 10) -> str:
    """The same explosion through mappings instead of lists."""
    rows = [f"m0: &m0 {{{', '.join(f'k{i}: lol' for i in range(width))}}}"]
    for level in range(1, levels):
        inner = ", ".join(f"k{i}: *m{level - 1}" for i in range(width))
        rows.append(f"m{level}: &m{level} {{{inner}}}")
    return "\n".join(rows) + "\n"


def padded_flow(size: int) -> str:
    """The minimal good flow followed by comment lines, ``size`` bytes in all."""
    text = MINIMAL.read_text(encoding="utf-8")
    line = "# " + "x" * 97 + "\n"
    text += line * ((size - len(text)) // len(line))
    return text + "#" * (size - len(text) - 1) + "\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as out:
        out.truncate(size)
    return path


LIMIT = ("limit", str(MAX_FLOW_BYTES))

CASES: dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]] = {
    # name: (make the file in a directory, parts of the expected message)
    "alias-bomb-committed": (lambda d: BROKEN / "alias_bomb.yaml", ("alias bomb",)),
    "alias-bomb-10^30": (lambda d: write(d / "f.yaml", alias_bomb(30)), ("alias bomb",)),
    "alias-bomb-2^60": (lambda d: write(d / "f.yaml", alias_bomb(60, width=2)), ("alias bomb",)),
    "mapping-bomb-10^30": (lambda d: write(d / "f.yaml", mapping_bomb(30)), ("alias bomb",)),
    "nesting-500k-deep": (
        lambda d: write(d / "f.yaml", "[" * 500_000 + "]" * 500_000),
        ("nested",),
    ),
    "nesting-just-past-cap": (
        lambda d: write(d / "f.yaml", "[" * (MAX_DEPTH + 2) + "]" * (MAX_DEPTH + 2)),
        ("nested",),
    ),
    "values-just-past-cap": (
        lambda d: write(d / "f.yaml", "".join(f"- {i}\n" for i in range(MAX_VALUES + 1))),
        (f"more than {MAX_VALUES} values",),
    ),
    "size-limit-plus-1": (lambda d: write(d / "f.yaml", padded_flow(MAX_FLOW_BYTES + 1)), LIMIT),
    "sparse-100MiB": (lambda d: sparse(d / "f.yaml", 100 * 1024 * 1024), LIMIT),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_flow_file_is_refused_with_a_located_error(tmp_path: Path, case: str) -> None:
    make, parts = CASES[case]
    path = make(tmp_path)
    start = time.perf_counter()
    with pytest.raises(FlowError) as raised:
        read_yaml_file(path)
    took = time.perf_counter() - start
    figure(f"flow_file.{case}.refused_in_ms", f"{took * 1000:.1f}")
    error = raised.value
    assert all(part in error.message for part in parts), error.message
    assert error.path == path
    assert error.line is not None and error.line >= 1
    assert str(error).startswith(f"{path}:{error.line}: ")


def test_a_flow_exactly_at_the_size_limit_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "f.yaml", padded_flow(MAX_FLOW_BYTES))
    assert path.stat().st_size == MAX_FLOW_BYTES
    start = time.perf_counter()
    data, _ = read_yaml_file(path)
    figure("flow_file.at_size_limit.read_in_ms", f"{(time.perf_counter() - start) * 1000:.1f}")
    assert data["app"]


@pytest.mark.parametrize(
    "case", ["alias_bomb.yaml", "python_object_tag.yaml", "duplicate_mapping_key.yaml"]
)
def test_lolo_run_check_refuses_a_hostile_file(case: str) -> None:
    """The same through the real command, start-up included; the good minimal flow is the
    baseline the figures are compared with."""

    def timed(path: Path) -> tuple[subprocess.CompletedProcess[str], float]:
        start = time.perf_counter()
        run = subprocess.run(
            [*lolo_run_command(), "check", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        return run, time.perf_counter() - start

    good, baseline = timed(MINIMAL)
    bad, took = timed(BROKEN / case)
    figure(f"flow_file.lolo_run_check.{case}_s", f"{took:.2f} (good flow: {baseline:.2f})")
    assert good.returncode == 0, good.stderr
    assert bad.returncode == 2
    assert bad.stderr.startswith(f"{BROKEN / case}:")
    assert "Traceback" not in bad.stderr


def test_a_flow_file_that_is_an_endless_stream_is_not_read_past_the_limit(
    tmp_path: Path,
) -> None:
    """A named pipe (or /dev/stdin, or /dev/zero) has no size to check beforehand: the loader
    must stop reading once it has more than the limit, not read whatever comes. The writer
    offers 64 MiB of comment lines; more than 8 MiB taken means the limit did not hold."""
    fifo = tmp_path / "flow.yaml"
    os.mkfifo(fifo)
    offered = 64 * 1024 * 1024
    taken = [0]

    def feed() -> None:
        chunk = (b"# " + b"x" * 1021 + b"\n") * 64
        try:
            with open(fifo, "wb") as out:
                while taken[0] < offered:
                    out.write(chunk)
                    taken[0] += len(chunk)
        except BrokenPipeError:
            pass  # the reader stopped reading: what we want

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        run = subprocess.run(
            [*lolo_run_command(), "check", str(fifo)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
    finally:
        # Unblock the feeder if lolo-run never opened the pipe.
        if feeder.is_alive():
            with open(fifo, "rb") as drain:
                while drain.read(1 << 20):
                    pass
        feeder.join()
    figure("flow_file.stream.bytes_read_before_refusal", f"{taken[0]} of {offered} offered")
    assert run.returncode == 2, run.stderr
    assert "limit" in run.stderr
    assert taken[0] <= 8 * 1024 * 1024, (
        f"lolo-run read {taken[0] // (1024 * 1024)} MiB of a stream before refusing it: the "
        "size limit is checked with stat(), which says nothing for a pipe, and then the "
        "whole stream is read (an endless one, such as /dev/zero, until memory runs out)"
    )
