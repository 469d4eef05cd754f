"""``lolo-run graph``: Mermaid, DOT and SVG of a flow whose ids and names are chosen to
break a careless drawing (quotes, brackets, HTML, entities, Mermaid keywords as ids,
``-`` in ids, line breaks, scripts other than Latin...).

The Mermaid is read back by a strict reader (tests/graph_support.py); the DOT and SVG
are judged by what Graphviz's real ``dot`` draws from them.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from lolo_runtime.graph import (
    FlowGraph,
    GraphvizError,
    dot_string,
    mermaid_ids,
    mermaid_text,
    render_svg,
    to_mermaid,
)
from lolo_runtime.loader import load_flow
from tests.graph_support import (
    MERMAID_KEYWORDS,
    need_dot,
    parse_mermaid,
    read_svg,
    render_with_mermaid,
    shown,
)
from tests.support import lolo_run_command

BROKEN = Path(__file__).resolve().parent / "flows" / "broken"

HANDLER = "async def handler(ev, ctx):\n    pass\n"

# id -> (name, or None for the default, type, trigger?)
NODES: dict[str, tuple[str | None, str, bool]] = {
    "end": (
        'Say "hi" [to] {all} (now) <b>bold</b> & co; #1 |pipe| `tick` %% no comment',
        "lolo/websocket-trigger",
        True,
    ),
    "a-b": ("Grüße 🌍 日本語 ﬂ°°60¶ß #60; &lt; \\ back\\nslash", "lolo/function", False),
    "a_b": ("line one\nline two", "lolo/function", False),
    "a--b": ("-->|x| end", "lolo/function", False),
    "end_2": ("<script>alert(1)</script>", "lolo/function", False),
    "o": (None, "lolo/function", False),
    "x": ("x", "lolo/function", False),
    "class": ("[[sub]] ((round)) {{hex}} >flag]", "lolo/http-trigger", True),
    "graph": ("café; style a_b fill:#f00 $$x^2$$", "lolo/function", False),
}
EDGES = [
    "end.message -> a-b.x-y",
    "end.message -> a-b.x-y",  # written twice: delivered, and drawn, once
    "a-b.o--p -> a_b.in",
    "a-b.out -> a--b.in",
    "a--b.out -> end_2.in",
    "end_2.out -> o.in",
    "o.out -> x.in",
    "x.out -> x.in",
    "class.out -> graph.in",
    "a_b.out -> end_2.in",
]
_EDGE = re.compile(r"^(\S+)\.(\S+) -> (\S+)\.(\S+)$")


def name_of(node_id: str) -> str:
    return NODES[node_id][0] or node_id


def expected_edges() -> list[tuple[str, str, str]]:
    """(source id, "out → in", target id) for each distinct edge, in file order."""
    edges: list[tuple[str, str, str]] = []
    for text in EDGES:
        match = _EDGE.match(text)
        assert match is not None
        source, out_port, target, in_port = match.groups()
        edge = (source, f"{out_port} \u2192 {in_port}", target)
        if edge not in edges:
            edges.append(edge)
    return edges


@pytest.fixture
def nasty(tmp_path: Path) -> Path:
    (tmp_path / "h.py").write_text(HANDLER)
    nodes: list[dict[str, Any]] = []
    for node_id, (name, node_type, _) in NODES.items():
        node: dict[str, Any] = {"id": node_id, "type": node_type}
        if name is not None:
            node["name"] = name
        if node_type == "lolo/websocket-trigger":
            node["params"] = {"path": "/socket"}
        elif node_type == "lolo/http-trigger":
            node["params"] = {"path": "/x"}
        else:
            node["handler"] = "h.py"
        if node_id == "a-b":
            node["inputs"] = ["in", "x-y"]
            node["outputs"] = ["out", "o--p"]
        nodes.append(node)
    flow = {"app": "nasty", "nodes": nodes, "edges": EDGES}
    path = tmp_path / "nasty.yaml"
    path.write_text(yaml.safe_dump(flow, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def lolo_graph(
    *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """The real ``lolo-run graph ARGS``; its output is kept as bytes (it is UTF-8)."""
    result = subprocess.run(
        [*lolo_run_command(), "graph", *map(str, args)],
        capture_output=True,
        timeout=60,
        env=env,
    )
    assert b"Traceback" not in result.stderr, result.stderr.decode()
    return result


# --- Mermaid ---------------------------------------------------------------------------


def test_mermaid_shows_every_node_once_with_its_name_type_and_shape(nasty: Path) -> None:
    chart = parse_mermaid(to_mermaid(FlowGraph.of(load_flow(nasty))))
    assert chart.title == "nasty"
    assert len(chart.nodes) == len(NODES)
    by_name = {shown(node.name): node for node in chart.nodes.values()}
    # The names are all different, so each node is found by the name it shows.
    for node_id, (_, node_type, trigger) in NODES.items():
        node = by_name[name_of(node_id)]
        assert node.type == node_type
        assert node.shape == ("stadium" if trigger else "box"), node_id
        assert node.css_class == ("trigger" if trigger else None), node_id
    assert "fill:" in chart.class_defs["trigger"]


def test_mermaid_draws_each_distinct_edge_once_with_its_ports(nasty: Path) -> None:
    chart = parse_mermaid(to_mermaid(FlowGraph.of(load_flow(nasty))))
    flow_id = {mermaid_id: node.name for mermaid_id, node in chart.nodes.items()}
    drawn = [(shown(flow_id[e.source]), e.label, shown(flow_id[e.target])) for e in chart.edges]
    assert drawn == [
        (name_of(source), label, name_of(target)) for source, label, target in expected_edges()
    ]


def test_mermaid_itself_shows_every_name_as_written(nasty: Path) -> None:
    nodes, edges = render_with_mermaid(to_mermaid(FlowGraph.of(load_flow(nasty))))
    # A line break in a name is drawn as one, which the text of the node does not show.
    assert sorted(shown(text) for text in nodes) == sorted(
        name_of(node_id).replace("\n", "") + node_type
        for node_id, (_, node_type, _) in NODES.items()
    )
    # Mermaid draws a self-loop (x -> x) through helper edges with empty labels.
    labels = [label for label in edges if label]
    assert sorted(labels) == sorted(label for _, label, _ in expected_edges())


def test_mermaid_ids_are_plain_words_distinct_and_never_keywords() -> None:
    node_ids = ("ws", "process-request", "a-b", "a_b", "a_b_2", "end", "End", "x--y", "class")
    ids = mermaid_ids(node_ids)
    assert ids["ws"] == "ws" and ids["process-request"] == "process_request"
    assert ids["a_b_2"] == "a_b_2"  # a natural id keeps its name; the clash moves
    assert len(set(ids.values())) == len(node_ids)
    for mermaid_id in ids.values():
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", mermaid_id), mermaid_id
        assert mermaid_id.lower() not in MERMAID_KEYWORDS, mermaid_id
    assert mermaid_ids(node_ids) == ids  # the same flow, the same ids


def test_mermaid_text_escapes_what_mermaid_would_read_and_keeps_letters() -> None:
    assert mermaid_text('say "hi" <b>&') == "say #34;hi#34; #60;b#62;#38;"
    assert mermaid_text("#60; `x` a;b|c") == "#35;60#59; #96;x#96; a#59;b#124;c"
    assert mermaid_text("style:#1 $$") == "style#58;#35;1 $#8203;$"
    assert mermaid_text("Grüße 日本語 🌍") == "Grüße 日本語 🌍"
    # Mermaid breaks the line at a backslash and "n", even when escaped: a zero-width
    # space keeps the two apart. Likewise for "$$" (math) and its entity placeholders.
    assert mermaid_text("C:\\new") == "C#58;#92;#8203;new"
    assert mermaid_text("\ufb02\u00b0") == "\ufb02#8203;\u00b0"
    assert mermaid_text("line\nbreak\u2028") == "line#10;break#8232;"


# --- DOT and SVG -----------------------------------------------------------------------


def test_dot_string_escapes_quotes_backslashes_entities_and_line_breaks() -> None:
    assert dot_string('a "b" \\N &lt;\nc') == '"a \\"b\\" \\\\N &amp;lt;\\nc"'
    assert dot_string("日本 🌍") == '"日本 🌍"'


def check_svg(svg: str) -> None:
    """The SVG ``dot`` drew of the nasty flow shows each node's name and type, and each
    distinct edge once with its ports."""
    nodes, edges = read_svg(svg)
    assert set(nodes) == set(NODES)
    for node_id, (_, node_type, trigger) in NODES.items():
        node = nodes[node_id]
        assert node.lines == (*name_of(node_id).split("\n"), node_type), node_id
        assert ("trigger" in node.classes) == trigger, node_id
    # Graphviz draws edges in an order of its own: compare them sorted, duplicates kept.
    assert sorted((e.source, e.label, e.target) for e in edges) == sorted(expected_edges())


def test_dot_is_accepted_by_graphviz_and_draws_every_name(nasty: Path) -> None:
    dot = need_dot()
    result = lolo_graph(nasty, "--format", "dot")
    assert result.returncode == 0, result.stderr.decode()
    text = result.stdout.decode()
    assert "rankdir=LR;" in text
    drawn = subprocess.run([dot, "-Tsvg"], input=result.stdout, capture_output=True, timeout=60)
    assert drawn.returncode == 0 and drawn.stderr == b"", drawn.stderr.decode()
    check_svg(drawn.stdout.decode())


def test_svg_format_draws_every_name(nasty: Path, tmp_path: Path) -> None:
    need_dot()
    output = tmp_path / "nasty.svg"
    result = lolo_graph(nasty, "--format", "svg", "--output", output)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"" and result.stderr == b""
    check_svg(output.read_text(encoding="utf-8"))


def test_svg_without_dot_says_which_package_to_install(nasty: Path, tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    output = tmp_path / "out.svg"
    env = {**os.environ, "PATH": str(empty)}
    result = lolo_graph(nasty, "--format", "svg", "--output", output, env=env)
    assert result.returncode == 1
    assert result.stdout == b""
    message = result.stderr.decode()
    assert message.count("\n") == 1, message
    assert "'dot'" in message and "apt-get install graphviz" in message, message
    assert not output.exists()
    # The other formats need no Graphviz.
    assert lolo_graph(nasty, "--format", "dot", env=env).returncode == 0


def test_a_failing_dot_is_reported_with_its_own_words() -> None:
    need_dot()
    with pytest.raises(GraphvizError, match=r"-Tsvg failed: .*syntax error"):
        render_svg("digraph {")


# --- the command -----------------------------------------------------------------------


def test_a_broken_flow_exits_2_with_every_mistake_located(tmp_path: Path) -> None:
    broken = BROKEN / "several_mistakes.yaml"
    expected = [
        match.groups()
        for line in broken.read_text().splitlines()
        if (match := re.match(r"^# expect: (\d+): (.+)$", line))
    ]
    output = tmp_path / "graph.mmd"
    result = lolo_graph(broken, "--output", output)
    assert result.returncode == 2
    assert result.stdout == b""
    lines = result.stderr.decode().splitlines()
    assert len(lines) == len(expected), lines
    for line, (number, text) in zip(lines, expected, strict=True):
        assert line.startswith(f"{broken}:{number}: "), line
        assert text in line, line
    assert not output.exists()


def test_output_file_holds_what_stdout_would(nasty: Path, tmp_path: Path) -> None:
    printed = lolo_graph(nasty)
    assert printed.returncode == 0 and printed.stderr == b""
    output = tmp_path / "graph.mmd"
    written = lolo_graph(nasty, "-o", output)
    assert written.returncode == 0 and written.stdout == b"" and written.stderr == b""
    assert output.read_bytes() == printed.stdout
    parse_mermaid(printed.stdout.decode())


@pytest.mark.parametrize("where", ["missing/graph.mmd", "."])
def test_an_unwritable_output_exits_1_with_one_line(
    nasty: Path, tmp_path: Path, where: str
) -> None:
    result = lolo_graph(nasty, "--output", tmp_path / where)
    assert result.returncode == 1
    assert result.stdout == b""
    message = result.stderr.decode()
    assert message.startswith("lolo-run graph: cannot write ") and message.count("\n") == 1


def test_non_ascii_output_survives_an_ascii_stdout(nasty: Path) -> None:
    result = lolo_graph(nasty, env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert result.returncode == 0, result.stderr.decode()
    assert "Grüße 🌍 日本語" in result.stdout.decode("utf-8")
