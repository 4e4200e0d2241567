"""Each job's one queue message in Telegram, kept current as the job moves.

The handler that enqueues a job shows its queue message (`Renderer.send_queued`); the
`StatusTracker` then calls `update` with each new text, which edits that message (or
shows it anew when it was lost). Position changes share a budget across chats, so a
burst leaves most of Telegram's send rate to results and answers; status changes
(queued -> being made) always go through. A cancelled job's message becomes the answer
or goes (`after_cancel`).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from telegram import Bot
from telegram.error import BadRequest, Forbidden

from adapters.telegram.chat_actions import ChatActions
from adapters.telegram.keyboards import keyboard
from adapters.telegram.renderer import Renderer
from adapters.telegram.state import TelegramState
from adapters.telegram.target import Target, target_of_job
from adapters.telegram.token_bucket import TokenBucket
from bot.jobs import JobStatus

if TYPE_CHECKING:
    from bot.jobs import Job
    from bot.queue import JobProducer
    from bot.replies import Queued

log = logging.getLogger(__name__)

#: A status update for a job this young with no queue message yet is skipped: the
#: handler that enqueued it is about to show it (avoids a second queue message).
STATUS_GRACE_S = 10.0
#: Queue-position edits, across all chats, per second: a third of Telegram's 30 messages/s,
#: so that under a burst the results and answers keep most of the budget.
STATUS_EDITS_PER_S = 10.0


class QueueMessages:
    def __init__(
        self,
        bot: Bot,
        state: TelegramState,
        renderer: Renderer,
        chat_actions: ChatActions,
        queue: JobProducer,
    ) -> None:
        self.bot = bot
        self.state = state
        self.renderer = renderer
        self.chat_actions = chat_actions
        self.queue = queue
        self._budget = TokenBucket(STATUS_EDITS_PER_S, burst=STATUS_EDITS_PER_S)

    async def update(self, job: Job, reply: Queued) -> None:
        """Show a job's queue status in its one queue message."""
        if reply.status is JobStatus.RUNNING:
            self.chat_actions.start(job.id, target_of_job(job).chat_id)
        ref = await self.state.status_message(job.id)
        if ref is None and time.time() - job.created_at < STATUS_GRACE_S:
            return  # the handler that enqueued it is still showing it
        if reply.status is JobStatus.QUEUED and not self._budget.take():
            return  # a mere position change; results need the send budget more
        try:
            if ref is not None:
                try:
                    await self.bot.edit_message_text(
                        reply.text,
                        chat_id=ref.chat_id,
                        message_id=ref.message_id,
                        reply_markup=keyboard(reply.buttons),
                    )
                    return
                except BadRequest as exc:
                    if "not modified" in exc.message:
                        return
                    if "not found" not in exc.message:
                        raise
            await self.renderer.send_queued(target_of_job(job), reply)  # lost: show it anew
        except Forbidden:
            self.chat_actions.stop(job.id)
            log.info("telegram: status of job %s not shown: the bot was blocked", job.id)

    async def after_cancel(self, job_id: str, target: Target) -> None:
        """A cancelled job's queue message is done: it became the answer, or it goes."""
        job = await self.queue.get_job(job_id)
        if job is not None and not job.status.final:
            return  # too late to cancel: the queue message carries on
        self.chat_actions.stop(job_id)
        ref = await self.state.status_message(job_id)
        edited = target.edited
        if ref is not None and edited is not None and ref.message_id == edited.message_id:
            await self.state.pop_status_message(job_id)  # it says "cancelled" now
            return
        await self.renderer.retire_status_message(job_id)
