"""Constants and helpers shared by the web-demo tests (fixtures live in conftest.py)."""

from __future__ import annotations

import socket

RESOLUTION = 56  # model input width in the tests: 56x42 maps, fast on 2 CPU cores


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
