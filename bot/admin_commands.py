"""Admin commands as words: one grammar for the chat (`/ban telegram:42`) and the command
line (`avatarbot admin ban telegram:42`).

    stats                          the queue now and today's work
    ban USER | unban USER          USER is platform:user_id
    quota USER [N | reset]         a user's daily quota (show, set, back to the default)
    quota default [N | reset]      the default daily quota
    pause [MESSAGE...] | resume    new avatar requests get "back soon" and the message
    allow [[remove] SCOPE]         the allow list (show, add, remove)
    deny [[remove] SCOPE]          the deny list (denying one user bans them)
    mode [open | restricted]       who may use the bot
    log [N]                        the newest N audit entries (default 20)

In a chat, only the admins named in the settings may run them; anyone else gets exactly
the reply to an unknown command (`handle` returns None and the conversation goes on as
for any unknown command). `/group` is the group admins' own command, for their chat:

    group [on | off | variants N | variants any]
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from bot import texts
from bot.access import AccessMode, AccessPolicy
from bot.admin import AdminActions
from bot.audit import AuditLog
from bot.chat_settings import ChatSettings
from bot.errors import AvatarbotError
from bot.group_admins import ChatAdminLookup, GroupAdmins
from bot.jobs import MAX_VARIANTS, MIN_VARIANTS, Owner
from bot.quotas import MAX_QUOTA, QuotaLimits
from bot.replies import Reply, Text

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from bot.config import Settings
    from bot.queue import JobQueue
    from bot.selfie_store import SelfieStore

USAGE = {
    "stats": "stats",
    "ban": "ban PLATFORM:USER_ID",
    "unban": "unban PLATFORM:USER_ID",
    "quota": "quota PLATFORM:USER_ID|default [N|reset]",
    "pause": "pause [MESSAGE]",
    "resume": "resume",
    "allow": "allow [[remove] SCOPE]",
    "deny": "deny [[remove] SCOPE]",
    "mode": "mode [open|restricted]",
    "log": "log [N]",
    "group": "group [on|off|variants 1-4|variants any]",
}
ADMIN_COMMANDS = frozenset(USAGE) - {"group"}
MAX_LOG = 200


class AdminUsageError(AvatarbotError):
    """An admin command with the wrong words; `user_message` shows its usage."""

    def __init__(self, command: str, lead: str) -> None:
        usage = lead + USAGE[command]
        super().__init__(
            f"bad usage of {command}", user_message=texts.ADMIN_USAGE.format(usage=usage)
        )


Action = Callable[[str, Sequence[str]], Awaitable[str]]


class AdminCommands:
    def __init__(
        self,
        actions: AdminActions,
        chats: ChatSettings,
        group_admins: GroupAdmins,
    ) -> None:
        self.actions = actions
        self.policy: AccessPolicy = actions.policy
        self.audit: AuditLog = actions.audit
        self.chats = chats
        self.group_admins = group_admins

    @classmethod
    def create(
        cls, redis: aioredis.Redis, queue: JobQueue, selfies: SelfieStore, settings: Settings
    ) -> AdminCommands:
        prefix = settings.key_prefix
        policy = AccessPolicy(
            redis, prefix, admins=settings.admins, default_mode=AccessMode(settings.access_mode)
        )
        quotas = QuotaLimits(redis, prefix, settings.daily_quota)
        actions = AdminActions(queue, policy, quotas, AuditLog(redis, prefix), selfies)
        return cls(actions, ChatSettings(redis, prefix), GroupAdmins(redis, prefix))

    def on_chat_admins(self, platform: str, lookup: ChatAdminLookup) -> None:
        """Register an adapter's lookup of a group chat's admins (for /group)."""
        self.group_admins.register(platform, lookup)

    async def handle(self, sender: Owner, command: str, words: Sequence[str]) -> list[Reply] | None:
        """Run `/command words` for `sender` if they may; None if they may not (or it is
        no admin command), so the caller answers as for any unknown command."""
        admin = self.policy.is_admin(sender)
        try:
            if command in ADMIN_COMMANDS and admin:
                return [Text(await self.run(sender.key, command, words, lead="/"))]
            if command == "group" and (admin or await self.group_admins.is_group_admin(sender)):
                return [Text(await self.group(sender, words))]
        except AvatarbotError as exc:
            return [Text(exc.user_message)]
        return None

    async def run(self, actor: str, command: str, words: Sequence[str], *, lead: str = "") -> str:
        """Run an admin command as `actor`; raises AdminUsageError (or ScopeError) on bad
        words. `lead` starts the usage line (`/` in a chat)."""
        actions: dict[str, Action] = {
            "stats": lambda _a, w: self._no_words(w, self.actions.stats),
            "ban": lambda a, w: self.actions.ban(a, _one(w)),
            "unban": lambda a, w: self.actions.unban(a, _one(w)),
            "quota": self._quota,
            "pause": lambda a, w: self.actions.pause(a, " ".join(w)),
            "resume": lambda a, w: self._no_words(w, lambda: self.actions.resume(a)),
            "allow": self._allow,
            "deny": self._deny,
            "mode": self._mode,
            "log": lambda _a, w: self.actions.log(_count(w)),
        }
        try:
            return await actions[command](actor, words)
        except _BadWords:
            raise AdminUsageError(command, lead) from None

    async def group(self, sender: Owner, words: Sequence[str]) -> str:
        """/group in a group chat, by one of its admins (or an admin of the bot)."""
        if not sender.chat_id or sender.chat_id == sender.user_id:
            return texts.GROUP_ONLY
        where = f"{sender.platform}-chat:{sender.chat_id}"
        match [w.lower() for w in words]:
            case []:
                chat = await self.chats.get(sender)
                if not chat.enabled:
                    return texts.GROUP_OFF
                return texts.GROUP_ON.format(limit=chat.max_variants or MAX_VARIANTS)
            case ["on" | "off" as switch]:
                await self.chats.set_enabled(sender, switch == "on")
                await self.audit.record(sender.key, "group", where, switch)
                return texts.GROUP_TURNED_ON if switch == "on" else texts.GROUP_TURNED_OFF
            case ["variants", limit] if limit == "any" or _variants(limit) is not None:
                chat = await self.chats.set_max_variants(sender, _variants(limit))
                await self.audit.record(sender.key, "group", where, f"variants {limit}")
                return texts.GROUP_VARIANTS.format(limit=chat.max_variants or MAX_VARIANTS)
        raise AdminUsageError("group", "/")

    # --- the commands with sub-forms ---------------------------------------------------

    async def _quota(self, actor: str, words: Sequence[str]) -> str:
        match words:
            case ["default"]:
                return await self.actions.default_quota()
            case ["default", value]:
                return await self.actions.set_default_quota(actor, _quota_value(value))
            case [user]:
                return await self.actions.quota(user)
            case [user, value]:
                return await self.actions.set_quota(actor, user, _quota_value(value))
        raise _BadWords

    async def _allow(self, actor: str, words: Sequence[str]) -> str:
        match words:
            case []:
                return await self.actions.allow_list()
            case ["remove", scope]:
                return await self.actions.unallow(actor, scope)
            case [scope]:
                return await self.actions.allow(actor, scope)
        raise _BadWords

    async def _deny(self, actor: str, words: Sequence[str]) -> str:
        match words:
            case []:
                return await self.actions.deny_list()
            case ["remove", scope]:
                return await self.actions.undeny(actor, scope)
            case [scope]:
                return await self.actions.deny(actor, scope)
        raise _BadWords

    async def _mode(self, actor: str, words: Sequence[str]) -> str:
        match [w.lower() for w in words]:
            case []:
                return await self.actions.mode()
            case ["open" | "restricted" as mode]:
                return await self.actions.set_mode(actor, AccessMode(mode))
        raise _BadWords

    @staticmethod
    async def _no_words(words: Sequence[str], action: Callable[[], Awaitable[str]]) -> str:
        if words:
            raise _BadWords
        return await action()


class _BadWords(Exception):
    """Internal: the words do not fit the command (becomes AdminUsageError)."""


def _one(words: Sequence[str]) -> str:
    if len(words) != 1:
        raise _BadWords
    return words[0]


def _count(words: Sequence[str]) -> int:
    if not words:
        return 20
    if len(words) != 1 or not words[0].isdigit() or not 1 <= int(words[0]) <= MAX_LOG:
        raise _BadWords
    return int(words[0])


def _quota_value(word: str) -> int | None:
    if word.lower() == "reset":
        return None
    if not word.isdigit() or int(word) > MAX_QUOTA:
        raise _BadWords
    return int(word)


def _variants(word: str) -> int | None:
    if word.isdigit() and MIN_VARIANTS <= int(word) <= MAX_VARIANTS:
        return int(word)
    return None
