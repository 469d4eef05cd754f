"""Readers for what ``lolo-run graph`` prints, strict enough to catch a broken drawing.

The Mermaid reader accepts only the statements the command is meant to write, each on
its own line, and fails on anything else: a label that lets a quote, ``<`` or a bare
``#`` through, an id Mermaid would misread, a line it does not recognise. The SVG reader
reads what Graphviz actually drew: each node's text lines and each edge's label.
"""

from __future__ import annotations

import os
import re
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from tests.browser_support import chromium
from tests.support import unavailable

MERMAID_KEYWORDS = {
    "end",
    "graph",
    "flowchart",
    "subgraph",
    "style",
    "class",
    "classdef",
    "click",
    "call",
    "href",
    "linkstyle",
    "direction",
    "default",
}
ZERO_WIDTH_SPACE = "\u200b"

_ID = r"[A-Za-z_][A-Za-z0-9_]*"
_NODE = re.compile(rf'^    ({_ID})(\(\["|\[")([^"]*)("\]\)|"\])(?::::({_ID}))?$')
_EDGE = re.compile(rf'^    ({_ID}) -->\|"([^"]*)"\| ({_ID})$')
_CLASS_DEF = re.compile(rf"^    classDef ({_ID}) (\S+)$")
_SAFE_TEXT = re.compile(r"^(?:[^\"#<>&`\n]|#[0-9]+;)*$")
_ENTITY = re.compile(r"#([0-9]+);")
_LABEL = re.compile(r"^(.*)<br/><small>(.*)</small>$")
_SHAPES = {('(["', '"])'): "stadium", ('["', '"]'): "box"}


def mermaid_label(raw: str) -> str:
    """The text Mermaid shows for one escaped piece of a label (entities decoded)."""
    assert _SAFE_TEXT.match(raw), f"unescaped character in Mermaid label text {raw!r}"
    return _ENTITY.sub(lambda match: chr(int(match.group(1))), raw)


@dataclass(frozen=True)
class MermaidNode:
    id: str
    shape: str
    name: str
    type: str
    css_class: str | None


@dataclass(frozen=True)
class MermaidEdge:
    source: str
    label: str
    target: str


@dataclass
class MermaidChart:
    title: str
    nodes: dict[str, MermaidNode] = field(default_factory=dict)
    edges: list[MermaidEdge] = field(default_factory=list)
    class_defs: dict[str, str] = field(default_factory=dict)


def parse_mermaid(text: str) -> MermaidChart:
    """Read the Mermaid flowchart ``lolo-run graph`` writes; fail on any other line."""
    assert text.endswith("\n") and not text.endswith("\n\n"), "one newline at the end"
    lines = text[:-1].split("\n")
    assert lines[0] == "---" and lines[2] == "---", f"front matter expected: {lines[:3]}"
    title = lines[1].removeprefix("title: ")
    assert title != lines[1], f"a title expected: {lines[1]!r}"
    assert lines[3] == "flowchart LR", f"a left-to-right flowchart expected: {lines[3]!r}"
    chart = MermaidChart(title)
    for line in lines[4:]:
        if node := _NODE.match(line):
            node_id, opening, raw, closing, css_class = node.groups()
            assert node_id.lower() not in MERMAID_KEYWORDS, f"id {node_id!r} is a keyword"
            assert node_id not in chart.nodes, f"node {node_id!r} declared twice"
            shape = _SHAPES.get((opening, closing))
            assert shape is not None, f"unknown shape in {line!r}"
            parts = _LABEL.match(raw)
            assert parts is not None, f"label is not 'name<br/><small>type</small>': {raw!r}"
            chart.nodes[node_id] = MermaidNode(
                node_id,
                shape,
                mermaid_label(parts.group(1)),
                mermaid_label(parts.group(2)),
                css_class,
            )
        elif edge := _EDGE.match(line):
            source, raw, target = edge.groups()
            assert chart.nodes.keys() >= {source, target}, f"edge to an undeclared node: {line!r}"
            chart.edges.append(MermaidEdge(source, mermaid_label(raw), target))
        elif class_def := _CLASS_DEF.match(line):
            chart.class_defs[class_def.group(1)] = class_def.group(2)
        else:
            raise AssertionError(f"not a statement lolo-run graph should write: {line!r}")
    return chart


def shown(text: str) -> str:
    """What a reader sees of ``text``: zero-width spaces, put in where Mermaid would
    otherwise reinterpret a pair of characters, are invisible."""
    return text.replace(ZERO_WIDTH_SPACE, "")


MERMAID_JS = "LOLO_MERMAID_JS"
"""The path of a mermaid.min.js (from the npm package mermaid, which .ci/run installs):
the drawings are also rendered by Mermaid itself, in headless Chromium, as GitHub does.
Unset, those checks skip (and fail under CI=true)."""


def render_with_mermaid(source: str) -> tuple[list[str], list[str]]:
    """The text of each node and of each edge label, as Mermaid renders ``source``
    (skips the test unless $LOLO_MERMAID_JS is set)."""
    script = os.environ.get(MERMAID_JS)
    if not script:
        unavailable(
            f"Mermaid is not installed (npm package mermaid): set ${MERMAID_JS} to its "
            "dist/mermaid.min.js"
        )
    with chromium() as browser:
        page = browser.new_page()
        try:
            page.set_content("<div id=out></div>")
            page.add_script_tag(path=script)
            drawn = page.evaluate(
                """async (source) => {
                    mermaid.initialize({startOnLoad: false, securityLevel: "strict"});
                    const {svg} = await mermaid.render("graph", source);
                    document.getElementById("out").innerHTML = svg;
                    const texts = (selector) => [...document.querySelectorAll(selector)]
                        .map((element) => element.textContent);
                    return [texts("#out g.node"), texts("#out g.edgeLabel")];
                }""",
                source,
            )
        finally:
            page.close()
    nodes, edges = drawn
    return nodes, edges


# --- Graphviz --------------------------------------------------------------------------

DOT_MISSING = "needs Graphviz's dot program (Debian package graphviz: apt-get install graphviz)"
_SVG = "{http://www.w3.org/2000/svg}"


def need_dot() -> str:
    """The path of ``dot``; skips the test (fails it on CI) when Graphviz is missing."""
    program = shutil.which("dot")
    if program is None:
        unavailable(DOT_MISSING)
    return program


@dataclass(frozen=True)
class SvgNode:
    id: str
    lines: tuple[str, ...]
    classes: frozenset[str]


@dataclass(frozen=True)
class SvgEdge:
    source: str
    target: str
    label: str


def _texts(group: ET.Element) -> tuple[str, ...]:
    # Graphviz writes runs of spaces as no-break spaces so that SVG keeps them.
    return tuple(
        "".join(text.itertext()).replace("\xa0", " ") for text in group.iter(f"{_SVG}text")
    )


def read_svg(svg: str | Path) -> tuple[dict[str, SvgNode], list[SvgEdge]]:
    """The nodes (by id: the ``<title>`` Graphviz gives each) and edges of an SVG that
    ``dot -Tsvg`` drew, with the text lines it drew for each."""
    root = ET.parse(svg).getroot() if isinstance(svg, Path) else ET.fromstring(svg)
    assert root.tag == f"{_SVG}svg", f"not an SVG document: {root.tag}"
    nodes: dict[str, SvgNode] = {}
    edges: list[SvgEdge] = []
    for group in root.iter(f"{_SVG}g"):
        classes = frozenset(group.get("class", "").split())
        title = group.findtext(f"{_SVG}title")
        if "node" in classes:
            assert title is not None and title not in nodes, f"node title {title!r}"
            nodes[title] = SvgNode(title, _texts(group), classes)
        elif "edge" in classes:
            assert title is not None and "->" in title, f"edge title {title!r}"
            source, target = title.split("->")
            edges.append(SvgEdge(source, target, "\n".join(_texts(group))))
    return nodes, edges
