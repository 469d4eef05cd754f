"""The inspector's figures as Prometheus text (exposition format 0.0.4). Pure.

Series (every one labelled with ``app``):

* ``lolo_node_calls_total{node}``: handler calls since start (counter);
* ``lolo_node_errors_total{node}``: calls whose handler raised or timed out (counter);
* ``lolo_node_handler_seconds{node}``: a summary, ``quantile`` 0.5 and 0.99 over the last
  30 to 60 s (NaN when there was no call then), ``_sum`` and ``_count`` since start;
* ``lolo_edge_events_total{source,port,target,in_port}``: events carried along each edge;
* ``lolo_sessions_open{trigger}``: clients connected to each WebSocket trigger (gauge).

Triggers have no handler of their own, so they have no ``lolo_node_*`` series.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from lolo_runtime.inspector.figures import Figures

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def escape_label(value: str) -> str:
    """A label value inside double quotes: backslash, double quote and line feed escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """HELP text: backslash and line feed escaped."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def number(value: float) -> str:
    """A sample value as Prometheus writes it (``NaN``, ``+Inf``, ``-Inf``, else Go-like)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if isinstance(value, int) or (value.is_integer() and abs(value) < 2**53):
        return str(int(value))
    return repr(float(value))


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    return ",".join(f'{name}="{escape_label(value)}"' for name, value in pairs)


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {escape_help(help_text)}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, labels: Iterable[tuple[str, str]], value: float) -> None:
        self.lines.append(f"{name}{{{_labels(labels)}}} {number(value)}")


def render(figures: Figures) -> str:
    """The text a scraper of ``/_lolo/metrics`` gets."""
    app = ("app", figures.app)
    handlers = [n for n in figures.nodes if not n.trigger]
    out = _Writer()
    out.family("lolo_node_calls_total", "counter", "Handler calls, by node, since start.")
    for n in handlers:
        out.sample("lolo_node_calls_total", (app, ("node", n.id)), n.calls)
    out.family(
        "lolo_node_errors_total",
        "counter",
        "Handler calls that raised or timed out, by node, since start.",
    )
    for n in handlers:
        out.sample("lolo_node_errors_total", (app, ("node", n.id)), n.errors)
    name = "lolo_node_handler_seconds"
    out.family(
        name,
        "summary",
        "Handler time in seconds: quantiles over the last 30 to 60 s, sum and count since start.",
    )
    for n in handlers:
        node = ("node", n.id)
        for q, value in (("0.5", n.p50), ("0.99", n.p99)):
            out.sample(name, (app, node, ("quantile", q)), math.nan if value is None else value)
        out.sample(f"{name}_sum", (app, node), n.seconds)
        out.sample(f"{name}_count", (app, node), n.calls)
    out.family("lolo_edge_events_total", "counter", "Events carried along each edge since start.")
    for e in figures.edges:
        out.sample(
            "lolo_edge_events_total",
            (
                app,
                ("source", e.source),
                ("port", e.port),
                ("target", e.target),
                ("in_port", e.in_port),
            ),
            e.events,
        )
    out.family("lolo_sessions_open", "gauge", "Clients connected now, by WebSocket trigger.")
    for s in figures.sessions:
        out.sample("lolo_sessions_open", (app, ("trigger", s.trigger)), s.open)
    return "\n".join(out.lines) + "\n"
