"""A minimal bot process for the fault suite: the real `DeliveryPump` and `Conversation`
(outcome rendering), the real queue and Redis connection; its one "platform" (`bench`)
appends every message it would send to a file instead of a chat.

Run as `python bench/fault_bot.py` with settings in the environment (REDIS_URL,
AVATARBOT_KEY_PREFIX, AVATARBOT_BOT_NAME, AVATARBOT_RECLAIM_IDLE_S, ...) and:

- FAULT_DELIVERY_LOG: the file that gets one JSON line per message sent
  (`{"job_id", "status", "failure", "consumer", "replies"}`), appended with one
  `write(2)` on an O_APPEND descriptor so lines from several processes never interleave
  and a SIGKILL loses nothing already written;
- FAULT_SEND_DELAY_S: how long a send takes (a chat API's round trip);
- FAULT_HANG_BEFORE_SEND: when set, the first send writes `{"claimed": job_id}` and
  then hangs forever (the process is killed after claiming, before sending).

SIGTERM/SIGINT: stop reading, deliver what is ready (bounded), exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from avatarbot.bot_process import consumer_name  # after the path is set
from bot.config import load_settings
from bot.conversation import Conversation
from bot.faces import DlibHogDetector
from bot.queue import Delivery, DeliveryPump, DeliveryQueue, JobProducer, QueueConfig
from bot.redis_connection import connect
from bot.replies import Reply
from bot.selfie import IntakeLimits, SelfieIntake
from bot.styles import StyleCatalog

PLATFORM = "bench"
log = logging.getLogger("fault_bot")


class FileChat:
    """The `bench` platform: a delivery is one appended JSON line."""

    def __init__(self, path: Path, consumer: str, *, delay_s: float, hang: bool) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.consumer = consumer
        self.delay_s = delay_s
        self.hang = hang

    def _write(self, record: dict[str, object]) -> None:
        os.write(self._fd, (json.dumps(record) + "\n").encode())

    async def deliver(self, delivery: Delivery, replies: Sequence[Reply]) -> None:
        job_id = delivery.outcome.job_id
        if self.hang:
            self._write({"claimed": job_id, "consumer": self.consumer})
            await asyncio.Event().wait()  # killed here: claimed, never sent
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        failure = delivery.outcome.failure
        self._write(
            {
                "job_id": job_id,
                "status": delivery.outcome.status.value,
                "failure": failure.value if failure else None,
                "consumer": self.consumer,
                "replies": [type(r).__name__ for r in replies],
            }
        )

    def close(self) -> None:
        os.close(self._fd)


async def serve() -> int:
    settings = load_settings(dict(os.environ))
    assert settings.redis_url is not None, "REDIS_URL must be set"
    consumer = consumer_name("bot")
    chat = FileChat(
        Path(os.environ["FAULT_DELIVERY_LOG"]),
        consumer,
        delay_s=float(os.environ.get("FAULT_SEND_DELAY_S", "0")),
        hang=bool(os.environ.get("FAULT_HANG_BEFORE_SEND")),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    redis = await connect(settings.redis_url)
    try:
        queue = JobProducer(redis, QueueConfig.from_settings(settings))
        await queue.ensure_groups(settings.bot_name)
        intake = SelfieIntake(DlibHogDetector(), IntakeLimits())
        catalog = StyleCatalog.load(settings.styles_file)
        conversation = Conversation.create(redis, queue, intake, catalog, settings)
        pump = DeliveryPump(
            DeliveryQueue.sharing(queue), conversation, settings.bot_name, consumer, block_ms=200
        )
        pump.register(PLATFORM, chat.deliver)
        print(f"fault bot {consumer} ready", flush=True)
        await pump.run(stop)
        deadline = loop.time() + 5.0
        with contextlib.suppress(Exception):  # drain what is ready, bounded
            while loop.time() < deadline:
                if await pump.pump_once(block_ms=1) == 0 and pump.retrying == 0:
                    break
        return 0
    finally:
        chat.close()
        await redis.aclose()


def main() -> int:
    level = os.environ.get("AVATARBOT_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(level=level, format="%(process)d %(name)s %(levelname)s %(message)s")
    return asyncio.run(serve())


if __name__ == "__main__":
    raise SystemExit(main())
