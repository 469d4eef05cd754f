"""``lolo-run check``, ``lolo-run schema`` and ``--help``, run as real processes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from lolo_runtime import __version__
from lolo_runtime.schema import flow_json_schema
from tests.support import lolo_run_command

TESTS = Path(__file__).resolve().parent
GOOD = TESTS / "flows" / "good"
BROKEN = TESTS / "flows" / "broken"
CHAT = TESTS.parent / "flows" / "chat.yaml"


def lolo_run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = lolo_run_command()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOLO_TEST_")}
    result = subprocess.run(
        [*command, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


# --- help ------------------------------------------------------------------------------


def test_help_documents_commands_and_options() -> None:
    result = lolo_run("--help")
    assert result.returncode == 0
    assert result.stderr == ""
    text = result.stdout
    for word in (
        "run FLOW",
        "check FLOW",
        "schema",
        "--port",
        "--host",
        "--log-level",
        "--log-format",
        "--shutdown-timeout",
        "$PORT",
        "Listening to port",
        "exit status",
        "path:line: message",
    ):
        assert word in text, f"--help does not mention {word!r}"


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("run", ["FLOW", "--port", "--host", "--log-level", "--log-format"]),
        ("check", ["FLOW", "path:line: message", "exits 2", "ok"]),
        ("schema", ["JSON Schema", "--output", "-o"]),
    ],
)
def test_each_command_has_help(command: str, words: list[str]) -> None:
    result = lolo_run(command, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: lolo-run {command}")
    for word in words:
        assert word in result.stdout


def test_version() -> None:
    result = lolo_run("--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"lolo-run {__version__}")


@pytest.mark.parametrize("args", [[], ["check"], ["check", "--bogus", "x.yaml"]])
def test_bad_command_lines_exit_2_with_usage(args: list[str]) -> None:
    result = lolo_run(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "usage: lolo-run" in result.stderr


# --- check -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", [*sorted(GOOD.glob("*.yaml")), CHAT], ids=lambda p: p.name)
def test_check_ok(path: Path) -> None:
    result = lolo_run("check", path)
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{path}: ok\n", "")


def test_check_several_good_files() -> None:
    paths = [*sorted(GOOD.glob("*.yaml")), CHAT]
    result = lolo_run("check", *paths)
    assert result.returncode == 0
    assert result.stdout.splitlines() == [f"{p}: ok" for p in paths]


def test_check_a_missing_file(tmp_path: Path) -> None:
    result = lolo_run("check", "nowhere.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "nowhere.yaml:1: cannot read flow file: No such file or directory\n"


def test_check_a_directory(tmp_path: Path) -> None:
    result = lolo_run("check", tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{tmp_path}:1: cannot read flow file")


def test_check_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("app: café\n".encode("latin-1"))
    result = lolo_run("check", path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{path}:1: cannot read flow file: 'utf-8' codec")


def test_check_the_same_handler_twice_in_one_run() -> None:
    # The handler module cache must not turn a second look at a broken handler into "ok".
    flow = BROKEN / "handler_raises_on_import.yaml"
    result = lolo_run("check", flow, flow)
    assert result.returncode == 2
    assert result.stderr.count("ZeroDivisionError") == 2


def test_run_of_a_missing_flow_exits_2(tmp_path: Path) -> None:
    result = lolo_run("nowhere.yaml", "--port", "1", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("nowhere.yaml:1: cannot read flow file")
    assert "Listening" not in result.stdout


# --- schema ----------------------------------------------------------------------------


def test_schema_prints_the_json_schema() -> None:
    result = lolo_run("schema")
    assert result.returncode == 0
    assert result.stderr == ""
    schema = json.loads(result.stdout)
    assert schema == flow_json_schema()
    assert schema["$schema"].startswith("https://json-schema.org/")


def test_schema_to_a_file_for_an_editor(tmp_path: Path) -> None:
    target = tmp_path / "lolo-flow.schema.json"
    result = lolo_run("schema", "-o", target)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert json.loads(target.read_text(encoding="utf-8")) == flow_json_schema()
    again = lolo_run("schema", "--output", target)
    assert again.returncode == 0
    assert json.loads(target.read_text(encoding="utf-8")) == flow_json_schema()

    # The comment editors read to find the schema is only a comment to lolo-run.
    flow = tmp_path / "app.yaml"
    flow.write_text(
        "# yaml-language-server: $schema=./lolo-flow.schema.json\n"
        + (GOOD / "minimal.yaml").read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    assert lolo_run("check", flow).stdout == f"{flow}: ok\n"


def test_schema_to_an_unwritable_place_is_a_clean_error(tmp_path: Path) -> None:
    result = lolo_run("schema", "-o", tmp_path / "no" / "such" / "dir" / "schema.json")
    assert result.returncode != 0
    assert "schema.json" in result.stderr
