"""One error contract: whatever it is given, the CLI answers with a line and a status.

Every deliberate error derives from ``LoloError``; ``lolo-run`` catches it and exits 2 for
bad input, 1 for a failure at run time, never with a traceback. Hypothesis drives
``main`` with arbitrary arguments and an arbitrary file (never a runnable flow, which
would serve until stopped).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from lolo_runtime.cli import main
from lolo_runtime.errors import FlowErrors, LoloError, UsageError
from lolo_runtime.loader import load_flow
from lolo_runtime.runtime import StartupError
from lolo_runtime.state import StateError

WORDS = st.sampled_from(
    [
        "run",
        "check",
        "schema",
        "keys",
        "create",
        "list",
        "revoke",
        "--port",
        "--host",
        "--state",
        "--email",
        "--account",
        "--output",
        "-o",
        "--log-level",
        "--log-format",
        "--ssl-certfile",
        "--ssl-keyfile",
        "--proxy-headers",
        "--forwarded-allow-ips",
        "--loop",
        "--shutdown-timeout",
        "--state-sync",
        "flow.yaml",
        "missing.yaml",
        "folder",
        "",
        "0",
        "-1",
        "70000",
        "a@b",
        "not-an-email",
        "*",
        "uvloop",
        "debug",
        "json",
        "lolo_00000000",
        "nul\x00byte",
        "/dev/null/x",
        "/",
    ]
)
ARGS = st.lists(st.one_of(WORDS, st.text(max_size=12)), max_size=7)
CONTENT = st.one_of(
    st.text(max_size=300),
    st.sampled_from(
        [
            "app: x\nnodes: [{id: a, type: lolo/nope}]\n",
            "app: [\n",
            "- 1\n- 2\n",
            "",
        ]
    ),
)


def runnable(path: Path) -> bool:
    try:
        load_flow(path, environ={})
    except (FlowErrors, LoloError, OSError, ValueError):
        return False
    return True


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(args=ARGS, content=CONTENT)
@example(args=["keys", "list", "--state", "nul\x00byte"], content="")
@example(args=["check", "nul\x00byte"], content="")
@example(args=["nul\x00byte", "--state", "nul\x00byte"], content="")
@example(args=["schema", "-o", "nul\x00byte"], content="")
@example(args=["flow.yaml", "--ssl-certfile", "nul\x00byte"], content="app: [")
def test_any_command_line_gets_a_status_and_no_traceback(args: list[str], content: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        where = Path(folder)
        flow = where / "flow.yaml"
        flow.write_text(content, encoding="utf-8", errors="surrogatepass")
        (where / "folder").mkdir()
        assume(not runnable(flow))
        out, err = io.StringIO(), io.StringIO()
        before = Path.cwd()
        saved = {name: os.environ.get(name) for name in ("LOLO_STATE", "PORT")}
        os.environ["LOLO_STATE"] = str(where / "state.sqlite3")
        os.environ.pop("PORT", None)
        os.chdir(where)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    status = main(args)
                except SystemExit as exit_:  # argparse: --help, or a usage error
                    status = exit_.code if isinstance(exit_.code, int) else 2
        finally:
            os.chdir(before)
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    assert status in (0, 1, 2), (args, status, err.getvalue())
    assert "Traceback" not in err.getvalue(), (args, err.getvalue())


def test_every_deliberate_error_is_a_lolo_error() -> None:
    for error in (UsageError, StateError, StartupError, FlowErrors):
        assert issubclass(error, LoloError), error
    from lolo_runtime.edge.listener import ListenError

    assert issubclass(ListenError, LoloError)


def test_a_bad_email_is_one_line_and_status_2(tmp_path: Path) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = main(
            ["keys", "create", "--email", "not-an-email", "--state", str(tmp_path / "s.sqlite3")]
        )
    assert status == 2
    assert err.getvalue().count("\n") == 1
    assert "email must look like an address" in err.getvalue()
