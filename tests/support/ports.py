"""Free TCP ports for private brokers and services."""

from __future__ import annotations

import random
import socket

#: Below Linux's ephemeral range (32768+), so an outgoing connection of some other process
#: does not take a port between the moment it is chosen and the moment the broker binds it.
_LOW, _HIGH = 20000, 32000
_AVOID = {25672, 25673, 27017, 28017}
_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on at ``host`` now, never handed out before in this process."""
    for _ in range(500):
        port = random.randrange(_LOW, _HIGH)
        if port in _AVOID or port in _handed_out:
            continue
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port found on {host}")
