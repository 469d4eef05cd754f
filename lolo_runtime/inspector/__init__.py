"""The inspector (``lolo-run FLOW --inspect``): a page at ``/_lolo/`` with the graph and
live figures, and the same figures as Prometheus text at ``/_lolo/metrics``.

The parts, one job each:

* ``meter.py``: the counters the engine feeds (calls, failures, handler times, events
  per out-port), keyed by node id and port so they outlive a ``--reload``;
* ``figures.py``: the counters joined with the graph events travel *now*;
* ``prometheus.py``: figures -> Prometheus text; ``logtail.py``: the last log lines;
* ``access.py``: the key and the loopback rules; ``routes.py``: the page and
  ``/_lolo/metrics``; ``live.py``: the socket that updates the page.

Nothing here is imported unless ``--inspect`` is given (see ``Runtime.__init__``), and the
engine only counts once :meth:`Inspector.__init__` gives it a meter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lolo_runtime.inspector.access import Access
from lolo_runtime.inspector.figures import Figures, as_json, collect
from lolo_runtime.inspector.live import LiveRoute
from lolo_runtime.inspector.logtail import LogTail
from lolo_runtime.inspector.meter import Meter
from lolo_runtime.inspector.prometheus import CONTENT_TYPE, render
from lolo_runtime.inspector.routes import (
    ASSETS,
    LIVE_PATH,
    METRICS_PATH,
    AssetRoute,
    MetricsRoute,
    read_asset,
)

if TYPE_CHECKING:
    from lolo_runtime.edge.listener import Edge
    from lolo_runtime.runtime import Runtime

__all__ = ["Inspector"]


class Inspector:
    """Made with the runtime when ``--inspect`` is given; mounted once the edge exists."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.meter = Meter()
        runtime.engine.meter_with(self.meter)
        self.access = Access(runtime.options.inspect_key)
        self.logtail = LogTail()
        self.live = LiveRoute(self.access, self.snapshot, self.logtail)

    def figures(self) -> Figures:
        """The figures now, of the graph events travel now (``--reload`` replaces it)."""
        runtime = self.runtime
        return collect(runtime.flow.app, runtime.engine.wiring, self.meter)

    def snapshot(self) -> dict[str, Any]:
        return as_json(self.figures())

    def metrics(self) -> str:
        return render(self.figures())

    def mount(self, edge: Edge) -> None:
        """Serve the page, its files, ``/_lolo/metrics`` and ``/_lolo/live``; start
        keeping log lines."""
        for path, (name, content_type) in ASSETS.items():
            edge.add_http(path, AssetRoute(self.access, read_asset(name), content_type))
        edge.add_http(METRICS_PATH, MetricsRoute(self.access, self.metrics, CONTENT_TYPE))
        edge.add_websocket(LIVE_PATH, self.live)
        self.logtail.attach()

    def close(self) -> None:
        """Stop the live timers and stop keeping log lines."""
        self.live.close()
        self.logtail.detach()
