"""A handler module Python refuses to compile: 'global' comes after the assignment.

(A plainer syntax error would also trip up ruff, which lints this directory.)
"""

seen = 0


async def handler(ev, ctx):
    seen = 1
    global seen  # noqa: F811
