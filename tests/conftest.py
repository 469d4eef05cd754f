"""Fixtures shared across the test folders."""

from tests.redis_support import redis_server

__all__ = ["redis_server"]
