"""Stop signals: SIGTERM (an orchestrator, `avatarbot run` stopping its workers) and SIGINT
(Ctrl-C) set an `asyncio.Event` that the process's loops watch, so a process finishes
what it has in hand and exits 0 instead of dying mid-batch or mid-delivery."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[asyncio.Event]:
    """Set `stop` on SIGTERM/SIGINT while the block runs (call it inside the event loop).

    Where signals cannot be handled (not the main thread, or a platform without
    `add_signal_handler`) the block runs anyway; `stop` is then set by its caller only."""
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    try:
        yield stop
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
