"""A real worker process for kill tests: `python -m tests.worker_process` from the repository
root, with settings in the environment (REDIS_URL, AVATARBOT_KEY_PREFIX, ...) and the fake
backend's behaviour in FAKE_DELAY_S, FAKE_POISON_STYLE and FAKE_LOG (a file that gets one
JSON line per batch)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from avatarbot.worker_process import run_worker
from bot.config import load_settings
from tests.fake_backends import FakeBackend


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(process)d %(name)s %(message)s")
    settings = load_settings(dict(os.environ))
    log_path = os.environ.get("FAKE_LOG")
    backend = FakeBackend(
        delay_s=float(os.environ.get("FAKE_DELAY_S", "0")),
        poison_style=os.environ.get("FAKE_POISON_STYLE") or None,
        log_path=Path(log_path) if log_path else None,
    )
    return run_worker(settings, backend)


if __name__ == "__main__":
    raise SystemExit(main())
