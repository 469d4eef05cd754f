"""What ``lolo-run`` tells its caller: exit statuses and the lines scripts wait for."""

from __future__ import annotations

EXIT_OK, EXIT_FAILURE, EXIT_BAD_FLOW, EXIT_FORCED = 0, 1, 2, 3
DEFAULT_PORT = 4000
NO_PORT_LINE = "Running without a port"
"""Printed instead of 'Listening to port N' when no trigger of the flow listens."""
WORKER_ENV = "LOLO_WORKER"
"""Set by the ``--workers`` supervisor in each worker's environment (its number, from 1):
the worker binds its port with SO_REUSEPORT, beside its siblings."""
