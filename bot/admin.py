"""What an operator can do, from a chat (`bot.admin_commands`) or `avatarbot admin`.

Every change is appended to the audit trail (`bot.audit`) with its actor: the admin's
`platform:user_id`, or `cli:<unix user>` on the command line. Each action answers with one
reply text (`bot.operator_texts`), the same on both.

A ban puts the user on the deny list, cancels their queued and running jobs (a queued job
is never generated; a running one finishes into the void; the status message the bot keeps
current says "Cancelled") and deletes their stored selfie. Admins named in the settings
cannot be banned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot import operator_texts
from bot.access import AccessMode, AccessPolicy
from bot.audit import AuditLog
from bot.operator_stats import collect
from bot.queue import QueueAdmin
from bot.quotas import QuotaLimits
from bot.scopes import is_user_scope, owner_of_user, parse_scope, parse_user

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from bot.config import Settings
    from bot.queue import JobProducer
    from bot.selfie_store import SelfieStore

MAX_PAUSE_MESSAGE = 300


class AdminActions:
    def __init__(
        self,
        queue: JobProducer,
        policy: AccessPolicy,
        quotas: QuotaLimits,
        audit: AuditLog,
        selfies: SelfieStore,
    ) -> None:
        self.queue = queue
        self.policy = policy
        self.quotas = quotas
        self.audit = audit
        self.selfies = selfies

    @classmethod
    def from_settings(
        cls, redis: aioredis.Redis, queue: JobProducer, selfies: SelfieStore, settings: Settings
    ) -> AdminActions:
        prefix = settings.key_prefix
        policy = AccessPolicy(
            redis, prefix, admins=settings.admins, default_mode=AccessMode(settings.access_mode)
        )
        quotas = QuotaLimits(redis, prefix, settings.daily_quota)
        return cls(queue, policy, quotas, AuditLog(redis, prefix), selfies)

    # --- looking ---------------------------------------------------------------------

    async def stats(self) -> str:
        report = await collect(QueueAdmin.sharing(self.queue))
        pause = await self.policy.paused()
        restricted = await self.policy.mode() is AccessMode.RESTRICTED
        return operator_texts.stats(
            report, restricted=restricted, paused_since=pause.since if pause else None
        )

    async def log(self, limit: int) -> str:
        entries = await self.audit.recent(limit)
        return "\n".join(e.render() for e in entries) if entries else operator_texts.log_empty()

    # --- bans ------------------------------------------------------------------------

    async def ban(self, actor: str, user: str) -> str:
        user = parse_user(user)
        if user in self.policy.admins:
            return operator_texts.ban_admin(user)
        added = await self.policy.deny(user)
        jobs = await self._cancel_jobs(user)
        await self.selfies.delete(owner_of_user(user))
        await self.audit.record(actor, "ban", user, f"{jobs} job(s) cancelled")
        return (operator_texts.banned if added else operator_texts.ban_already)(user, jobs)

    async def unban(self, actor: str, user: str) -> str:
        user = parse_user(user)
        if not await self.policy.undeny(user):
            return operator_texts.unban_not_banned(user)
        await self.audit.record(actor, "unban", user)
        return operator_texts.unbanned(user)

    async def _cancel_jobs(self, user: str) -> int:
        owner = owner_of_user(user)
        cancelled = 0
        for job_id in await self.queue.user_job_ids(owner):
            job = await self.queue.get_job(job_id)
            if job is not None and not job.status.final and await self.queue.cancel(job_id, owner):
                cancelled += 1
        return cancelled

    # --- lists -------------------------------------------------------------------------

    async def allow(self, actor: str, scope: str) -> str:
        scope = parse_scope(scope)
        if not await self.policy.allow(scope):
            return operator_texts.allow_had(scope)
        await self.audit.record(actor, "allow", scope)
        reply = operator_texts.allow_added(scope)
        if await self.policy.mode() is AccessMode.OPEN:
            reply += " " + operator_texts.allow_open_hint()
        return reply

    async def unallow(self, actor: str, scope: str) -> str:
        scope = parse_scope(scope)
        if not await self.policy.unallow(scope):
            return operator_texts.allow_lacked(scope)
        await self.audit.record(actor, "unallow", scope)
        return operator_texts.allow_removed(scope)

    async def allow_list(self) -> str:
        return operator_texts.allow_list(await self.policy.allowed())

    async def deny(self, actor: str, scope: str) -> str:
        """Deny a scope. Denying one user is banning them (jobs cancelled, selfie deleted)."""
        scope = parse_scope(scope)
        if is_user_scope(scope):
            return await self.ban(actor, scope)
        if not await self.policy.deny(scope):
            return operator_texts.deny_had(scope)
        await self.audit.record(actor, "deny", scope)
        return operator_texts.deny_added(scope)

    async def undeny(self, actor: str, scope: str) -> str:
        scope = parse_scope(scope)
        if is_user_scope(scope):
            return await self.unban(actor, scope)
        if not await self.policy.undeny(scope):
            return operator_texts.deny_lacked(scope)
        await self.audit.record(actor, "undeny", scope)
        return operator_texts.deny_removed(scope)

    async def deny_list(self) -> str:
        return operator_texts.deny_list(await self.policy.denied())

    # --- mode, pause -------------------------------------------------------------------

    async def mode(self) -> str:
        return operator_texts.access_mode(await self.policy.mode() is AccessMode.RESTRICTED)

    async def set_mode(self, actor: str, mode: AccessMode) -> str:
        await self.policy.set_mode(mode)
        await self.audit.record(actor, "mode", "", mode.value)
        return await self.mode()

    async def pause(self, actor: str, message: str) -> str:
        message = " ".join(message.split())[:MAX_PAUSE_MESSAGE]
        await self.policy.pause(message, actor)
        await self.audit.record(actor, "pause", "", message)
        return operator_texts.admin_paused(operator_texts.paused(message))

    async def resume(self, actor: str) -> str:
        if not await self.policy.resume():
            return operator_texts.admin_not_paused()
        await self.audit.record(actor, "resume")
        return operator_texts.admin_resumed()

    # --- quotas ------------------------------------------------------------------------

    async def quota(self, user: str) -> str:
        user = parse_user(user)
        quota = await self.quotas.for_user(user)
        return operator_texts.quota_of(user, quota.limit, own=quota.own)

    async def set_quota(self, actor: str, user: str, limit: int | None) -> str:
        """Give `user` a daily quota of their own; None puts them back on the default."""
        user = parse_user(user)
        await self.quotas.set_user(user, limit)
        await self.audit.record(actor, "quota", user, "default" if limit is None else str(limit))
        if limit is None:
            return operator_texts.quota_reset(user, await self.quotas.default())
        return operator_texts.quota_set(user, limit)

    async def default_quota(self) -> str:
        return operator_texts.quota_default(await self.quotas.default())

    async def set_default_quota(self, actor: str, limit: int | None) -> str:
        """Change the default daily quota; None goes back to AVATARBOT_DAILY_QUOTA."""
        await self.quotas.set_default(limit)
        limit_now = await self.quotas.default()
        await self.audit.record(actor, "quota", "default", str(limit_now))
        return operator_texts.quota_default_set(limit_now)
