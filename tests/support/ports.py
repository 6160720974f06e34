"""Free local ports for servers a test starts.

Taken below the kernel's ephemeral range (32768–60999 here), where the clients' own
outgoing connections pick their ports: a port found free there can be taken by such a
connection before the server binds it.
"""

from __future__ import annotations

import random
import socket

LOW, HIGH = 20000, 32000


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(count: int) -> int:
    """The first of ``count`` consecutive ports that nothing holds now."""
    while True:
        base = random.randrange(LOW, HIGH - count)
        if all(_bindable(base + offset) for offset in range(count)):
            return base
