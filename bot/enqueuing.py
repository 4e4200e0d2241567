"""Putting a user's order on the queue: admission (pause, the chat's limits, quota), the
job itself, and the queue message the status tracker keeps current from then on."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot import i18n, texts
from bot.gate import Admission, Gatekeeper
from bot.jobs import JobRequest, Owner, Route
from bot.queue import QueueFullError, QuotaExceededError, UserBusyError
from bot.replies import Action, Button, Failure, Queued, Reply
from bot.selfie_store import SelfieStore, StoredSelfie
from bot.styles import Style
from bot.waiting import Shown, WaitingJobs

if TYPE_CHECKING:
    from bot.queue import JobProducer, Receipt

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Order:
    """What a user asked for: a style, how many variants, from their stored selfie."""

    sender: Owner
    style: Style
    variants: int
    stored: StoredSelfie
    seed: int | None = None
    route_data: Mapping[str, str] | None = None


class Enqueuing:
    def __init__(
        self,
        queue: JobProducer,
        selfies: SelfieStore,
        waiting: WaitingJobs,
        gate: Gatekeeper,
        bot_name: str,
    ) -> None:
        self.queue = queue
        self.selfies = selfies
        self.waiting = waiting
        self.gate = gate
        self.bot_name = bot_name

    async def enqueue(self, order: Order, status_reply: Callable[[Receipt], Queued]) -> list[Reply]:
        """The order's job queued in the user's language (its `Queued` message, watched
        from now on), or one friendly line saying why not."""
        sender = order.sender
        admission = await self.gate.admit(sender, order.variants)  # pause, chat, quota
        if not isinstance(admission, Admission):
            return admission.replies()
        request = JobRequest(
            owner=sender,
            route=Route(bot=self.bot_name, data=dict(order.route_data or {})),
            style_id=order.style.id,
            variants=admission.variants,
            seed=order.seed,
            locale=i18n.current_locale(),
        )
        try:
            receipt = await self.queue.enqueue(request, order.stored.jpeg, quota=admission.quota)
        except UserBusyError as exc:
            cancel = Button(texts.button_cancel_it(), Action.CANCEL, exc.job_id)
            return [Failure(exc.user_message, buttons=(cancel,))]
        except (QuotaExceededError, QueueFullError) as exc:
            log.info("enqueue refused (%s): %s", sender.platform, type(exc).__name__)
            return [Failure(exc.user_message)]
        reply = status_reply(receipt)
        await self._watch(receipt, reply, order.stored)
        log.info(
            "job %s enqueued: style %s, %d variant(s)",
            receipt.job.id,
            order.style.id,
            receipt.job.variants,
        )
        return [*admission.notes, reply]

    async def _watch(self, receipt: Receipt, reply: Queued, stored: StoredSelfie) -> None:
        job = receipt.job
        await self.selfies.link(job.id, stored.selfie_id)
        shown = Shown(
            status=job.status.value,
            position=reply.position,
            eta_s=round(receipt.eta_s),
            since=time.time(),
            text=reply.text,
        )
        await self.waiting.add(job.id, shown)
