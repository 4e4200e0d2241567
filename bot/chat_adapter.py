"""What every chat adapter is to the rest of the bot, and how one is plugged in.

An adapter translates one platform's events into `bot.conversation.Conversation` calls
and renders the returned `bot.replies.Reply` values as that platform's messages. Besides
the events it receives, the rest of the process calls it four ways: `start` and `stop`
(inside the running event loop), `deliver` (a job's outcome, from the `DeliveryPump`) and
`update_status` (a job's queue message, from the `StatusTracker`).

What every adapter does the same way, and where it lives:
- each multi-part delivery goes through `bot.sent_parts.SentParts.send_once`, so a
  retried delivery never repeats a part the chat already has;
- buttons answer only their recipient: every reply goes out `bind`-ed to the person it
  is for (`bot.replies.bind`: the sender of an event, the owner of a delivered job), and
  a press that `callback_allows` refuses gets `texts.not_your_button()`, privately;
- commands come from `bot.chat_commands.CHAT_COMMANDS`, words from `bot.texts`, and an
  error that escaped the conversation becomes a reply through `bot.replies.error_reply`.

Wiring, once per process: build the adapter, then `register(adapter, pump, tracker)`, then
`await adapter.start()`; `await adapter.stop()` on the way out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from bot.errors import AvatarbotError
from bot.replies import Queued, Reply

if TYPE_CHECKING:
    from bot.jobs import Job
    from bot.queue import Delivery, DeliveryPump
    from bot.status_tracker import StatusTracker


class PlatformUnreachable(AvatarbotError):
    """`start` could not reach the platform (the network, an outage on its side). The bot
    process keeps its other surfaces serving and starts the adapter again later; any
    other error from `start` is a setting to fix and stops the process."""


class DeliveryTarget(Protocol):
    """The part of an adapter the pump and the tracker call."""

    @property
    def platform(self) -> str:
        """The `Owner.platform` of the jobs this adapter delivers ("telegram", ...)."""

    async def deliver(self, delivery: Delivery, replies: Sequence[Reply]) -> None:
        """Send a job's outcome to its owner. Return once the chat has it (or it is
        recorded as undeliverable); raise when a later try may work (the pump retries)."""

    async def update_status(self, job: Job, reply: Queued) -> None:
        """Show the job's current place in the queue in its one queue message."""


class ChatAdapter(DeliveryTarget, Protocol):
    """A whole adapter: a delivery target with a lifecycle in the caller's event loop."""

    async def start(self) -> None:
        """Connect and start taking events; on failure leave nothing running."""

    async def stop(self) -> None:
        """Stop taking events and close connections."""


def register(adapter: DeliveryTarget, pump: DeliveryPump, tracker: StatusTracker) -> None:
    """Send the outcomes and queue messages of `adapter.platform`'s jobs to `adapter`."""
    pump.register(adapter.platform, adapter.deliver)
    tracker.register(adapter.platform, adapter.update_status)
