"""``lolo-run graph FLOW``: a flow's nodes and wires as Mermaid, Graphviz DOT or SVG.

A flow file lists nodes and edges as text; a picture shows at a glance where an event
goes. Mermaid is the default because GitHub (and many wikis) render a ```` ```mermaid ````
block in a README or an issue without any tool; DOT is for people who already use
Graphviz, and SVG is the DOT drawn by Graphviz's own ``dot`` program (we do not draw
anything ourselves: layout is Graphviz's job).

The graph is taken from the *loaded* flow, not from the raw YAML, so it only ever shows
a flow that ``lolo-run`` would accept: every node type resolved, every port real.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from lolo_runtime.errors import LoloError
from lolo_runtime.loader import Flow
from lolo_runtime.node import Trigger

GRAPHVIZ_PACKAGE = "graphviz"
"""The Debian (and Ubuntu) package that provides the ``dot`` program."""
DOT_TIMEOUT = 60.0
"""Seconds ``dot`` may take. A flow of a few hundred nodes lays out in well under a
second; the limit only stops a wedged ``dot`` from hanging ``lolo-run`` for ever."""

TRIGGER_FILL = "#dbeafe"
TRIGGER_STROKE = "#1d4ed8"
TRIGGER_TEXT = "#0f172a"
"""Triggers are drawn filled, with the text colour set too, so that they stay legible
on GitHub's dark theme, where the default text colour is light."""


@dataclass(frozen=True)
class GraphNode:
    """What the picture shows of a node."""

    id: str
    name: str
    type: str
    trigger: bool
    """A trigger starts chains from outside (a WebSocket or HTTP path): it is drawn in
    another shape, since that is where a reader starts following the flow."""


@dataclass(frozen=True)
class GraphEdge:
    """A wire from ``source.source_port`` to ``target.target_port``."""

    source: str
    source_port: str
    target: str
    target_port: str

    @property
    def label(self) -> str:
        return f"{self.source_port} \u2192 {self.target_port}"


@dataclass(frozen=True)
class FlowGraph:
    """A flow reduced to what is drawn: its nodes in file order and its distinct edges."""

    app: str
    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]

    @classmethod
    def of(cls, flow: Flow) -> FlowGraph:
        nodes = tuple(
            GraphNode(node.id, node.config.name, node.config.type, isinstance(node, Trigger))
            for node in flow.nodes.values()
        )
        # An edge written twice delivers once (see RoutingTable), so it is drawn once.
        edges = dict.fromkeys(
            GraphEdge(edge.source, edge.source_port, edge.target, edge.target_port)
            for edge in flow.edges
        )
        return cls(flow.app, nodes, tuple(edges))


# --- Mermaid ---------------------------------------------------------------------------

_MERMAID_KEYWORDS = frozenset(
    {
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
        "interpolate",
        "direction",
        "default",
        "acctitle",
        "accdescr",
    }
)
"""Words Mermaid's flowchart grammar reads as keywords wherever they stand, so a node
cannot be called that (a node named ``end`` famously breaks a flowchart)."""

_MERMAID_PLAIN = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _-.,/+=!?'@$*~^"
)
"""Characters written as they are. Not ``:``: before reading entities Mermaid drops the
last ``;`` of any line where ``style`` (or ``classDef``) is followed by ``:`` and a
``#``, which would break the entity of a name such as ``style: #1``."""
_MERMAID_BREAKS = frozenset({("\\", "n"), ("$", "$"), ("\ufb02", "\u00b0"), ("\u00b6", "\u00df")})
"""Pairs of characters that Mermaid reinterprets even when written as entities: it
draws a backslash followed by ``n`` as a line break in a label of several lines (ours
all are), text between ``$$`` and ``$$`` as KaTeX math, and it turns ``#60;`` into
``&#60;`` by way of the placeholders ``ﬂ°°`` and ``¶ß``, which it replaces wherever they
appear. A zero-width space between the two characters keeps them literal without
changing what the reader sees."""
_ZERO_WIDTH_SPACE = "#8203;"


def mermaid_text(text: str) -> str:
    """``text`` made safe inside a double-quoted Mermaid label.

    Mermaid has no backslash escapes: it takes ``#NNN;`` (a decimal code point) as an
    entity, and renders labels as HTML. So every character that could end the string
    (``"``), start an entity (``#``), open HTML (``<``, ``&``), a Markdown string (a
    backquote) or a statement, or that is not printable, is written as ``#NNN;``;
    printable letters of any script stay as they are, so the Mermaid source stays
    readable. See also ``_MERMAID_BREAKS``."""
    out: list[str] = []
    for index, char in enumerate(text):
        if char in _MERMAID_PLAIN or (ord(char) > 127 and char.isprintable()):
            out.append(char)
        else:
            out.append(f"#{ord(char)};")
        if (char, text[index + 1 : index + 2]) in _MERMAID_BREAKS:
            out.append(_ZERO_WIDTH_SPACE)
    return "".join(out)


def mermaid_ids(node_ids: tuple[str, ...]) -> dict[str, str]:
    """A Mermaid id for each node id: the same word with ``-`` as ``_``.

    Flow ids may hold ``-``, and Mermaid reads ``--`` (and a ``-`` before ``>`` or
    ``.``) as the start of an arrow, so ids are kept to letters, digits and ``_``. One
    that would clash with another node's id or with a Mermaid keyword gets a numbered
    suffix."""
    taken = {node_id.replace("-", "_") for node_id in node_ids}
    result: dict[str, str] = {}
    used: set[str] = set()
    for node_id in node_ids:
        base = node_id.replace("-", "_")
        candidate = base
        if candidate in used or candidate.lower() in _MERMAID_KEYWORDS:
            number = 2
            while (candidate := f"{base}_{number}") in used or candidate in taken:
                number += 1
        used.add(candidate)
        result[node_id] = candidate
    return result


def to_mermaid(graph: FlowGraph) -> str:
    """The graph as a Mermaid flowchart, left to right.

    Each node is labelled with its name and, below it, its type; triggers are drawn as
    stadiums and carry the ``trigger`` class; each edge is labelled ``out → in``."""
    ids = mermaid_ids(tuple(node.id for node in graph.nodes))
    lines = ["---", f"title: {graph.app}", "---", "flowchart LR"]
    for node in graph.nodes:
        label = f"{mermaid_text(node.name)}<br/><small>{mermaid_text(node.type)}</small>"
        if node.trigger:
            lines.append(f'    {ids[node.id]}(["{label}"]):::trigger')
        else:
            lines.append(f'    {ids[node.id]}["{label}"]')
    for edge in graph.edges:
        lines.append(f'    {ids[edge.source]} -->|"{mermaid_text(edge.label)}"| {ids[edge.target]}')
    lines.append(
        f"    classDef trigger fill:{TRIGGER_FILL},stroke:{TRIGGER_STROKE},"
        f"color:{TRIGGER_TEXT},stroke-width:2px"
    )
    return "\n".join(lines) + "\n"


# --- DOT -------------------------------------------------------------------------------


def dot_string(text: str) -> str:
    """``text`` as a double-quoted DOT string, to be shown literally in a label.

    Inside DOT strings ``\\"`` is a quote; in labels a backslash starts an escape
    (``\\n``, ``\\l``, ``\\N``: the node's name...) and Graphviz decodes HTML entities
    (``&lt;`` is drawn as ``<``). So ``&`` becomes ``&amp;``, backslashes are doubled,
    quotes escaped, and line breaks in a name become centred line breaks (``\\n``)."""
    escaped = (
        text.replace("&", "&amp;")
        .replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\r\n", "\\n")
        .replace("\r", "\\n")
        .replace("\n", "\\n")
    )
    return f'"{escaped}"'


def to_dot(graph: FlowGraph) -> str:
    """The graph as a Graphviz digraph, left to right; the same information as the
    Mermaid one, with triggers as filled hexagons of class ``trigger`` (a class that
    ``dot -Tsvg`` copies into the SVG, for style sheets)."""
    font = dot_string("Helvetica,Arial,sans-serif")
    lines = [
        f"digraph {dot_string(graph.app)} {{",
        "    rankdir=LR;",
        f"    node [shape=box, style=rounded, fontname={font}, fontsize=12];",
        f"    edge [fontname={font}, fontsize=10];",
    ]
    for node in graph.nodes:
        label = dot_string(f"{node.name}\n{node.type}")
        attributes = f"label={label}"
        if node.trigger:
            attributes += (
                f', shape=hexagon, style=filled, fillcolor="{TRIGGER_FILL}", '
                f'color="{TRIGGER_STROKE}", class="trigger"'
            )
        lines.append(f"    {dot_string(node.id)} [{attributes}];")
    for edge in graph.edges:
        lines.append(
            f"    {dot_string(edge.source)} -> {dot_string(edge.target)} "
            f"[label={dot_string(edge.label)}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


# --- SVG -------------------------------------------------------------------------------


class GraphvizError(LoloError):
    """``dot`` is missing, or failed to draw."""


def render_svg(dot: str) -> str:
    """Draw DOT text as SVG with Graphviz's ``dot`` program, found on PATH."""
    program = shutil.which("dot")
    if program is None:
        raise GraphvizError(
            "--format svg needs Graphviz's 'dot' program, which is not on PATH; install "
            f"it (Debian and Ubuntu: apt-get install {GRAPHVIZ_PACKAGE}) or use --format dot"
        )
    try:
        done = subprocess.run(
            [program, "-Tsvg"],
            input=dot.encode(),
            capture_output=True,
            timeout=DOT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise GraphvizError(f"{program} -Tsvg ran for over {DOT_TIMEOUT:g} s; stopped") from None
    except OSError as exc:
        raise GraphvizError(f"cannot run {program}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip() or f"exit status {done.returncode}"
        raise GraphvizError(f"{program} -Tsvg failed: {detail}")
    return done.stdout.decode(errors="replace")


# --- the command -----------------------------------------------------------------------


def draw(flow: Flow, fmt: str) -> str:
    """``flow`` drawn in ``fmt``: mermaid, dot, or svg (which runs Graphviz's ``dot`` and
    raises :class:`GraphvizError` when it is missing or fails)."""
    graph = FlowGraph.of(flow)
    if fmt == "mermaid":
        return to_mermaid(graph)
    if fmt == "dot":
        return to_dot(graph)
    if fmt == "svg":
        return render_svg(to_dot(graph))
    # The CLI's choices stop this; a caller from Python gets a clear error.
    raise ValueError(f"unknown graph format {fmt!r}; use mermaid, dot or svg")
