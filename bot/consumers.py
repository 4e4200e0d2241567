"""Consumer names for the Redis Streams consumer groups (workers, bots, one-shot readers).

A consumer name identifies one process in a group's pending list: a worker's claimed
jobs, a bot's leased deliveries. It must be unique per process, and a restarted process
must not take over its predecessor's name (process ids are reused across restarts and
containers), hence the random tag.
"""

from __future__ import annotations

import os
import secrets
import socket


def consumer_name(kind: str) -> str:
    """`<kind>-<host>-<pid>-<random tag>`, e.g. `worker-gpu1-4242-9f3a1c`."""
    host = socket.gethostname().split(".")[0] or "host"
    return f"{kind}-{host}-{os.getpid()}-{secrets.token_hex(3)}"
