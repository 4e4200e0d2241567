#!/usr/bin/env python3
"""Container health check for the avatarbot image: exit 0 when /healthz answers 200.

    avatarbot-healthcheck                 # the bot's or the worker's /healthz, guessed
    avatarbot-healthcheck PORT [PATH]     # an explicit port and path (exec probes)

Without arguments the role is read from the container's main process: a worker is
checked on AVATARBOT_WORKER_HEALTH_PORT (and counts as healthy while that is 0: no
health server), anything else on AVATARBOT_WEB_PORT (default 8080). Standard library
only, so it runs in the image without curl.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

TIMEOUT_S = 4.0


def _main_process_args() -> list[str]:
    try:
        return Path("/proc/1/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _target(argv: list[str]) -> tuple[int, str]:
    if argv:
        return int(argv[0]), argv[1] if len(argv) > 1 else "/healthz"
    if "worker" in _main_process_args():
        return int(os.environ.get("AVATARBOT_WORKER_HEALTH_PORT", "0") or 0), "/healthz"
    return int(os.environ.get("AVATARBOT_WEB_PORT", "8080") or 8080), "/healthz"


def main(argv: list[str]) -> int:
    try:
        port, path = _target(argv)
    except ValueError:
        print("usage: avatarbot-healthcheck [PORT [PATH]]", file=sys.stderr)
        return 2
    if port == 0:
        return 0  # a worker without a health server: its process being up is all we know
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {url}: HTTP {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
