"""`avatarbot admin ...`: the operator's commands on the command line, and the access
policy for `avatarbot submit`.

The words after the action follow the chat commands' grammar (`bot.admin_commands`):
`avatarbot admin ban telegram:42`, `avatarbot admin quota telegram:42 5`,
`avatarbot admin allow remove discord-guild:987`, `avatarbot admin pause Back at 18:00`.
The reply is printed on stdout (exit 0); words that do not fit exit 2 with one line
`error: Usage: ...`. Whoever can run this reaches Redis, so is the operator: no admin list
applies, and the audit trail names the actor `cli:<unix user>`.

`avatarbot submit` runs as the user `cli:<unix user>` (chat `cli`) and passes the same
gate as a chat user (deny list, restricted mode, pause, quota); a refusal exits 3 with
the line a chat user would read.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
from typing import TYPE_CHECKING, TypeVar

from bot.errors import AvatarbotError

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from bot.admin_commands import Plan
    from bot.config import Settings
    from bot.jobs import Owner

EXIT_REFUSED = 3
P = TypeVar("P", bound=argparse.ArgumentParser)

ACTIONS = {
    "stats": ("the queue now and today's work", ""),
    "ban": ("ban a user: deny them and cancel their jobs", "PLATFORM:USER_ID"),
    "unban": ("lift a ban", "PLATFORM:USER_ID"),
    "quota": ("show or set a daily quota", "PLATFORM:USER_ID|default [N|reset]"),
    "pause": ("tell new requests 'back soon' (the queue keeps draining)", "[MESSAGE]"),
    "resume": ("end the pause", ""),
    "allow": ("show or change the allow list", "[[remove] SCOPE]"),
    "deny": ("show or change the deny list", "[[remove] SCOPE]"),
    "mode": ("show or set who may use the bot", "[open|restricted]"),
    "log": ("show the newest audit entries", "[N]"),
}


class RefusedError(AvatarbotError):
    """The access policy refused `avatarbot submit` (exit code 3)."""

    exit_code = EXIT_REFUSED


def cli_identity() -> str:
    """Who the command line acts as: `cli:<unix user>`."""
    return f"cli:{getpass.getuser()}"


def add_admin_parser(sub: argparse._SubParsersAction[P]) -> None:
    """The `admin` subcommand and its actions (the parser hook in `avatarbot.cli`)."""
    admin = sub.add_parser(
        "admin",
        help="operators: bans, allow/deny lists, quotas, pause, stats, audit log",
        description="Operator commands; scopes: telegram:42, telegram-chat:-100123, "
        "discord-guild:987, web:* (see docs/operations.md).",
    )
    actions = admin.add_subparsers(dest="admin_action", required=True, parser_class=type(admin))
    for name, (summary, words) in ACTIONS.items():
        action = actions.add_parser(name, help=summary, description=summary)
        if words:
            action.add_argument("words", nargs="*", metavar=words)
        else:
            action.set_defaults(words=[])


def cmd_admin(args: argparse.Namespace, settings: Settings) -> int:
    from avatarbot.commands import redis_url_for  # noqa: PLC0415  # commands imports us
    from bot.admin_commands import plan  # noqa: PLC0415

    todo = plan(args.admin_action, args.words, lead="avatarbot admin ")  # exit 2 before Redis
    with redis_url_for(settings) as url:
        print(asyncio.run(_admin(settings, url, todo)))
    return 0


async def _admin(settings: Settings, url: str, todo: Plan) -> str:
    from avatarbot.commands import redis_session  # noqa: PLC0415  # commands imports us
    from bot.admin import AdminActions  # noqa: PLC0415
    from bot.queue import JobProducer, QueueConfig  # noqa: PLC0415
    from bot.selfie_store import SelfieStore  # noqa: PLC0415

    async with redis_session(url) as redis:
        queue = JobProducer(redis, QueueConfig.from_settings(settings))
        selfies = SelfieStore(redis, settings.key_prefix, settings.selfie_ttl_s)
        return await todo(
            AdminActions.from_settings(redis, queue, selfies, settings), cli_identity()
        )


async def admit_submit(
    redis: aioredis.Redis, settings: Settings, owner: Owner, variants: int
) -> int:
    """The gate for `avatarbot submit`, as for a chat user: returns the user's daily quota
    for the enqueue; raises RefusedError with the line a chat user would read."""
    from bot.gate import Gatekeeper, Refused  # noqa: PLC0415

    admission = await Gatekeeper.from_settings(redis, settings).admit(owner, variants)
    if isinstance(admission, Refused):
        raise RefusedError(f"refused: {admission.reason}", user_message=admission.text)
    return admission.quota
