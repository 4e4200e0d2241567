"""A worker process for the fault suite: the real worker process
(`avatarbot.worker_process.run_worker`: claim, liveness record, take-overs, SIGTERM gives
back what is not started and finishes the group in hand) with the test suite's
`FakeBackend` (a flat image per seed after FAULT_DELAY_S; a job of style
FAULT_POISON_STYLE kills the process, as a segfaulting model would) and plain PNG
output (the labeller is measured elsewhere: bench/labelling_bench.py). Settings come
from the environment. Run as `python -m bench.fault_worker` from the repository root."""

from __future__ import annotations

import logging
import os
import signal
import sys

# A worker respawned just before the scenario ends may get its SIGTERM while still importing
# (seconds on a loaded machine), before the worker's own handlers exist: exit 0 then too.
# `run_worker` replaces this handler with its own (stop after the batch in hand).
signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))

# after the early handler is set:
from avatarbot.worker_process import run_worker  # noqa: E402
from bot.config import load_settings  # noqa: E402
from generation.worker import png_encoder  # noqa: E402
from tests.fake_backends import FakeBackend  # noqa: E402


def main() -> int:
    level = os.environ.get("AVATARBOT_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(
        level=level, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
    )
    settings = load_settings(dict(os.environ))
    backend = FakeBackend(
        delay_s=float(os.environ.get("FAULT_DELAY_S", "0")),
        poison_style=os.environ.get("FAULT_POISON_STYLE") or None,
    )
    return run_worker(settings, backend, encode=png_encoder)


if __name__ == "__main__":
    raise SystemExit(main())
