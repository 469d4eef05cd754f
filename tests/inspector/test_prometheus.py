"""The Prometheus text: every family typed and described, label values escaped, NaN for
quantiles of a node not called lately; read back with a strict parser."""

from __future__ import annotations

import math

import pytest

from lolo_runtime.inspector.figures import EdgeFigures, Figures, NodeFigures, SessionFigures
from lolo_runtime.inspector.prometheus import escape_label, number, render
from tests.inspector.promtext import ExpositionError, parse

AWKWARD = 'a "quoted" \\ back\nslash'


def figures(app: str = "chat") -> Figures:
    return Figures(
        app,
        (
            NodeFigures(
                "ws", "WS", "lolo/websocket-trigger", True, "/socket", 0, 0, 0.0, None, None
            ),
            NodeFigures("handle", "Handle", "lolo/function", False, None, 12, 2, 0.5, 0.001, 0.25),
            NodeFigures("idle", "Idle", "lolo/function", False, None, 0, 0, 0.0, None, None),
        ),
        (EdgeFigures("ws", "message", "handle", "in", 12),),
        (SessionFigures("ws", "/socket", 3),),
    )


def test_the_text_parses_strictly_and_holds_every_figure() -> None:
    parsed = parse(render(figures()))
    assert parsed.types == {
        "lolo_node_calls_total": "counter",
        "lolo_node_errors_total": "counter",
        "lolo_node_handler_seconds": "summary",
        "lolo_edge_events_total": "counter",
        "lolo_sessions_open": "gauge",
    }
    assert set(parsed.helps) == set(parsed.types)
    assert parsed.value("lolo_node_calls_total", app="chat", node="handle") == 12
    assert parsed.value("lolo_node_errors_total", app="chat", node="handle") == 2
    seconds = "lolo_node_handler_seconds"
    assert parsed.value(seconds, app="chat", node="handle", quantile="0.5") == 0.001
    assert parsed.value(seconds, app="chat", node="handle", quantile="0.99") == 0.25
    assert parsed.value(f"{seconds}_sum", app="chat", node="handle") == 0.5
    assert parsed.value(f"{seconds}_count", app="chat", node="handle") == 12
    assert math.isnan(parsed.value(seconds, app="chat", node="idle", quantile="0.5"))
    assert (
        parsed.value(
            "lolo_edge_events_total",
            app="chat",
            source="ws",
            port="message",
            target="handle",
            in_port="in",
        )
        == 12
    )
    assert parsed.value("lolo_sessions_open", app="chat", trigger="ws") == 3
    # A trigger has no handler: no lolo_node_* series of its own.
    assert all(("node", "ws") not in labels for labels in parsed.series("lolo_node_calls_total"))


def test_label_values_are_escaped_and_read_back_whole() -> None:
    assert escape_label(AWKWARD) == 'a \\"quoted\\" \\\\ back\\nslash'
    parsed = parse(render(figures(app=AWKWARD)))
    assert parsed.value("lolo_sessions_open", app=AWKWARD, trigger="ws") == 3


@pytest.mark.parametrize(
    ("value", "text"),
    [(3, "3"), (2.0, "2"), (0.25, "0.25"), (math.nan, "NaN"), (math.inf, "+Inf"), (1e-7, "1e-07")],
)
def test_numbers_are_written_as_prometheus_reads_them(value: float, text: str) -> None:
    assert number(value) == text


@pytest.mark.parametrize(
    "bad",
    [
        "x 1\n",  # no TYPE
        "# TYPE x counter\nx 1",  # no final line feed
        '# TYPE x counter\nx{a="1} 1\n',  # unterminated label
        '# TYPE x counter\nx{a="\\q"} 1\n',  # unknown escape
        "# TYPE x counter\nx 1\nx 2\n",  # a series twice
        "# TYPE x counter\nx one\n",  # not a number
        "# TYPE x summary\nx 1\n",  # a summary sample without quantile
    ],
)
def test_the_parser_used_here_is_strict(bad: str) -> None:
    with pytest.raises(ExpositionError):
        parse(bad)
