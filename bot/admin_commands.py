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
from dataclasses import replace
from typing import TYPE_CHECKING

from bot import operator_texts
from bot.access import AccessMode, AccessPolicy
from bot.admin import AdminActions
from bot.audit import AuditLog
from bot.chat_settings import ChatSettings
from bot.errors import AvatarbotError
from bot.group_admins import ChatAdminLookup, GroupAdmins
from bot.jobs import MAX_VARIANTS, MIN_VARIANTS, Owner
from bot.quotas import MAX_QUOTA
from bot.replies import Reply, Text
from bot.scopes import parse_scope, parse_user

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from bot.config import Settings
    from bot.queue import JobProducer
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
        super().__init__(f"bad usage of {command}")
        self.usage = lead + USAGE[command]

    def localized(self) -> str:
        return operator_texts.admin_usage(self.usage)


Plan = Callable[[AdminActions, str], Awaitable[str]]
"""A parsed admin command: run it with the actions and the actor."""


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
        cls, redis: aioredis.Redis, queue: JobProducer, selfies: SelfieStore, settings: Settings
    ) -> AdminCommands:
        actions = AdminActions.from_settings(redis, queue, selfies, settings)
        prefix = settings.key_prefix
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
        """Run an admin command as `actor`; raises AdminUsageError or ScopeError on bad
        words (before touching Redis). `lead` starts the usage line (`/` in a chat)."""
        return await plan(command, words, lead=lead)(self.actions, actor)

    async def group(self, sender: Owner, words: Sequence[str]) -> str:
        """/group in a group chat, by one of its admins (or an admin of the bot)."""
        if not sender.chat_id or sender.chat_id == sender.user_id:
            return operator_texts.group_only()
        where = f"{sender.platform}-chat:{sender.chat_id}"
        match [w.lower() for w in words]:
            case []:
                chat = await self.chats.get(sender)
                return operator_texts.group_state(chat.enabled, chat.max_variants or MAX_VARIANTS)
            case ["on" | "off" as switch]:
                await self.chats.set_enabled(sender, switch == "on")
                await self.audit.record(sender.key, "group", where, switch)
                return operator_texts.group_turned(on=switch == "on")
            case ["variants", limit] if limit == "any" or _variants(limit) is not None:
                chat = await self.chats.set_max_variants(sender, _variants(limit))
                await self.audit.record(sender.key, "group", where, f"variants {limit}")
                return operator_texts.group_variants(chat.max_variants or MAX_VARIANTS)
        raise AdminUsageError("group", "/")


def clipped(replies: Sequence[Reply], limit: int) -> list[Reply]:
    """`replies` with each text cut to at most `limit` characters at a line's end (the
    audit log runs long; a platform caps a message: Telegram 4096, Discord 2000). The
    first lines stay: the log lists the newest entries first."""
    return [_clip(reply, limit) if isinstance(reply, Text) else reply for reply in replies]


def _clip(reply: Text, limit: int) -> Text:
    if len(reply.text) <= limit:
        return reply
    cut = reply.text.rfind("\n", 0, limit + 1)
    return replace(reply, text=reply.text[: cut if cut > 0 else limit])


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


# --- the grammar: words -> a plan, no I/O ----------------------------------------------------


def plan(command: str, words: Sequence[str], *, lead: str = "") -> Plan:
    """Parse an admin command's words; raises AdminUsageError (the usage line starts with
    `lead`) or ScopeError (a bad user or scope)."""
    try:
        return _PLANNERS[command](list(words))
    except _BadWords:
        raise AdminUsageError(command, lead) from None


def _stats(words: list[str]) -> Plan:
    _none(words)
    return lambda actions, _actor: actions.stats()


def _ban(words: list[str]) -> Plan:
    user = parse_user(_one(words))
    return lambda actions, actor: actions.ban(actor, user)


def _unban(words: list[str]) -> Plan:
    user = parse_user(_one(words))
    return lambda actions, actor: actions.unban(actor, user)


def _quota(words: list[str]) -> Plan:
    match words:
        case ["default"]:
            return lambda actions, _actor: actions.default_quota()
        case ["default", value]:
            limit = _quota_value(value)
            return lambda actions, actor: actions.set_default_quota(actor, limit)
        case [user]:
            who = parse_user(user)
            return lambda actions, _actor: actions.quota(who)
        case [user, value]:
            who, limit = parse_user(user), _quota_value(value)
            return lambda actions, actor: actions.set_quota(actor, who, limit)
    raise _BadWords


def _pause(words: list[str]) -> Plan:
    message = " ".join(words)
    return lambda actions, actor: actions.pause(actor, message)


def _resume(words: list[str]) -> Plan:
    _none(words)
    return lambda actions, actor: actions.resume(actor)


def _allow(words: list[str]) -> Plan:
    return _scope_list(words, AdminActions.allow_list, AdminActions.allow, AdminActions.unallow)


def _deny(words: list[str]) -> Plan:
    return _scope_list(words, AdminActions.deny_list, AdminActions.deny, AdminActions.undeny)


def _scope_list(
    words: list[str],
    show: Callable[[AdminActions], Awaitable[str]],
    add: Callable[[AdminActions, str, str], Awaitable[str]],
    remove: Callable[[AdminActions, str, str], Awaitable[str]],
) -> Plan:
    """`/allow` and `/deny`: no words show the list, `SCOPE` adds, `remove SCOPE` removes."""
    match words:
        case []:
            return lambda actions, _actor: show(actions)
        case ["remove", scope]:
            gone = parse_scope(scope)
            return lambda actions, actor: remove(actions, actor, gone)
        case [scope]:
            new = parse_scope(scope)
            return lambda actions, actor: add(actions, actor, new)
    raise _BadWords


def _mode(words: list[str]) -> Plan:
    match [w.lower() for w in words]:
        case []:
            return lambda actions, _actor: actions.mode()
        case ["open" | "restricted" as name]:
            mode = AccessMode(name)
            return lambda actions, actor: actions.set_mode(actor, mode)
    raise _BadWords


def _log(words: list[str]) -> Plan:
    limit = _count(words)
    return lambda actions, _actor: actions.log(limit)


_PLANNERS: dict[str, Callable[[list[str]], Plan]] = {
    "stats": _stats,
    "ban": _ban,
    "unban": _unban,
    "quota": _quota,
    "pause": _pause,
    "resume": _resume,
    "allow": _allow,
    "deny": _deny,
    "mode": _mode,
    "log": _log,
}


def _none(words: list[str]) -> None:
    if words:
        raise _BadWords
