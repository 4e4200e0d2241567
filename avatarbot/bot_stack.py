"""What a bot process runs on top of the core: one `DeliveryPump` (results to users) and one
`StatusTracker` (queue positions kept current), shared by every chat adapter, which
registers its callbacks for its platform. Stopping drains: the loops end, then results
already waiting on the stream are delivered for a bounded time while the adapters can
still send.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from avatarbot.wiring import Core
from bot.chat_adapter import DeliveryTarget, register
from bot.consumers import consumer_name
from bot.metrics import BotMetrics
from bot.queue import DeliveryPump, DeliveryQueue
from bot.status_tracker import StatusTracker

DRAIN_S = 5.0
"""After a stop signal, how long the pump may keep delivering results that are ready."""


@dataclass
class BotStack:
    core: Core
    pump: DeliveryPump
    tracker: StatusTracker
    metrics: BotMetrics
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    """The pump's and the tracker's loops while started."""

    @property
    def consumer(self) -> str:
        return self.pump.consumer

    def register(self, adapter: DeliveryTarget) -> None:
        """An adapter's callbacks: results for its platform's users, and status edits."""
        register(adapter, self.pump, self.tracker)

    def start(self) -> None:
        """Run the pump and the tracker on this event loop until `stop`."""
        self._stop.clear()
        self.tasks = [
            asyncio.create_task(self.pump.run(self._stop), name="delivery"),
            asyncio.create_task(self.tracker.run(self._stop), name="status"),
        ]

    async def stop(self, *, drain_s: float = DRAIN_S) -> None:
        """End the loops (each after its current read), then `drain` for up to `drain_s`."""
        self._stop.set()
        tasks, self.tasks = self.tasks, []
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 10)
        if drain_s > 0:
            await self.drain(drain_s)

    async def drain(self, seconds: float = DRAIN_S) -> None:
        """Deliver results already waiting on the stream (and retries now due), for up to
        `seconds`; never raises (the process is stopping)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        with contextlib.suppress(Exception):
            while loop.time() < deadline:
                if await self.pump.pump_once(block_ms=1) == 0 and self.pump.retrying == 0:
                    return


def build_bot_stack(
    core: Core,
    *,
    consumer: str | None = None,
    pump_block_ms: int = 1000,
    retry_base_s: float = 2.0,
    tracker_interval_s: float = 1.0,
    throttle_s: float = 3.0,
) -> BotStack:
    """The pump and tracker for `core`'s bot (`settings.bot_name`); the consumer name is
    unique per process unless given. The keyword options exist for tests and benches."""
    metrics = BotMetrics()
    settings = core.settings
    pump = DeliveryPump(
        DeliveryQueue.sharing(core.queue),
        core.conversation,
        settings.bot_name,
        consumer or consumer_name("bot"),
        block_ms=pump_block_ms,
        retry_base_s=retry_base_s,
        metrics=metrics,
    )
    tracker = StatusTracker(
        core.queue,
        core.conversation,
        core.conversation.waiting,
        core.redis,
        settings.key_prefix,
        interval_s=tracker_interval_s,
        throttle_s=throttle_s,
    )
    return BotStack(core, pump, tracker, metrics)
