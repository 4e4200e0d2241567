"""The "sending a photo…" indicator while a job is being made.

Telegram shows a chat action for 5 seconds; one task per running job repeats it until
the job is no longer running (checked in the queue), the result is being sent, or
`CHAT_ACTION_MAX_S` has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from typing import TYPE_CHECKING

from telegram import Bot
from telegram.constants import ChatAction
from telegram.error import BadRequest, Forbidden, TelegramError

from bot.jobs import JobStatus

if TYPE_CHECKING:
    from bot.queue import JobProducer

log = logging.getLogger(__name__)

#: A chat action shows for 5 s; repeat it while the job runs, for at most this long.
CHAT_ACTION_EVERY_S = 4.5
CHAT_ACTION_MAX_S = 600.0


class ChatActions:
    def __init__(self, bot: Bot, queue: JobProducer) -> None:
        self.bot = bot
        self.queue = queue
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, job_id: str, chat_id: int) -> None:
        """Show the indicator in `chat_id` while the job runs (once per job)."""
        task = self._tasks.get(job_id)
        if task is not None and not task.done():
            return
        task = asyncio.get_running_loop().create_task(self._loop(job_id, chat_id))
        self._tasks[job_id] = task
        task.add_done_callback(functools.partial(self._done, job_id))

    def stop(self, job_id: str) -> None:
        task = self._tasks.pop(job_id, None)
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def _done(self, job_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(job_id) is task:
            del self._tasks[job_id]

    async def _loop(self, job_id: str, chat_id: int) -> None:
        deadline = time.monotonic() + CHAT_ACTION_MAX_S
        while time.monotonic() < deadline:
            job = await self.queue.get_job(job_id)
            if job is None or job.status is not JobStatus.RUNNING:
                return
            try:
                await self.bot.send_chat_action(chat_id, ChatAction.UPLOAD_PHOTO)
            except (Forbidden, BadRequest):
                return
            except TelegramError as exc:
                log.info("telegram: chat action failed (%s)", type(exc).__name__)
            await asyncio.sleep(CHAT_ACTION_EVERY_S)
