"""What the kernel still holds for a peer: the bytes of a TCP socket's send queue.

Backpressure is judged by whether a client takes data. The transport's buffer alone
cannot tell: the kernel holds megabytes in front of it (the send queue grows to a few
MB on Linux), and a client reading steadily but slower than that queue is deep moves
none of the transport's buffer for seconds. The send queue (``TIOCOUTQ``: bytes not yet
acknowledged by the peer) shrinks whenever the client reads. Where it cannot be read
(not Linux, not a TCP socket), :func:`kernel_unsent` says 0 and only the transport's
buffer counts.
"""

from __future__ import annotations

import struct
import sys

if sys.platform == "linux":
    import fcntl
    import termios

_INT = struct.Struct("i")


def kernel_unsent(fd: int | None) -> int:
    """Bytes in the send queue of socket ``fd`` not yet acknowledged by the peer."""
    if sys.platform != "linux" or fd is None or fd < 0:
        return 0
    try:
        value: int = _INT.unpack(fcntl.ioctl(fd, termios.TIOCOUTQ, bytes(_INT.size)))[0]
    except OSError:
        return 0
    return value
