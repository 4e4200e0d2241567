"""A worker process for the fault suite: the real `generation.worker` (run_worker: claim,
reclaim, heartbeat, SIGTERM finishes the batch) with the test suite's `FakeBackend` (a flat
image per seed after FAULT_DELAY_S; a job of style FAULT_POISON_STYLE kills the process,
as a segfaulting model would) and plain PNG output (the labeller is measured elsewhere:
bench/labelling_bench.py). Settings come from the environment."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import load_settings  # after the path is set
from generation.worker import png_encoder, run_worker
from tests.fake_backends import FakeBackend


def main() -> int:
    level = os.environ.get("AVATARBOT_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(level=level, format="%(process)d %(name)s %(levelname)s %(message)s")
    settings = load_settings(dict(os.environ))
    backend = FakeBackend(
        delay_s=float(os.environ.get("FAULT_DELAY_S", "0")),
        poison_style=os.environ.get("FAULT_POISON_STYLE") or None,
    )
    return run_worker(settings, backend, encode=png_encoder)


if __name__ == "__main__":
    raise SystemExit(main())
