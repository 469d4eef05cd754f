"""Channels: named groups of connected clients that any process of an app can reach."""

from .hub import Hub, Member, Outgoing

__all__ = ["Hub", "Member", "Outgoing"]
