"""Every kind of mistake in a flow file, caught by the real ``lolo-run`` before anything runs.

Each file in ``tests/flows/broken`` holds one mistake (``several_mistakes.yaml`` holds a few)
and starts with comment lines saying what the report must be::

    # expect: <line>: <part of the message>     (one line per expected error)
    # node: <id>                                (the node the message must name, if any)

The test runs ``lolo-run check FILE`` and ``lolo-run FILE --port N`` as separate processes,
exactly as a user would, and compares their stderr with those lines. Two more cases are
made on the fly rather than committed: a file over the 1 MiB limit and a zero-byte file.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import free_port, lolo_run_command

TESTS = Path(__file__).resolve().parent
BROKEN = TESTS / "flows" / "broken"
GOOD = TESTS / "flows" / "good"
CHAT = TESTS.parent / "flows" / "chat.yaml"

LIMIT = 1024 * 1024
GENERATED = ("oversize.yaml", "zero_bytes.yaml")
COMMITTED = sorted(path.name for path in BROKEN.glob("*.yaml"))

_EXPECT = re.compile(r"^# expect: (\d+): (.+)$")
_NODE = re.compile(r"^# node: (\S+)$")


@dataclass(frozen=True)
class Expected:
    line: int
    text: str


@dataclass(frozen=True)
class Case:
    path: Path
    expected: tuple[Expected, ...]
    node: str | None

    def node_label(self) -> str | None:
        """How the message must name the node: ``node 'ws'``, or ``node #2`` by position."""
        if self.node is None:
            return None
        return f"node {self.node}" if self.node.startswith("#") else f"node {self.node!r}"


def read_case(path: Path, header: str | None = None) -> Case:
    """Read a broken flow's ``# expect:``/``# node:`` header (``header`` for made-up files)."""
    text = header if header is not None else path.read_text(encoding="utf-8")
    expected: list[Expected] = []
    node: str | None = None
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        if match := _EXPECT.match(line):
            expected.append(Expected(int(match.group(1)), match.group(2)))
        elif match := _NODE.match(line):
            node = match.group(1)
    return Case(path, tuple(expected), node)


def clean_env() -> dict[str, str]:
    """The environment minus anything a broken flow relies on being unset."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOLO_TEST_")}
    env.pop("PORT", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def check(*paths: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*lolo_run_command(), "check", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        cwd=cwd,
    )


@dataclass(frozen=True)
class RunOutcome:
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    listened: bool
    cwd_after: list[str]


def run_and_watch(path: Path, workdir: Path, limit: float = 30.0) -> RunOutcome:
    """Start ``lolo-run FLOW --port N`` and knock on port N until the process ends."""
    port = free_port()
    start = time.monotonic()
    listened = False
    with subprocess.Popen(
        [*lolo_run_command(), str(path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
        cwd=workdir,
    ) as proc:
        while proc.poll() is None and time.monotonic() - start < limit:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.05):
                    listened = True
            except OSError:
                time.sleep(0.02)
        if proc.poll() is None:
            proc.kill()
        stdout, stderr = proc.communicate()
    return RunOutcome(
        proc.returncode if time.monotonic() - start < limit else None,
        stdout,
        stderr,
        time.monotonic() - start,
        listened,
        sorted(p.name for p in workdir.iterdir()),
    )


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    """Every broken case by file name: the committed files plus the generated ones."""
    made = tmp_path_factory.mktemp("generated")
    found = {name: read_case(BROKEN / name) for name in COMMITTED}

    header = f"# expect: 1: the limit is {LIMIT} bytes\n"
    good = (GOOD / "minimal.yaml").read_text(encoding="utf-8")
    padding = "# " + "x" * 77 + "\n"
    body = header + good
    body += padding * ((LIMIT - len(body)) // len(padding) + 1)
    oversize = made / "oversize.yaml"
    oversize.write_text(body, encoding="utf-8")
    assert oversize.stat().st_size > LIMIT
    found["oversize.yaml"] = read_case(oversize, header)

    zero = made / "zero_bytes.yaml"
    zero.write_bytes(b"")
    found["zero_bytes.yaml"] = read_case(zero, "# expect: 1: flow file is empty\n")
    return found


@pytest.fixture(scope="module")
def checked(cases: dict[str, Case]) -> dict[str, subprocess.CompletedProcess[str]]:
    """``lolo-run check`` on every case, several processes at a time."""
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = {name: pool.submit(check, case.path) for name, case in cases.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.fixture(scope="module")
def ran(cases: dict[str, Case], tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunOutcome]:
    """``lolo-run FILE --port N`` on every case, each in an empty working directory."""
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = {
            name: pool.submit(run_and_watch, case.path, tmp_path_factory.mktemp("cwd"))
            for name, case in cases.items()
        }
        return {name: future.result() for name, future in futures.items()}


def assert_reported(case: Case, stderr: str) -> None:
    """Each expected error is on a ``path:line: message`` line, naming the node if any."""
    lines = stderr.splitlines()
    for want in case.expected:
        prefix = f"{case.path}:{want.line}: "
        hits = [line for line in lines if line.startswith(prefix) and want.text in line]
        assert hits, (
            f"no line starting {prefix!r} and containing {want.text!r} in stderr:\n{stderr}"
        )
        label = case.node_label()
        if label is not None and len(case.expected) == 1:
            assert label in hits[0] or label.replace("node ", "node id ") in hits[0], (
                f"the message does not name {label}: {hits[0]}"
            )


def test_every_committed_case_says_what_it_expects() -> None:
    assert len(COMMITTED) >= 25
    for name in COMMITTED:
        case = read_case(BROKEN / name)
        assert case.expected, f"{name} has no '# expect: <line>: <message>' header"
        lines = (BROKEN / name).read_text(encoding="utf-8").splitlines()
        for want in case.expected:
            assert 1 <= want.line <= max(len(lines), 1), f"{name}: line {want.line} is outside"


@pytest.mark.parametrize("name", [*COMMITTED, *GENERATED])
def test_check_reports_the_mistake(
    name: str, cases: dict[str, Case], checked: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    case, result = cases[name], checked[name]
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == "", "a broken flow must not be reported on stdout (as ok)"
    assert_reported(case, result.stderr)
    # Nothing but located errors, one per mistake: no cascade of follow-on complaints.
    lines = result.stderr.splitlines()
    located = re.compile(re.escape(str(case.path)) + r":\d+: \S")
    assert all(located.match(line) for line in lines), result.stderr
    assert len(lines) == len(case.expected), result.stderr


@pytest.mark.parametrize("name", [*COMMITTED, *GENERATED])
def test_run_stops_before_listening(
    name: str, cases: dict[str, Case], ran: dict[str, RunOutcome]
) -> None:
    case, outcome = cases[name], ran[name]
    assert outcome.returncode is not None, "lolo-run kept running on a broken flow"
    assert outcome.returncode == 2, outcome
    assert not outcome.listened, "something accepted a connection on the port"
    assert "Listening to port" not in outcome.stdout + outcome.stderr
    assert "Traceback" not in outcome.stdout + outcome.stderr
    assert outcome.seconds < 20, f"took {outcome.seconds:.1f}s to give up"
    assert_reported(case, outcome.stderr)
    assert outcome.cwd_after == [], f"a broken flow left files behind: {outcome.cwd_after}"


def good_flows() -> Iterator[Path]:
    yield from sorted(GOOD.glob("*.yaml"))
    yield CHAT


@pytest.mark.parametrize("path", list(good_flows()), ids=lambda p: p.name)
def test_check_passes_a_good_flow(path: Path) -> None:
    result = check(path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{path}: ok\n"
    assert result.stderr == ""


def test_check_reports_every_file_given(cases: dict[str, Case]) -> None:
    picked = [
        cases[name]
        for name in (
            "unknown_node_type.yaml",
            "edge_unknown_in_port.yaml",
            "handler_missing.yaml",
        )
    ]
    good = GOOD / "minimal.yaml"
    result = check(picked[0].path, good, picked[1].path, picked[2].path)
    assert result.returncode == 2
    assert result.stdout == f"{good}: ok\n"
    for case in picked:
        assert_reported(case, result.stderr)
    assert len(result.stderr.splitlines()) == 3
    assert "Traceback" not in result.stderr


def test_check_reports_every_mistake_in_one_file(cases: dict[str, Case]) -> None:
    case = cases["several_mistakes.yaml"]
    assert len(case.expected) >= 3
    result = check(case.path)
    assert result.returncode == 2
    assert_reported(case, result.stderr)
    reported_lines = [int(line.split(":")[1]) for line in result.stderr.splitlines()]
    assert reported_lines == sorted(reported_lines), "errors come in file order"


def test_check_of_a_relative_path_reports_it_as_given(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(
        "app: x\nnodes:\n  - id: a\n    type: lolo/nope\n", encoding="utf-8"
    )
    result = check(Path("flow.yaml"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("flow.yaml:4: node 'a': unknown node type 'lolo/nope'")
