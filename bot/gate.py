"""The gate the conversation asks before it does anything for a user.

`check` runs before any of the user's data is read or stored (and so before intake): the
access policy (`bot.access`: denied, not allowed in restricted mode), then the chat's own
switch (`bot.chat_settings`: the bot off in this group), then, for new avatar requests
only, the pause (admins pass; the queue keeps draining). `admit` runs before a job is
enqueued: the same checks, the chat's variant limit and the user's daily quota
(`bot.quotas`). A refusal is one line for the user and, at most once a minute per user
and reason, an entry in the audit trail (`bot.audit`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis.asyncio as aioredis

from bot import operator_texts
from bot.access import READS, AccessMode, AccessPolicy, Decision, Refusal
from bot.audit import AuditLog
from bot.chat_settings import ChatConfig, ChatSettings
from bot.jobs import Owner
from bot.quotas import QuotaLimits
from bot.replies import Failure, Reply, Text

if TYPE_CHECKING:
    from bot.config import Settings


@dataclass(frozen=True)
class Refused:
    reason: Refusal
    text: str

    def replies(self) -> list[Reply]:
        """One line: a plain note while paused (nothing is wrong), else a failure."""
        if self.reason is Refusal.PAUSED:
            return [Text(self.text)]
        return [Failure(self.text)]


@dataclass(frozen=True)
class Admission:
    """A job may be enqueued: with `variants` (the chat's limit applied) against `quota`."""

    variants: int
    quota: int
    notes: tuple[Reply, ...] = ()


class Gatekeeper:
    def __init__(
        self, policy: AccessPolicy, chats: ChatSettings, quotas: QuotaLimits, audit: AuditLog
    ) -> None:
        self.policy = policy
        self.chats = chats
        self.quotas = quotas
        self.audit = audit

    @classmethod
    def create(
        cls,
        redis: aioredis.Redis,
        prefix: str,
        *,
        daily_quota: int,
        admins: frozenset[str] = frozenset(),
        mode: AccessMode = AccessMode.OPEN,
    ) -> Gatekeeper:
        return cls(
            AccessPolicy(redis, prefix, admins=admins, default_mode=mode),
            ChatSettings(redis, prefix),
            QuotaLimits(redis, prefix, daily_quota),
            AuditLog(redis, prefix),
        )

    @classmethod
    def from_settings(cls, redis: aioredis.Redis, settings: Settings) -> Gatekeeper:
        return cls.create(
            redis,
            settings.key_prefix,
            daily_quota=settings.daily_quota,
            admins=settings.admins,
            mode=AccessMode(settings.access_mode),
        )

    async def check(self, sender: Owner, *, new_request: bool = False) -> Refused | None:
        """None when `sender` may go on; `new_request`: they ask for a new avatar."""
        refused, _chat = await self._check(sender, new_request=new_request)
        return refused

    async def admit(self, sender: Owner, variants: int) -> Admission | Refused:
        """Whether a job of `variants` may be enqueued for `sender`, and on what terms."""
        refused, chat = await self._check(sender, new_request=True)
        if refused is not None:
            return refused
        quota = await self.quotas.for_user(sender.key)
        if quota.limit == 0:
            return await self._refuse(sender, Refusal.NO_QUOTA, operator_texts.no_quota())
        allowed = chat.cap(variants)
        notes: tuple[Reply, ...] = ()
        if allowed < variants:
            notes = (Text(operator_texts.variants_capped(allowed)),)
        return Admission(variants=allowed, quota=quota.limit, notes=notes)

    async def forget(self, sender: Owner) -> None:
        """/forgetme: the user's quota, allow-list entry and audit entries, bans excepted
        (the deny list and ban entries stay, so forgetting yourself is not an unban)."""
        await self.quotas.set_user(sender.key, None)
        await self.policy.unallow(sender.key)
        await self.audit.forget_user(sender.key)

    async def _check(
        self, sender: Owner, *, new_request: bool
    ) -> tuple[Refused | None, ChatConfig]:
        async with self.policy.redis.pipeline(transaction=False) as pipe:  # one round trip
            self.policy.read(pipe, sender)
            self.chats.read(pipe, sender)
            replies = await pipe.execute()
        decision = self.policy.decision(sender, replies)
        chat = self.chats.parse(replies[READS])
        reason = self._reason(decision, chat, new_request=new_request)
        if reason is None:
            return None, chat
        say = _TEXTS.get(reason)  # called now, in the user's language (never at import)
        pause = decision.pause.message if decision.pause else ""
        text = say() if say else operator_texts.paused(pause)
        return await self._refuse(sender, reason, text), chat

    @staticmethod
    def _reason(decision: Decision, chat: ChatConfig, *, new_request: bool) -> Refusal | None:
        if decision.refusal is not None:
            return decision.refusal
        if not chat.enabled:
            return Refusal.CHAT_OFF
        if new_request and decision.pause is not None and not decision.admin:
            return Refusal.PAUSED
        return None

    async def _refuse(self, sender: Owner, reason: Refusal, text: str) -> Refused:
        await self.audit.refusal(
            sender.key, reason.value, f"{sender.platform}-chat:{sender.chat_id}"
        )
        return Refused(reason, text)


_TEXTS: dict[Refusal, Callable[[], str]] = {
    Refusal.DENIED: operator_texts.denied,
    Refusal.NOT_ALLOWED: operator_texts.not_allowed,
    Refusal.CHAT_OFF: operator_texts.chat_off,
    Refusal.NO_QUOTA: operator_texts.no_quota,
}
