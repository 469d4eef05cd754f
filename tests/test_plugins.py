"""Third-party node types, for real: the example package under ``docs/examples/`` is
pip-installed into a temporary directory, and the real ``lolo-run`` finds it through the
``lolo_runtime.nodes`` entry points (``PYTHONPATH`` points at that directory), checks and
serves its flow, and real WebSocket clients talk to it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_SOURCE = ROOT / "docs" / "examples" / "lolo-example-nodes"
ECHO_FLOW = EXAMPLE_SOURCE / "flows" / "echo-upper.yaml"
LOLO_RUN = Path(sys.executable).with_name("lolo-run")
ENTRY_POINT_GROUP = "lolo_runtime.nodes"
RECV_TIMEOUT = 10.0


# -- installing ------------------------------------------------------------------------------


def install_example(base: Path) -> Path:
    """pip-install the example package into ``base/example-site`` once; return that dir.

    ``--target`` keeps it out of the environment: only a process whose ``sys.path`` holds
    that directory sees the package and its entry points. The install is built from a copy
    of the sources, because setuptools leaves ``build/`` and ``*.egg-info`` next to them.
    A marker file records a finished install, so the session fixtures of this module and
    of ``test_registry.py`` share one install.
    """
    site = base / "example-site"
    done = base / "example-site.installed"
    if done.exists():
        return site
    source = base / "example-source"
    shutil.rmtree(source, ignore_errors=True)
    shutil.rmtree(site, ignore_errors=True)
    shutil.copytree(
        EXAMPLE_SOURCE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--target",
            str(site),
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert result.returncode == 0, f"pip install failed:\n{result.stdout}\n{result.stderr}"
    done.touch()
    return site


def write_dist_info(site: Path, dist: str, entry_points: dict[str, str]) -> Path:
    """Leave in ``site`` what installing a wheel named ``dist`` would leave for
    ``importlib.metadata``: its metadata and its entry points (no code needed)."""
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = [f"[{ENTRY_POINT_GROUP}]", *(f"{k} = {v}" for k, v in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return site


@pytest.fixture(scope="session")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_example(tmp_path_factory.getbasetemp())


# -- running lolo-run -----------------------------------------------------------------------


def env_with(*sites: Path) -> dict[str, str]:
    """The environment for ``lolo-run``, with ``sites`` first on its ``sys.path``."""
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "LOLO_STATE")}
    paths = [str(site) for site in sites]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    else:
        env.pop("PYTHONPATH", None)
    return env


def lolo_run(*args: str | Path, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``lolo-run`` to completion in ``cwd`` (where a run keeps its state store)."""
    assert LOLO_RUN.is_file(), f"{LOLO_RUN} is missing: pip install -e . first"
    return subprocess.run(
        [str(LOLO_RUN), *map(str, args)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def line_of(path: Path, text: str) -> int:
    """The 1-based number of the line of ``path`` containing ``text``."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {path}")


@dataclass
class App:
    """A ``lolo-run`` process serving a flow, with its output captured in files."""

    proc: subprocess.Popen[bytes]
    port: int
    stdout: Path
    stderr: Path

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        return self.stderr.read_text()

    def stop(self) -> int:
        """SIGTERM, as a service manager would; return the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


StartApp = Callable[..., App]


@pytest.fixture
def start_app(tmp_path: Path) -> Iterator[StartApp]:
    """``start_app(flow, env)`` runs ``lolo-run flow --port 0`` and waits until it listens.
    Every process started is stopped (killed if need be) when the test ends."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(flow: Path, env: dict[str, str]) -> App:
        assert LOLO_RUN.is_file(), f"{LOLO_RUN} is missing: pip install -e . first"
        n = len(procs)
        stdout, stderr = tmp_path / f"app{n}.stdout", tmp_path / f"app{n}.stderr"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            proc = subprocess.Popen(
                [str(LOLO_RUN), str(flow), "--port", "0"],
                stdout=out,
                stderr=err,
                env=env,
                cwd=tmp_path,  # state store under tmp_path
            )
        procs.append(proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = re.search(r"^Listening to port (\d+)$", stdout.read_text(), re.MULTILINE)
            if found:
                return App(proc, int(found.group(1)), stdout, stderr)
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(
            f"lolo-run did not start listening (exit code {proc.poll()}):\n"
            f"{stdout.read_text()}\n{stderr.read_text()}"
        )

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def recv(ws: ClientConnection) -> str | bytes:
    return await asyncio.wait_for(ws.recv(), RECV_TIMEOUT)


# -- the installed package ------------------------------------------------------------------


def test_the_install_holds_the_package_and_its_entry_points(example_site: Path) -> None:
    assert (example_site / "lolo_example_nodes" / "uppercase.py").is_file()
    assert (example_site / "lolo_example_nodes" / "py.typed").is_file()
    (info,) = example_site.glob("lolo_example_nodes-*.dist-info")
    entry_points = (info / "entry_points.txt").read_text()
    assert f"[{ENTRY_POINT_GROUP}]" in entry_points
    assert "example/uppercase = lolo_example_nodes.uppercase:Uppercase" in entry_points
    assert "example/tap = lolo_example_nodes.tap:Tap" in entry_points
    # Installed beside the environment, not into it.
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib.util as u; print(u.find_spec('lolo_example_nodes') is None)",
        ],
        env=env_with(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert found.stdout.strip() == "True"


# -- check ----------------------------------------------------------------------------------


def test_check_accepts_the_example_flow_with_the_plugin_installed(
    example_site: Path, tmp_path: Path
) -> None:
    result = lolo_run("check", ECHO_FLOW, env=env_with(example_site), cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"{ECHO_FLOW}: ok\n"


def test_check_without_the_plugin_reports_its_types_as_unknown(tmp_path: Path) -> None:
    result = lolo_run("check", ECHO_FLOW, env=env_with(), cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    tap_line = line_of(ECHO_FLOW, "type: example/tap")
    upper_line = line_of(ECHO_FLOW, "type: example/uppercase")
    assert lines[0].startswith(
        f"{ECHO_FLOW}:{tap_line}: node 'tap': unknown node type 'example/tap'"
    )
    assert lines[1].startswith(
        f"{ECHO_FLOW}:{upper_line}: node 'upper': unknown node type 'example/uppercase'"
    )
    assert len(lines) == 2


def test_a_plugin_params_model_is_enforced_at_load(example_site: Path, tmp_path: Path) -> None:
    flow = tmp_path / "bad-params.yaml"
    flow.write_text(
        textwrap.dedent("""\
        app: bad-params
        nodes:
          - id: upper
            type: example/uppercase
            params:
              feild: message
          - id: tap
            type: example/tap
            params:
              level: loud
          - id: fixed
            type: example/uppercase
            inputs: [a, b]
        edges:
          - upper.out -> tap.in
    """)
    )
    result = lolo_run("check", flow, env=env_with(example_site), cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = result.stderr.splitlines()
    assert errors[0] == f"{flow}:6: node 'upper': unknown param 'feild'"
    assert errors[1].startswith(f"{flow}:10: node 'tap': params.level: Input should be 'debug',")
    assert errors[2] == (
        f"{flow}:13: node 'fixed': type 'example/uppercase' "
        "has fixed in-ports (in); remove 'inputs:'"
    )
    assert len(errors) == 3


def test_schema_describes_the_plugin_params(example_site: Path, tmp_path: Path) -> None:
    result = lolo_run("schema", env=env_with(example_site), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    rules = {
        rule["if"]["properties"]["type"]["const"]: rule["then"]
        for rule in schema["$defs"]["NodeSpec"]["allOf"]
    }
    params = rules["example/uppercase"]["properties"]["params"]
    assert params["properties"]["field"]["default"] == "message"
    assert params["additionalProperties"] is False
    assert "example/tap" in rules


# -- the echo-upper app, end to end ---------------------------------------------------------


def test_echo_upper_app_end_to_end(example_site: Path, start_app: StartApp) -> None:
    app = start_app(ECHO_FLOW, env_with(example_site))
    # 30: within the trigger's default allowance of 40 messages at once per connection.
    burst = [f"message {i} of the burst" for i in range(30)]

    async def talk() -> None:
        async with connect(app.url("/echo")) as alice, connect(app.url("/echo")) as bob:
            await alice.send("hello")
            assert await recv(alice) == "HELLO"
            await bob.send("Grüße aus Köln")
            assert await recv(bob) == "GRÜSSE AUS KÖLN"
            await alice.send(b"bytes stay bytes")
            assert await recv(alice) == b"BYTES STAY BYTES"  # binary in, binary out
            for text in burst:
                await alice.send(text)
            assert [await recv(alice) for _ in burst] == [text.upper() for text in burst]
            # Bob got nothing of Alice's: his next frame answers his own message.
            await bob.send("only mine")
            assert await recv(bob) == "ONLY MINE"

    asyncio.run(talk())
    assert app.stop() == 0
    log = app.log()
    assert "Traceback" not in log
    assert "[echo-upper/tap] tap ready, logging each event at info" in log
    assert re.search(
        r"\[echo-upper/tap session=[0-9a-f-]{36}\] event #1 on 'in': "
        r"message='hello'$",
        log,
        re.MULTILINE,
    )
    total = 1 + 1 + 1 + len(burst) + 1
    # ``close`` ran at shutdown, after every event was counted.
    closing = log.index(f"[echo-upper/tap] tap saw {total} events\n")
    assert closing > log.rindex("] event #")


# -- the dotted ``package.module:Class`` form -----------------------------------------------


def write_dotted_flow(directory: Path, upper_type: str) -> Path:
    """A flow naming its upper-casing node by class path, upper-casing the field ``text``."""
    (directory / "to_text.py").write_text(
        textwrap.dedent("""\
        async def handler(ev, ctx):
            ctx.route({"text": ev["message"], "message": ev["message"]})
    """)
    )
    (directory / "reply_text.py").write_text(
        textwrap.dedent("""\
        async def handler(ev, ctx):
            ctx.emit("response", {"body": {"text": ev["text"], "message": ev["message"]}})
    """)
    )
    flow = directory / "dotted.yaml"
    flow.write_text(
        textwrap.dedent(f"""\
        app: dotted
        nodes:
          - id: ws
            type: lolo/websocket-trigger
            params: {{path: /shout}}
          - id: to-text
            type: lolo/function
            handler: to_text.py
          - id: upper
            type: {upper_type}
            params: {{field: text}}
          - id: reply
            type: lolo/function
            handler: reply_text.py
            outputs: []
        edges:
          - ws.message -> to-text.in
          - to-text.out -> upper.in
          - upper.out -> reply.in
    """)
    )
    return flow


def test_dotted_class_form_works_end_to_end(
    example_site: Path, tmp_path: Path, start_app: StartApp
) -> None:
    flow = write_dotted_flow(tmp_path, "lolo_example_nodes.uppercase:Uppercase")
    check = lolo_run("check", flow, env=env_with(example_site), cwd=tmp_path)
    assert (check.returncode, check.stdout, check.stderr) == (0, f"{flow}: ok\n", "")
    app = start_app(flow, env_with(example_site))

    async def talk() -> None:
        async with connect(app.url("/shout")) as ws:
            await ws.send("quiet please")
            reply = await recv(ws)
            assert isinstance(reply, str)
            # Only the field named by ``params.field`` is upper-cased.
            assert json.loads(reply) == {"text": "QUIET PLEASE", "message": "quiet please"}

    asyncio.run(talk())
    assert app.stop() == 0
    assert "Traceback" not in app.log()


def test_dotted_class_form_reports_an_unimportable_module(tmp_path: Path) -> None:
    flow = write_dotted_flow(tmp_path, "lolo_example_nodes.uppercase:Uppercase")
    # The package is not on the path.
    result = lolo_run("check", flow, env=env_with(), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        f"{flow}:10: node 'upper': cannot import 'lolo_example_nodes.uppercase' for "
        "'lolo_example_nodes.uppercase:Uppercase': No module named 'lolo_example_nodes'\n"
    )


def test_dotted_class_form_refuses_a_class_that_is_not_a_node(
    example_site: Path, tmp_path: Path
) -> None:
    flow = write_dotted_flow(tmp_path, "lolo_example_nodes.uppercase:UppercaseParams")
    result = lolo_run("check", flow, env=env_with(example_site), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        f"{flow}:10: node 'upper': 'lolo_example_nodes.uppercase:UppercaseParams' "
        "is not a lolo_runtime.node.Node subclass\n"
    )


# -- a name registered twice ----------------------------------------------------------------


def assert_clean_duplicate_error(
    result: subprocess.CompletedProcess[str], name: str, *sources: str
) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    assert f"node type {name!r} is registered twice" in result.stderr
    for source in sources:
        assert source in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("command", ["check", "run"])
def test_a_plugin_taking_a_builtin_name_is_a_clean_error(tmp_path: Path, command: str) -> None:
    imposter = write_dist_info(
        tmp_path / "imposter-site", "lolo-imposter", {"lolo/function": "lolo_imposter:Fake"}
    )
    # ``run`` gets a free port in case it wrongly gets as far as listening.
    port_args = ["--port", "0"] if command == "run" else []
    result = lolo_run(
        command, ROOT / "flows" / "chat.yaml", *port_args, env=env_with(imposter), cwd=tmp_path
    )
    assert_clean_duplicate_error(
        result, "lolo/function", "lolo-runtime (built-in)", "package 'lolo-imposter'"
    )


def test_two_plugins_claiming_one_name_is_a_clean_error(example_site: Path, tmp_path: Path) -> None:
    copycat = write_dist_info(
        tmp_path / "copycat-site", "lolo-copycat", {"example/uppercase": "lolo_copycat:Upper"}
    )
    result = lolo_run("check", ECHO_FLOW, env=env_with(example_site, copycat), cwd=tmp_path)
    assert_clean_duplicate_error(
        result, "example/uppercase", "package 'lolo-example-nodes'", "package 'lolo-copycat'"
    )
