"""``load_flow``: from a YAML file to built nodes and a routing table, or located errors."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
import shutil
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lolo_runtime.errors import FlowError, FlowErrors
from lolo_runtime.flowfile import Edge
from lolo_runtime.loader import Flow, load_flow
from lolo_runtime.nodes.function import FunctionNode
from lolo_runtime.nodes.websocket import WebSocketTrigger
from lolo_runtime.registry import Registry

# See tests/test_yamlsource.py: keeps a failing property test from crashing the session
# when libcst happens to be installed.
with contextlib.suppress(ImportError), warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import libcst  # noqa: F401

TESTS = Path(__file__).resolve().parent
GOOD = TESTS / "flows" / "good"
BROKEN = TESTS / "flows" / "broken"
CHAT = TESTS.parent / "flows" / "chat.yaml"
FULL = GOOD / "full.yaml"

NO_ENV: dict[str, str] = {}


def full(environ: dict[str, str] | None = None) -> Flow:
    return load_flow(FULL, environ=NO_ENV if environ is None else environ)


# --- a good flow, piece by piece -------------------------------------------------------


def test_top_level() -> None:
    flow = full()
    assert flow.path == FULL
    assert flow.app == flow.spec.app == "full-example"
    assert flow.spec.description == "Every key of a flow file, for the loader tests."
    assert flow.spec.port == 4321
    assert flow.env == {"GREETING": "hello", "PRICE": "$5", "PLAIN": "just text"}


def test_nodes_are_built_with_their_types() -> None:
    nodes = full().nodes
    assert list(nodes) == ["ws", "router", "left", "right"]
    assert type(nodes["ws"]) is WebSocketTrigger
    assert all(type(nodes[i]) is FunctionNode for i in ("router", "left", "right"))
    assert [nodes[i].id for i in nodes] == list(nodes)
    assert nodes["ws"].config.name == "WS /socket"
    assert nodes["left"].config.name == "left"
    assert nodes["router"].config.type == "lolo/function"
    assert nodes["router"].config.flow_dir == GOOD


def test_ports_chosen_and_defaulted() -> None:
    nodes = full().nodes
    assert list(nodes["ws"].in_ports) == []
    assert list(nodes["ws"].out_ports) == ["req", "message", "close"]
    assert list(nodes["router"].in_ports) == ["req", "msg", "close"]
    assert list(nodes["router"].out_ports) == ["req", "msg"]
    assert (list(nodes["left"].in_ports), list(nodes["left"].out_ports)) == (["in"], [])
    assert (list(nodes["right"].in_ports), list(nodes["right"].out_ports)) == (["in"], ["out"])
    assert nodes["router"].in_ports.msg == "msg"


def test_params_are_validated_into_the_types_model() -> None:
    ws = full().nodes["ws"].params
    assert (ws.path, ws.max_message_bytes, ws.compression) == ("/socket", 65536, True)
    assert ws.origins == ["https://example.com"]


def test_function_params_are_a_plain_dict() -> None:
    assert full().nodes["router"].params == {
        "greeting": "hello",
        "limits": {"burst": 5, "names": ["a", "b"]},
    }
    assert full().nodes["left"].params == {}


def test_environment_is_substituted_into_env_and_params() -> None:
    flow = full(
        {
            "LOLO_TEST_GREETING": "hi ${NOT_AGAIN}",
            "LOLO_TEST_WS_PATH": "/chat",
            "LOLO_TEST_NAME": "zed",
        }
    )
    assert flow.env["GREETING"] == "hi ${NOT_AGAIN}"
    assert flow.nodes["ws"].params.path == "/chat"
    assert flow.nodes["router"].params["greeting"] == "hi ${NOT_AGAIN}"
    assert flow.nodes["router"].params["limits"]["names"] == ["a", "zed"]


def test_environment_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOLO_TEST_WS_PATH", "/from-os")
    assert load_flow(FULL).nodes["ws"].params.path == "/from-os"


def test_substituted_text_is_then_converted_by_the_params_model(tmp_path: Path) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text(
        "app: a\nnodes:\n  - id: ws\n    type: lolo/websocket-trigger\n    params:\n"
        "      path: /s\n      max_message_bytes: ${LIMIT}\n      compression: ${ZIP:-no}\n",
        encoding="utf-8",
    )
    params = load_flow(path, environ={"LIMIT": "2048"}).nodes["ws"].params
    assert (params.max_message_bytes, params.compression) == (2048, False)


def test_edges_and_routing_table() -> None:
    flow = full()
    assert flow.edges[0] == Edge("ws", "req", "router", "req")
    assert flow.edges[-1] == Edge("right", "out", "left", "in")
    table = flow.table
    assert table.targets("ws", "message") == (("router", "msg"),)
    # Fan-out in file order; the edge written twice delivers once.
    assert table.targets("router", "msg") == (("left", "in"), ("right", "in"))
    assert table.targets("router", "req") == (("left", "in"),)
    assert table.targets("left", "out") == ()
    feeds = {target for targets in table.as_dict().values() for target in targets}
    assert ("left", "in") in feeds
    assert not any(node == "ws" for node, _ in feeds)


def test_handler_module_is_loaded_once_and_shared() -> None:
    first, second = full(), full()
    left, right = first.nodes["left"], first.nodes["right"]
    assert isinstance(left, FunctionNode) and isinstance(right, FunctionNode)
    module = left.module
    # Two nodes naming the same file (even spelled differently) share one module...
    assert right.module is module
    # ...and loading the flow again does not import it again.
    again = second.nodes["left"]
    assert isinstance(again, FunctionNode) and again.module is module
    assert sys.modules[module.__name__] is module
    assert module.__file__ == str(GOOD / "handlers" / "shared.py")
    assert left.handle is module.handler is right.handle


def test_module_state_lives_with_the_module() -> None:
    node = full().nodes["left"]
    assert isinstance(node, FunctionNode)
    ctx = SimpleNamespace(node_id="left")
    node.handle({"n": 1}, ctx)  # type: ignore[arg-type,unused-coroutine]
    assert node.module.received[-1] == ("left", {"n": 1})
    assert full().nodes["right"].module.received[-1] == ("left", {"n": 1})  # type: ignore[attr-defined]


def test_async_and_plain_handlers_are_told_apart() -> None:
    nodes = full().nodes
    assert inspect.iscoroutinefunction(nodes["router"].handle)
    assert not inspect.iscoroutinefunction(nodes["left"].handle)


def test_setup_is_found_and_run_by_node_setup() -> None:
    router = full().nodes["router"]
    assert isinstance(router, FunctionNode)
    calls = router.module.setup_calls
    before = len(calls)
    asyncio.run(router.setup(SimpleNamespace(params={"x": 1})))  # type: ignore[arg-type]
    assert calls[before:] == [{"x": 1}]


def test_a_module_without_setup_has_a_harmless_one() -> None:
    left = full().nodes["left"]
    assert isinstance(left, FunctionNode)
    assert not hasattr(left.module, "setup")
    asyncio.run(left.setup(SimpleNamespace()))  # type: ignore[arg-type]


def test_anchors_and_merge_keys() -> None:
    nodes = load_flow(GOOD / "anchors.yaml", environ=NO_ENV).nodes
    assert nodes["public"].params.path == "/public"
    assert nodes["private"].params.path == "/private"
    assert nodes["private"].params.max_message_bytes == 1024
    assert nodes["private"].params.compression is True


def test_the_chat_app_loads() -> None:
    flow = load_flow(CHAT, environ=NO_ENV)
    assert flow.app == "chat"
    assert list(flow.nodes) == [
        "ws",
        "page",
        "process-request",
        "affirm-connection",
        "handle-messages",
    ]
    assert list(flow.nodes["process-request"].in_ports) == ["req", "msg", "close"]
    assert flow.table.targets("ws", "message") == (("process-request", "msg"),)
    assert flow.table.targets("process-request", "msg") == (("handle-messages", "in"),)


def test_handler_paths_are_relative_to_the_flow_not_the_cwd(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert "router" in load_flow(FULL, environ=NO_ENV).nodes
    monkeypatch.chdir(GOOD)
    assert "router" in load_flow("full.yaml", environ=NO_ENV).nodes


def test_a_private_registry_can_be_given() -> None:
    with pytest.raises(FlowErrors) as caught:
        load_flow(GOOD / "minimal.yaml", registry=Registry(), environ=NO_ENV)
    assert "unknown node type 'lolo/websocket-trigger'" in str(caught.value)


# --- broken flows, in process ----------------------------------------------------------

_EXPECT = re.compile(r"^# expect: (\d+): (.+)$", re.MULTILINE)


@pytest.mark.parametrize("path", sorted(BROKEN.glob("*.yaml")), ids=lambda p: p.name)
def test_broken_flows_raise_located_errors(path: Path) -> None:
    expected = [(int(line), text) for line, text in _EXPECT.findall(path.read_text("utf-8"))]
    with pytest.raises(FlowErrors) as caught:
        load_flow(path, environ=NO_ENV)
    errors = caught.value.errors
    assert all(isinstance(e, FlowError) and e.path == path for e in errors)
    got = [(e.line, e.message) for e in errors]
    for line, text in expected:
        assert any(g_line == line and text in msg for g_line, msg in got), (line, text, got)
    assert str(caught.value) == "\n".join(f"{path}:{e.line}: {e.message}" for e in errors)


# --- properties: anything in, a Flow or located errors out -----------------------------

REGISTRY = Registry.default()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with handler files for generated flows to name."""
    root = tmp_path_factory.mktemp("generated-flows")
    shutil.copytree(GOOD / "handlers", root / "handlers")
    shutil.copytree(BROKEN / "handlers", root / "broken")
    return root


def check_load(workdir: Path, document: Any) -> Flow | None:
    """Write ``document`` as YAML, load it, and check the only two outcomes allowed."""
    path = workdir / "flow.yaml"
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    last_line = text.count("\n") + 1
    try:
        flow = load_flow(path, registry=REGISTRY, environ={"SET": "/set", "NUM": "12"})
    except FlowErrors as errors:
        assert errors.errors, "FlowErrors without an error"
        for error in errors.errors:
            shown = str(error)
            assert "\n" not in shown, shown
            match = re.match(rf"{re.escape(str(path))}:(\d+): \S", shown)
            assert match, shown
            assert 1 <= int(match.group(1)) <= last_line, (shown, text)
        return None
    # A flow that loads is consistent: every edge joins ports that exist.
    assert list(flow.nodes) == [node.id for node in flow.spec.nodes]
    for edge in flow.edges:
        assert edge.source_port in flow.nodes[edge.source].out_ports
        assert edge.target_port in flow.nodes[edge.target].in_ports
        assert (edge.target, edge.target_port) in flow.table.targets(edge.source, edge.source_port)
    return flow


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(
        st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=10
    )
)
ANY_DOC = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "app",
                    "nodes",
                    "edges",
                    "env",
                    "port",
                    "id",
                    "type",
                    "params",
                    "handler",
                    "inputs",
                    "outputs",
                    "x",
                ]
            )
            | st.text(max_size=5),
            inner,
            max_size=5,
        )
    ),
    max_leaves=30,
)

IDS = st.sampled_from(["ws", "chat", "sink", "ws", "bad id", "9x", "", "n-1"])
PORTS = st.sampled_from(["in", "out", "req", "message", "close", "msg", "nope", "my port"])
TYPES = st.sampled_from(
    [
        "lolo/websocket-trigger",
        "lolo/function",
        "lolo/functon",
        "lolo/api-auth",
        "no_such_package.nodes:Thing",
        "pathlib:Path",
        "lolo_runtime.node:Node",
        "",
        "x:",
    ]
)
HANDLERS = st.sampled_from(
    [
        "handlers/router.py",
        "handlers/shared.py",
        "handlers/missing.py",
        "broken/README.txt",
        "broken/raises_on_import.py",
        "broken/syntax_error.py",
        "broken/no_handler.py",
        "broken/one_argument.py",
        "broken/setup_no_argument.py",
        "broken/handler_is_a_string.py",
        "handlers",
        "",
    ]
)
PARAM_VALUES = st.one_of(
    SCALARS,
    st.sampled_from(["/socket", "${SET}", "${UNSET}", "${NUM}", "${bad ref}", "$$"]),
    st.lists(st.sampled_from(["https://a.example", "${SET}"]), max_size=2),
)
PARAMS = st.dictionaries(
    st.sampled_from(["path", "max_message_bytes", "compression", "origins", "other"]),
    PARAM_VALUES,
    max_size=4,
)


NODE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "id": IDS,
    "type": TYPES,
    "handler": HANDLERS,
    "inputs": st.lists(PORTS, max_size=3),
    "outputs": st.lists(PORTS, max_size=3),
    "params": PARAMS,
    "name": st.text(max_size=8) | st.integers(),
    "nmae": st.just("typo"),
}
TOP_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "app": st.sampled_from(["chat", "my app", "", None]),
    "port": st.integers(min_value=-5, max_value=70000) | st.text(max_size=3),
    "env": st.dictionaries(
        st.sampled_from(["A", "B"]), st.sampled_from(["x", "${SET}", "${UNSET}", "$$", "${"])
    )
    | st.lists(st.text(max_size=3), max_size=2),
    "edges": st.lists(st.sampled_from(["a => b", "x.y->z.w", "ws.req -> ghost.in"]), max_size=2),
    "nodes": st.lists(st.text(max_size=3), max_size=2),
    "eges": st.just([]),
}


def out_ports(node: dict[str, Any]) -> list[str]:
    if node["type"] == "lolo/websocket-trigger":
        return ["req", "message", "close"]
    return list(node.get("outputs", ["out"]))


def in_ports(node: dict[str, Any]) -> list[str]:
    if node["type"] == "lolo/websocket-trigger":
        return []
    return list(node.get("inputs", ["in"]))


@st.composite
def flow_docs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid flow, then up to three random mistakes made in it."""
    nodes: list[dict[str, Any]] = [
        {
            "id": "ws",
            "type": "lolo/websocket-trigger",
            "params": {"path": draw(st.sampled_from(["/socket", "${SET}", "/a/b"]))},
        }
    ]
    for i in range(draw(st.integers(min_value=1, max_value=3))):
        node: dict[str, Any] = {
            "id": f"f{i}",
            "type": "lolo/function",
            "handler": draw(st.sampled_from(["handlers/router.py", "handlers/shared.py"])),
        }
        if draw(st.booleans()):
            node["inputs"] = draw(
                st.lists(
                    st.sampled_from(["in", "req", "msg", "close"]),
                    min_size=1,
                    max_size=3,
                    unique=True,
                )
            )
        if draw(st.booleans()):
            node["outputs"] = draw(
                st.lists(st.sampled_from(["out", "req", "msg"]), max_size=2, unique=True)
            )
        if draw(st.booleans()):
            node["params"] = draw(st.dictionaries(st.sampled_from(["a", "b"]), PARAM_VALUES))
        nodes.append(node)
    outs = [(n["id"], p) for n in nodes for p in out_ports(n)]
    ins = [(n["id"], p) for n in nodes for p in in_ports(n)]
    wire = st.tuples(st.sampled_from(outs), st.sampled_from(ins)).map(
        lambda pair: f"{pair[0][0]}.{pair[0][1]} -> {pair[1][0]}.{pair[1][1]}"
    )
    doc: dict[str, Any] = {"app": "chat", "nodes": nodes, "edges": draw(st.lists(wire, max_size=5))}

    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        where = draw(st.sampled_from(["node", "top", "drop", "edge"]))
        if where == "node":
            target = draw(st.sampled_from(nodes))
            key = draw(st.sampled_from(sorted(NODE_FIELDS)))
            target[key] = draw(NODE_FIELDS[key])
        elif where == "top":
            key = draw(st.sampled_from(sorted(TOP_FIELDS)))
            doc[key] = draw(TOP_FIELDS[key])
        elif where == "drop":
            doc.pop(draw(st.sampled_from(["app", "nodes", "edges"])), None)
        else:
            doc.setdefault("edges", []).append(
                draw(
                    st.builds(
                        "{}.{} -> {}.{}".format,
                        st.sampled_from(["ws", "f0", "ghost"]),
                        PORTS,
                        st.sampled_from(["ws", "f0", "ghost"]),
                        PORTS,
                    )
                )
            )
    return doc


SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(ANY_DOC)
def test_any_yaml_gives_a_flow_or_located_errors(workdir: Path, document: Any) -> None:
    check_load(workdir, document)


@SETTINGS
@given(flow_docs())
def test_flow_shaped_yaml_gives_a_flow_or_located_errors(
    workdir: Path, document: dict[str, Any]
) -> None:
    check_load(workdir, document)


def test_the_generator_also_makes_flows_that_load(workdir: Path) -> None:
    # Guards the property test above against only ever exercising the error paths.
    doc = {
        "app": "chat",
        "nodes": [
            {"id": "ws", "type": "lolo/websocket-trigger", "params": {"path": "${SET}"}},
            {
                "id": "chat",
                "type": "lolo/function",
                "handler": "handlers/router.py",
                "inputs": ["req"],
                "outputs": ["msg"],
            },
        ],
        "edges": ["ws.req -> chat.req"],
    }
    flow = check_load(workdir, doc)
    assert flow is not None
    assert flow.nodes["ws"].params.path == "/set"


@pytest.mark.parametrize("path", ["/_lolo/health", "/_lolo/openapi.json", "/_lolo/x/:id"])
def test_paths_under_lolo_are_the_runtimes_own(tmp_path: Path, path: str) -> None:
    from lolo_runtime.errors import FlowErrors
    from lolo_runtime.loader import load_flow

    flow = tmp_path / "flow.yaml"
    flow.write_text(
        f"app: t\nnodes:\n  - id: h\n    type: lolo/http-trigger\n    params:\n      path: {path}\n"
    )
    with pytest.raises(FlowErrors) as errors:
        load_flow(flow)
    assert f"{flow}:6: node 'h': path '{path}' is under /_lolo/" in str(errors.value.errors[0])
