"""A minimal bot process for the fault suite: the real `DeliveryPump` and `Conversation`
(outcome rendering), the real queue and Redis connection, wired as a bot process wires
them (`avatarbot.wiring`, `avatarbot.bot_stack`); its one "platform" (`bench`) appends
every message it would send to a file instead of a chat.

Run as `python -m bench.fault_bot` from the repository root, with settings in the
environment (REDIS_URL, AVATARBOT_KEY_PREFIX, AVATARBOT_BOT_NAME, AVATARBOT_RECLAIM_IDLE_S,
...) and:

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
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from avatarbot.bot_stack import build_bot_stack
from avatarbot.signals import stop_on_signals
from avatarbot.wiring import build_core, consumer_name, redis_client
from bot.config import load_settings
from bot.queue import Delivery
from bot.replies import Reply

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
    try:
        with stop_on_signals(asyncio.Event()) as stop:
            async with redis_client(settings.redis_url) as redis:
                core = await build_core(settings, redis)
                stack = build_bot_stack(core, consumer=consumer, pump_block_ms=200)
                stack.pump.register(PLATFORM, chat.deliver)
                print(f"fault bot {consumer} ready", flush=True)
                await stack.pump.run(stop)
                await stack.drain()  # deliver what is ready, bounded
        return 0
    finally:
        chat.close()


def main() -> int:
    level = os.environ.get("AVATARBOT_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(level=level, format="%(process)d %(name)s %(levelname)s %(message)s")
    return asyncio.run(serve())


if __name__ == "__main__":
    raise SystemExit(main())
