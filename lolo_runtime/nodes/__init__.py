"""The built-in ``lolo/...`` node types."""
