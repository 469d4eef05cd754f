"""Fixtures shared across the test folders."""

from tests.browser_support import browser
from tests.redis_support import redis_server

__all__ = ["browser", "redis_server"]
