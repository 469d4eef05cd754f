"""A handler module where ``handler`` is a string, not a function."""

handler = "process_request"
