"""A real worker process for kill tests: `python -m tests.worker_process` from the repository
root, with settings in the environment (REDIS_URL, AVATARBOT_KEY_PREFIX, ...) and the fake
backend's behaviour in FAKE_DELAY_S (sleeps, as a GPU batch waits), FAKE_SPIN_S (a
pure-Python busy loop, as a CPU-bound style), FAKE_POISON_STYLE and FAKE_LOG (a file that
gets one JSON line per batch).

Fault injection points for the tests only (FAKE_KILL_AT; the process SIGKILLs itself):
- `read`: after a blocking XREADGROUP handed it entries, before their jobs are started;
- `generated`: after a batch was generated (and encoded), before it is finished;
- `finished`: right after the finish script ran, before the worker learns its verdicts.
FAKE_STALL_LOOP_S blocks the event loop itself that long after each claim that got jobs
(a busy loop must not make the worker look dead).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from avatarbot.worker_process import run_worker
from bot.config import load_settings
from bot.queue import ClaimedJob, WorkerQueue
from tests.fake_backends import FakeBackend


def _die() -> None:
    logging.getLogger(__name__).warning("fault injected: SIGKILL")
    logging.shutdown()
    os.kill(os.getpid(), signal.SIGKILL)


def inject_faults(kill_at: str, stall_s: float) -> None:
    """Wrap WorkerQueue's calls at the injection points named (this process only)."""
    start_read, finish_many, claim = (
        WorkerQueue._start_read,
        WorkerQueue.finish_many,
        WorkerQueue.claim,
    )

    async def start_read_then_die(self: WorkerQueue, consumer: str, reply: Any) -> Any:
        if reply:
            _die()
        return await start_read(self, consumer, reply)

    async def finish_with_fault(self: WorkerQueue, items: Sequence[Any], **kw: Any) -> Any:
        if kill_at == "generated":
            _die()
        verdicts = await finish_many(self, items, **kw)
        if kill_at == "finished":
            _die()
        return verdicts

    async def claim_then_stall(
        self: WorkerQueue, consumer: str, count: int, block_ms: int
    ) -> list[ClaimedJob]:
        got = await claim(self, consumer, count, block_ms)
        if got:
            time.sleep(stall_s)  # noqa: ASYNC251  # blocks the event loop on purpose
        return got

    if kill_at == "read":
        WorkerQueue._start_read = start_read_then_die  # type: ignore[method-assign]
    if kill_at in ("generated", "finished"):
        WorkerQueue.finish_many = finish_with_fault  # type: ignore[method-assign]
    if stall_s:
        WorkerQueue.claim = claim_then_stall  # type: ignore[method-assign]


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(process)d %(name)s %(message)s")
    settings = load_settings(dict(os.environ))
    log_path = os.environ.get("FAKE_LOG")
    inject_faults(
        os.environ.get("FAKE_KILL_AT", ""), float(os.environ.get("FAKE_STALL_LOOP_S", "0"))
    )
    backend = FakeBackend(
        delay_s=float(os.environ.get("FAKE_DELAY_S", "0")),
        spin_s=float(os.environ.get("FAKE_SPIN_S", "0")),
        poison_style=os.environ.get("FAKE_POISON_STYLE") or None,
        log_path=Path(log_path) if log_path else None,
    )
    return run_worker(settings, backend)


if __name__ == "__main__":
    raise SystemExit(main())
