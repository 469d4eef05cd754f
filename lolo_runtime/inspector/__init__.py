"""The inspector (``lolo-run FLOW --inspect``): a page at ``/_lolo/`` with the graph and
live figures, and the same figures as Prometheus text at ``/_lolo/metrics``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lolo_runtime.edge.listener import Edge
    from lolo_runtime.runtime import Runtime


class Inspector:
    """Made with the runtime when ``--inspect`` is given; mounted once the edge exists."""

    def __init__(self, runtime: Runtime):
        raise NotImplementedError("the inspector is being built (issue 12)")

    def mount(self, edge: Edge) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError
