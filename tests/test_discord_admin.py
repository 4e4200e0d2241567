"""Operators in control, on Discord: `/admin` behind Discord's own command permissions, a
ban mid-queue, the pause with jobs queued and restricted mode (servers as scopes), through
real discord.py against the fake Discord (which applies command permissions as Discord
does), with the real conversation, queue and a real CPU worker on a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from adapters.discord.admin_commands import user_of
from bot import operator_texts, texts
from bot.audit import AuditLog
from bot.config import Settings
from bot.jobs import JobStatus, Owner
from bot.selfie import SelfieIntake
from tests.discord_harness import DiscordHarness
from tests.discord_permissions import ADMINISTRATOR, CommandUnavailable
from tests.fake_discord import FakeDiscord, FakeInteraction, running_fake
from tests.test_discord_bot import answered, ask_avatar, original, result_of

BOSS = 4_242_424_242
SUBCOMMANDS = {"stats", "ban", "unban", "quota", "pause", "resume", "allow", "deny", "mode", "log"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with running_fake() as server:
        yield server


@pytest.fixture
async def harness(
    fake: FakeDiscord,
    settings_factory: Callable[..., Settings],
    redis_client: aioredis.Redis,
    intake: SelfieIntake,
) -> AsyncIterator[DiscordHarness]:
    """The bot with discord:4242424242 as its admin, and no worker until a test starts one."""
    settings = settings_factory(
        DISCORD_BOT_TOKEN=fake.bot_token, AVATARBOT_ADMINS=f"discord:{BOSS}"
    )
    h = DiscordHarness(fake, settings, redis_client, intake=intake)
    await h.start_bot()
    try:
        yield h
    finally:
        await h.close()
    assert fake.violations == []


async def admin(
    fake: FakeDiscord,
    user: dict[str, Any],
    subcommand: str,
    options: dict[str, Any] | None = None,
    *,
    permissions: int = ADMINISTRATOR,
) -> FakeInteraction:
    """`user`, a server administrator by default, runs `/admin <subcommand>`."""
    return await fake.command(
        "admin", options, user=user, subcommand=subcommand, permissions=permissions
    )


async def said(fake: FakeDiscord, interaction: FakeInteraction) -> str:
    """The interaction's answer, which only its user sees."""
    text = await answered(fake, interaction)
    assert original(interaction).ephemeral
    assert interaction.followups == []
    return text


async def queued(fake: FakeDiscord, user: dict[str, Any], jpeg: bytes) -> FakeInteraction:
    inter = await ask_avatar(fake, user, jpeg)
    assert (await answered(fake, inter)).startswith("⏳")
    return inter


# --------------------------------------------------------------------------- who may


async def test_admin_is_for_server_administrators_in_servers_only(
    harness: DiscordHarness, fake: FakeDiscord
) -> None:
    synced = fake.commands[None]["admin"]
    assert synced["default_member_permissions"] == str(ADMINISTRATOR)
    assert synced["contexts"] == [0]  # servers only
    assert synced["dm_permission"] is False
    assert {o["name"] for o in synced["options"]} == SUBCOMMANDS
    assert all(o["type"] == 1 for o in synced["options"])

    member = fake.user("member")
    with pytest.raises(CommandUnavailable, match="needs permissions 8"):
        await admin(fake, member, "stats", permissions=0)
    with pytest.raises(CommandUnavailable, match="context"):
        await fake.command("admin", user=fake.user("boss", BOSS), subcommand="stats", dm=True)
    # The server's own integration settings decide beyond that, not the bot.
    moderator = fake.user("moderator")
    fake.permit_command("admin", moderator)
    assert await said(fake, await admin(fake, moderator, "stats", permissions=0)) == (
        texts.unknown_command()  # Discord let them; the bot does not know them as an admin
    )
    boss = fake.user("boss", BOSS)
    fake.permit_command("admin", boss, allowed=False)
    with pytest.raises(CommandUnavailable, match="override"):
        await admin(fake, boss, "stats")


async def test_admin_answers_the_bots_admins_and_is_unknown_to_other_server_admins(
    harness: DiscordHarness, fake: FakeDiscord
) -> None:
    owner, boss = fake.user("owner"), fake.user("boss", BOSS)
    for subcommand, options in [
        ("stats", None), ("ban", {"user": "discord:42"}), ("pause", {"message": "x"}),
        ("mode", {"mode": "restricted"}), ("allow", {"scope": "discord:*"}), ("log", {"count": 5}),
    ]:  # fmt: skip
        answer = await said(fake, await admin(fake, owner, subcommand, options))
        assert answer == texts.unknown_command(), subcommand
    policy = harness.conversation.gate.policy
    assert (await policy.denied(), await policy.paused(), await policy.mode()) == ([], None, "open")

    stats = await said(fake, await admin(fake, boss, "stats"))
    assert stats.startswith("Queue: 0 waiting, 0 running")
    banned = await said(fake, await admin(fake, boss, "ban", {"user": "<@42>"}))
    assert banned == operator_texts.banned(user="discord:42", jobs=0)
    quota = await said(fake, await admin(fake, boss, "quota", {"user": "43", "limit": "2"}))
    assert quota == operator_texts.quota_set(user="discord:43", limit=2)
    default = await said(fake, await admin(fake, boss, "quota", {"user": "default"}))
    assert default == operator_texts.quota_default(limit=harness.settings.daily_quota)
    removed = await said(fake, await admin(fake, boss, "deny", {"scope": "<@42>", "remove": True}))
    assert removed == operator_texts.unbanned(user="discord:42")
    bad = await said(fake, await admin(fake, boss, "quota", {"user": "43", "limit": "lots"}))
    assert bad.startswith("Usage: /quota")
    log = AuditLog(harness.redis, harness.settings.key_prefix)
    actions = [(e.actor, e.action, e.target) for e in await log.recent(50)]
    assert actions == [
        (f"discord:{BOSS}", "unban", "discord:42"),
        (f"discord:{BOSS}", "quota", "discord:43"),
        (f"discord:{BOSS}", "ban", "discord:42"),
    ]


async def test_a_long_audit_log_fits_one_discord_message(
    harness: DiscordHarness, fake: FakeDiscord
) -> None:
    log = AuditLog(harness.redis, harness.settings.key_prefix)
    for i in range(60):
        await log.record("cli:op", "quota", f"discord:{1000 + i}", "5")
    shown = await said(fake, await admin(fake, fake.user("boss", BOSS), "log", {"count": 60}))
    lines = shown.splitlines()
    assert len(shown) <= 2000
    assert 10 < len(lines) < 60  # whole entries, the newest first
    assert lines[0].endswith("discord:1059  5")
    assert all(line.endswith("  5") for line in lines)


@pytest.mark.parametrize(
    ("value", "accepted"),
    [(8, True), (0, True), (None, True), ("administrator", False), (-1, False), (1 << 60, False)],
)
async def test_the_fake_holds_default_member_permissions_to_the_spec(
    value: object, accepted: bool
) -> None:
    async with running_fake() as fake, aiohttp.ClientSession() as http:
        url = f"{fake.api_base}/applications/{fake.app_id}/commands"
        body = [{"name": "admin", "description": "x", "default_member_permissions": value}]
        headers = {"Authorization": f"Bot {fake.bot_token}"}
        async with http.put(url, json=body, headers=headers) as put:
            assert (put.status == 200) is accepted, fake.violations
            answer = await put.json()
        if accepted:  # answered as Discord answers it: a string, or null
            stored = answer[0]["default_member_permissions"]
            assert stored == (None if value is None else str(value))
        else:
            assert answer["code"] == 50035
            assert any("default_member_permissions" in v for v in fake.violations)


def test_users_on_discord() -> None:
    assert user_of("<@123>") == user_of("<@!123>") == user_of(" 123 ") == "discord:123"
    assert user_of("telegram:42") == "telegram:42"
    assert user_of("<@&5>") == "<@&5>"  # a role mention is no user: the core says so


# --------------------------------------------------------------------------- bans, pause


async def test_a_ban_mid_queue_cancels_the_job_and_refuses_the_user(
    harness: DiscordHarness, fake: FakeDiscord, face_jpeg: bytes
) -> None:
    alice, bob, boss = fake.user("alice"), fake.user("bob"), fake.user("boss", BOSS)
    hers = await queued(fake, alice, face_jpeg)
    his = await queued(fake, bob, face_jpeg)

    banned = await said(fake, await admin(fake, boss, "ban", {"user": f"<@{alice['id']}>"}))
    assert banned == operator_texts.banned(user=f"discord:{alice['id']}", jobs=1)
    await fake.wait_for(  # her queue message says so (the status tracker edits it)
        lambda: original(hers).content == texts.status_cancelled(), what="cancelled status"
    )
    fetched = len(fake.cdn_fetches)
    assert await said(fake, await ask_avatar(fake, alice, face_jpeg)) == operator_texts.denied()
    assert await said(fake, await fake.command("styles", user=alice)) == operator_texts.denied()
    assert len(fake.cdn_fetches) == fetched  # her selfie was never downloaded

    await harness.start_worker()  # the queue goes on for everyone else
    assert (await result_of(fake, his)).files
    job_ids = await harness.queue.user_job_ids(Owner("discord", str(alice["id"]), ""))
    jobs = [await harness.queue.get_job(job_id) for job_id in job_ids]
    assert [job.status for job in jobs if job is not None] == [JobStatus.CANCELLED]
    assert hers.followups == []  # no result for her


async def test_pause_with_jobs_queued_they_still_finish(
    harness: DiscordHarness, fake: FakeDiscord, face_jpeg: bytes
) -> None:
    alice, bob, carol = fake.user("alice"), fake.user("bob"), fake.user("carol")
    boss = fake.user("boss", BOSS)
    first, second = await queued(fake, alice, face_jpeg), await queued(fake, bob, face_jpeg)

    paused = await said(fake, await admin(fake, boss, "pause", {"message": "Back at six"}))
    assert paused == operator_texts.admin_paused(operator_texts.paused("Back at six"))
    back_soon = operator_texts.paused("Back at six")
    fetched = len(fake.cdn_fetches)
    assert await said(fake, await ask_avatar(fake, carol, face_jpeg)) == back_soon
    assert len(fake.cdn_fetches) == fetched

    await harness.start_worker()
    for inter in (first, second):
        assert (await result_of(fake, inter)).files
    assert await said(fake, await admin(fake, boss, "resume")) == operator_texts.admin_resumed()
    assert (await answered(fake, await ask_avatar(fake, carol, face_jpeg))).startswith(
        ("⏳", "🎨", texts.result_ready())
    )


# --------------------------------------------------------------------------- restricted mode


async def test_restricted_mode_refuses_an_unlisted_user_until_their_server_is_allowed(
    harness: DiscordHarness, fake: FakeDiscord, face_jpeg: bytes
) -> None:
    carol, boss = fake.user("carol"), fake.user("boss", BOSS)
    restricted = await said(fake, await admin(fake, boss, "mode", {"mode": "restricted"}))
    assert restricted == operator_texts.access_mode(restricted=True)
    assert (
        await said(fake, await ask_avatar(fake, carol, face_jpeg)) == operator_texts.not_allowed()
    )
    assert await said(fake, await ask_avatar(fake, carol, face_jpeg, dm=True)) == (
        operator_texts.not_allowed()
    )
    assert fake.cdn_fetches == []

    scope = f"discord-guild:{fake.guild_id}"
    allowed = await said(fake, await admin(fake, boss, "allow", {"scope": scope}))
    assert allowed == operator_texts.allow_added(scope=scope)
    assert (await said(fake, await ask_avatar(fake, carol, face_jpeg))).startswith("⏳")
    # Not in her DMs, nor in another server.
    assert await said(fake, await ask_avatar(fake, carol, face_jpeg, dm=True)) == (
        operator_texts.not_allowed()
    )
    other = fake.add_guild(name="elsewhere")
    inter = await fake.command("styles", user=carol, guild=other)
    assert await said(fake, inter) == operator_texts.not_allowed()
