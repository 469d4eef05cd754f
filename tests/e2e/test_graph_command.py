"""``lolo-run graph`` on the shipped chats, run as a user runs it.

What each picture must show is read from the flow files themselves (with PyYAML, not
with lolo-runtime's loader), so a node or an edge the command forgot cannot go unseen.
The README's drawing of the chat must be what the command prints today.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.graph_support import need_dot, parse_mermaid, read_svg, render_with_mermaid
from tests.support import ROOT, lolo_run_command

FLOWS = ["chat.yaml", "chat-cluster.yaml"]
TRIGGER_TYPES = {"lolo/websocket-trigger", "lolo/http-trigger", "lolo/static"}
_EDGE = re.compile(r"^\s*(\S+)\.(\S+)\s*->\s*(\S+)\.(\S+)\s*$")


@dataclass(frozen=True)
class Expected:
    app: str
    nodes: dict[str, tuple[str, str]]  # id -> (name, type)
    edges: list[tuple[str, str, str]]  # (source id, "out → in", target id)


def expected(flow: Path) -> Expected:
    data = yaml.safe_load(flow.read_text(encoding="utf-8"))
    nodes = {node["id"]: (node.get("name") or node["id"], node["type"]) for node in data["nodes"]}
    edges: list[tuple[str, str, str]] = []
    for text in data["edges"]:
        match = _EDGE.match(text)
        assert match is not None, text
        source, out_port, target, in_port = match.groups()
        edges.append((source, f"{out_port} \u2192 {in_port}", target))
    return Expected(data["app"], nodes, edges)


def lolo_graph(*args: str | Path) -> str:
    result = subprocess.run(
        [*lolo_run_command(), "graph", *map(str, args)],
        capture_output=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0 and result.stderr == b"", result.stderr.decode()
    return result.stdout.decode("utf-8")


@pytest.mark.parametrize("name", FLOWS)
def test_mermaid_of_the_chats(name: str) -> None:
    flow = ROOT / "flows" / name
    want = expected(flow)
    chart = parse_mermaid(lolo_graph(flow))
    assert chart.title == want.app
    by_name = {node.name: node for node in chart.nodes.values()}
    assert len(by_name) == len(chart.nodes) == len(want.nodes)
    mermaid_id = {}
    for node_id, (node_name, node_type) in want.nodes.items():
        node = by_name[node_name]
        assert node.type == node_type
        trigger = node_type in TRIGGER_TYPES
        assert (node.shape, node.css_class) == (
            ("stadium", "trigger") if trigger else ("box", None)
        ), node_id
        mermaid_id[node_id] = node.id
    assert [(e.source, e.label, e.target) for e in chart.edges] == [
        (mermaid_id[source], label, mermaid_id[target]) for source, label, target in want.edges
    ]


@pytest.mark.parametrize("name", FLOWS)
def test_svg_of_the_chats(name: str, tmp_path: Path) -> None:
    need_dot()
    flow = ROOT / "flows" / name
    want = expected(flow)
    output = tmp_path / "graph.svg"
    assert lolo_graph(flow, "--format", "svg", "--output", output) == ""
    nodes, edges = read_svg(output)
    assert {node_id: node.lines for node_id, node in nodes.items()} == {
        node_id: (node_name, node_type) for node_id, (node_name, node_type) in want.nodes.items()
    }
    assert sorted((e.source, e.label, e.target) for e in edges) == sorted(want.edges)


def test_the_readme_shows_the_chat_as_drawn_today() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## See a flow\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```mermaid\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1, "one Mermaid block in the README's 'See a flow'"
    assert blocks[0] == lolo_graph("flows/chat.yaml"), (
        "the README's graph is out of date: run 'lolo-run graph flows/chat.yaml' and paste it"
    )


@pytest.mark.parametrize("name", FLOWS)
def test_mermaid_itself_draws_the_chats(name: str) -> None:
    flow = ROOT / "flows" / name
    want = expected(flow)
    nodes, edges = render_with_mermaid(lolo_graph(flow))
    assert sorted(nodes) == sorted(f"{n}{t}" for n, t in want.nodes.values())
    assert sorted(edges) == sorted(label for _, label, _ in want.edges)
