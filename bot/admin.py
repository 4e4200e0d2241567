"""What an operator can do, from a chat (`bot.admin_commands`) or `avatarbot admin`.

Every change is appended to the audit trail (`bot.audit`) with its actor: the admin's
`platform:user_id`, or `cli:<unix user>` on the command line. Each action answers with one
reply text (`bot.texts`), the same on both.

A ban puts the user on the deny list, cancels their queued and running jobs (a queued job
is never generated; a running one finishes into the void; the status message the bot keeps
current says "Cancelled") and deletes their stored selfie. Admins named in the settings
cannot be banned.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from bot import texts
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
        day = report.today
        pause = await self.policy.paused()
        mode = await self.policy.mode()
        return texts.stats().format(
            queued=report.queued,
            running=report.running,
            workers=report.workers,
            avatars=day.avatars,
            failures=day.failures,
            p50=_seconds(day.p50_time_to_avatar_s),
            likeness=_percent(day.likeness_median),
            access=texts.mode_open() if mode is AccessMode.OPEN else texts.mode_restricted(),
            paused=texts.stats_paused().format(since=_clock(pause.since)) if pause else "",
        )

    async def log(self, limit: int) -> str:
        entries = await self.audit.recent(limit)
        return "\n".join(e.render() for e in entries) if entries else texts.log_empty()

    # --- bans ------------------------------------------------------------------------

    async def ban(self, actor: str, user: str) -> str:
        user = parse_user(user)
        if user in self.policy.admins:
            return texts.ban_admin().format(user=user)
        added = await self.policy.deny(user)
        jobs = await self._cancel_jobs(user)
        await self.selfies.delete(owner_of_user(user))
        await self.audit.record(actor, "ban", user, f"{jobs} job(s) cancelled")
        return (texts.banned() if added else texts.ban_already()).format(user=user, jobs=jobs)

    async def unban(self, actor: str, user: str) -> str:
        user = parse_user(user)
        if not await self.policy.undeny(user):
            return texts.unban_not_banned().format(user=user)
        await self.audit.record(actor, "unban", user)
        return texts.unbanned().format(user=user)

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
            return texts.allow_had().format(scope=scope)
        await self.audit.record(actor, "allow", scope)
        reply = texts.allow_added().format(scope=scope)
        if await self.policy.mode() is AccessMode.OPEN:
            reply += " " + texts.allow_open_hint()
        return reply

    async def unallow(self, actor: str, scope: str) -> str:
        scope = parse_scope(scope)
        if not await self.policy.unallow(scope):
            return texts.allow_lacked().format(scope=scope)
        await self.audit.record(actor, "unallow", scope)
        return texts.allow_removed().format(scope=scope)

    async def allow_list(self) -> str:
        scopes = await self.policy.allowed()
        if not scopes:
            return texts.allow_empty()
        return texts.allow_list().format(count=len(scopes), scopes=", ".join(scopes))

    async def deny(self, actor: str, scope: str) -> str:
        """Deny a scope. Denying one user is banning them (jobs cancelled, selfie deleted)."""
        scope = parse_scope(scope)
        if is_user_scope(scope):
            return await self.ban(actor, scope)
        if not await self.policy.deny(scope):
            return texts.deny_had().format(scope=scope)
        await self.audit.record(actor, "deny", scope)
        return texts.deny_added().format(scope=scope)

    async def undeny(self, actor: str, scope: str) -> str:
        scope = parse_scope(scope)
        if is_user_scope(scope):
            return await self.unban(actor, scope)
        if not await self.policy.undeny(scope):
            return texts.deny_lacked().format(scope=scope)
        await self.audit.record(actor, "undeny", scope)
        return texts.deny_removed().format(scope=scope)

    async def deny_list(self) -> str:
        scopes = await self.policy.denied()
        if not scopes:
            return texts.deny_empty()
        return texts.deny_list().format(count=len(scopes), scopes=", ".join(scopes))

    # --- mode, pause -------------------------------------------------------------------

    async def mode(self) -> str:
        mode = await self.policy.mode()
        return texts.mode_open() if mode is AccessMode.OPEN else texts.mode_restricted()

    async def set_mode(self, actor: str, mode: AccessMode) -> str:
        await self.policy.set_mode(mode)
        await self.audit.record(actor, "mode", "", mode.value)
        return await self.mode()

    async def pause(self, actor: str, message: str) -> str:
        message = " ".join(message.split())[:MAX_PAUSE_MESSAGE]
        await self.policy.pause(message, actor)
        await self.audit.record(actor, "pause", "", message)
        return texts.admin_paused().format(line=texts.paused(message))

    async def resume(self, actor: str) -> str:
        if not await self.policy.resume():
            return texts.admin_not_paused()
        await self.audit.record(actor, "resume")
        return texts.admin_resumed()

    # --- quotas ------------------------------------------------------------------------

    async def quota(self, user: str) -> str:
        user = parse_user(user)
        quota = await self.quotas.for_user(user)
        template = texts.quota_own() if quota.own else texts.quota_default_for()
        return template.format(user=user, limit=quota.limit)

    async def set_quota(self, actor: str, user: str, limit: int | None) -> str:
        """Give `user` a daily quota of their own; None puts them back on the default."""
        user = parse_user(user)
        await self.quotas.set_user(user, limit)
        await self.audit.record(actor, "quota", user, "default" if limit is None else str(limit))
        if limit is None:
            return texts.quota_reset().format(user=user, limit=await self.quotas.default())
        return texts.quota_set().format(user=user, limit=limit)

    async def default_quota(self) -> str:
        return texts.quota_default().format(limit=await self.quotas.default())

    async def set_default_quota(self, actor: str, limit: int | None) -> str:
        """Change the default daily quota; None goes back to AVATARBOT_DAILY_QUOTA."""
        await self.quotas.set_default(limit)
        limit_now = await self.quotas.default()
        await self.audit.record(actor, "quota", "default", str(limit_now))
        return texts.quota_default_set().format(limit=limit_now)


def _seconds(value: float | None) -> str:
    return texts.stats_none() if value is None else f"{value:.1f} s"


def _percent(value: float | None) -> str:
    return texts.stats_none() if value is None else f"{round(value * 100)}%"


def _clock(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(epoch))
