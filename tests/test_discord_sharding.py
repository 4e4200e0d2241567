"""Discord sharding through the fake gateway: the shard settings, a bot that runs the
shards Discord recommends, a refused unsharded start explained in one line, and two real
bot processes that split the shards and deliver each other's results."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from adapters.discord.adapter import DiscordAdapter, DiscordStartError
from adapters.discord.sharding import ShardPlan, explain_close
from bot import texts
from bot.config import ConfigError, Settings, load_settings
from bot.queue import QueueConfig
from bot.selfie import SelfieIntake
from bot.styles import StyleCatalog
from tests.bot_process import process_env, stop, stopped_at_exit
from tests.bot_side import InProcessWorker
from tests.conftest import free_port
from tests.discord_harness import DiscordHarness
from tests.fake_discord import FakeDiscord, FakeInteraction, SentMessage, running_fake
from tests.queue_helpers import JobQueue

ROOT = Path(__file__).resolve().parent.parent
SHARD_SETTINGS = ("AVATARBOT_DISCORD_SHARD_COUNT", "AVATARBOT_DISCORD_SHARD_IDS")


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with running_fake() as server:
        yield server


async def ask_avatar(
    fake: FakeDiscord, guild: int, face_jpeg: bytes, name: str = "alice"
) -> FakeInteraction:
    selfie = fake.attachment(face_jpeg, "me.jpg", "image/jpeg")
    options = {"selfie": selfie, "style": "sketch"}
    return await fake.command("avatar", options, user=fake.user(name), guild=guild)


async def result_of(fake: FakeDiscord, inter: FakeInteraction, within: float) -> SentMessage:
    return await fake.wait_for(
        lambda: next((m for m in inter.followups if m.files), None),
        within=within,
        what=f"the result of interaction {inter.id}",
    )


async def queued(fake: FakeDiscord, inter: FakeInteraction, within: float) -> str:
    """The queue message the bot put in the interaction's original response."""

    def settled() -> str | None:
        resp = inter.response
        if resp is None or resp.loading or resp.content in ("", texts.checking_photo()):
            return None
        return resp.content

    return await fake.wait_for(settled, within=within, what="the queue message")


# --------------------------------------------------------------------------- settings


def test_shard_settings_are_read_and_bad_ones_fail_with_the_variable_name() -> None:
    good = load_settings(
        {"AVATARBOT_DISCORD_SHARD_COUNT": "4", "AVATARBOT_DISCORD_SHARD_IDS": " 3, 1"}
    )
    plan = ShardPlan.from_settings(good)
    assert plan == ShardPlan(count=4, ids=(1, 3))
    assert plan.client_options() == {"shard_count": 4, "shard_ids": [1, 3]}
    assert not plan.syncs_commands  # shard 0 runs elsewhere: that process syncs
    assert ShardPlan.from_settings(load_settings({})).client_options() == {}

    bad = {
        ("0,1", None): ("AVATARBOT_DISCORD_SHARD_IDS", "needs AVATARBOT_DISCORD_SHARD_COUNT"),
        ("0,4", "4"): ("AVATARBOT_DISCORD_SHARD_IDS", "numbered 0 to 3"),
        ("1,1", "4"): ("AVATARBOT_DISCORD_SHARD_IDS", "each shard once"),
        ("one", "4"): ("AVATARBOT_DISCORD_SHARD_IDS", "separated by commas"),
        ("0", "0"): ("AVATARBOT_DISCORD_SHARD_COUNT", "greater than or equal to 1"),
    }
    for (ids, count), (variable, words) in bad.items():
        env = {"AVATARBOT_DISCORD_SHARD_IDS": ids}
        if count is not None:
            env["AVATARBOT_DISCORD_SHARD_COUNT"] = count
        with pytest.raises(ConfigError) as refused:
            load_settings(env)
        message = str(refused.value)
        assert f"{variable}: " in message, message
        assert words in message, message


def test_an_invalid_shard_close_names_both_settings() -> None:
    text = explain_close(4010, ShardPlan(count=4, ids=(0, 1)), 4)
    assert text is not None
    assert all(name in text for name in SHARD_SETTINGS)
    assert explain_close(4004, ShardPlan(), 1) is None  # not about shards: not ours to explain


async def test_the_fake_gateway_refuses_bad_shards_as_discord_does(fake: FakeDiscord) -> None:
    """IDENTIFY's shard field is checked: [id, count] with 0 <= id < count, else 4010."""
    async with aiohttp.ClientSession() as http:
        for shard in ([2, 2], [0], [-1, 2], "0,1"):
            async with http.ws_connect(fake.gateway_url + "?v=10&encoding=json") as ws:
                hello = await ws.receive_json()
                assert hello["op"] == 10
                identify = {"token": fake.bot_token, "intents": 1, "properties": {}}
                await ws.send_json({"op": 2, "d": {**identify, "shard": shard}})
                closed = await ws.receive()
                assert closed.type is aiohttp.WSMsgType.CLOSE
                assert closed.data == 4010, shard
    assert fake.identifies == 0
    assert [code for code, _ in fake.shard_closes] == [4010] * 4


# --------------------------------------------------------------------------- one process


async def test_by_default_the_bot_runs_the_shards_discord_recommends(
    fake: FakeDiscord,
    settings_factory: Callable[..., Settings],
    redis_client: aioredis.Redis,
    intake: SelfieIntake,
    face_jpeg: bytes,
) -> None:
    fake.recommended_shards = 2
    fake.max_guilds_per_shard = 2
    fake.max_concurrency = 2
    fake.enforce_identify_pacing = True
    guilds = [fake.add_guild(shard=0, of=2, name="zero"), fake.add_guild(shard=1, of=2)]
    settings = settings_factory(DISCORD_BOT_TOKEN=fake.bot_token)
    async with DiscordHarness(fake, settings, redis_client, intake=intake) as h:
        side = await h.start_bot()
        await h.start_worker()
        client = side.adapter.client
        assert client is not None
        assert client.shard_count == 2
        assert fake.connected_shards == {0, 1}
        assert {s.shard for s in fake.shards.values()} == {(0, 2), (1, 2)}
        # Both shards identified at once: max_concurrency 2 puts them in separate buckets.
        assert fake.identifies_too_fast == 0
        assert {g.id for g in client.guilds} >= set(guilds)  # GUILD_CREATE on each shard
        asks = [await ask_avatar(fake, g, face_jpeg, f"user{i}") for i, g in enumerate(guilds)]
        for inter in asks:
            result = await result_of(fake, inter, within=30)
            assert result.files
            assert not result.ephemeral
    assert fake.violations == []


@pytest.mark.parametrize("count", ["1", None])
async def test_a_refused_start_is_explained_in_one_line_naming_the_setting(  # noqa: PLR0917  # fixtures + param
    fake: FakeDiscord,
    settings_factory: Callable[..., Settings],
    redis_client: aioredis.Redis,
    intake: SelfieIntake,
    caplog: pytest.LogCaptureFixture,
    count: str | None,
) -> None:
    """Two guilds, one allowed per shard: one shard (set by hand, or an outdated
    recommendation of Discord's) is refused with 4011."""
    fake.max_guilds_per_shard = 1
    fake.add_guild(shard=1, of=2)
    extra = {"AVATARBOT_DISCORD_SHARD_COUNT": count} if count else {}
    settings = settings_factory(DISCORD_BOT_TOKEN=fake.bot_token, **extra)
    h = DiscordHarness(fake, settings, redis_client, intake=intake)
    caplog.set_level(logging.INFO)
    adapter = DiscordAdapter(
        settings, h.conversation, redis_client, client_options={"guild_ready_timeout": 0}
    )
    with pytest.raises(DiscordStartError) as refused:
        await adapter.start()
    text = str(refused.value)
    assert refused.value.user_message == text  # what `avatarbot bot` prints, on one line
    assert "\n" not in text
    assert "4011 (sharding required)" in text
    assert "AVATARBOT_DISCORD_SHARD_COUNT" in text
    if count:
        assert "raise AVATARBOT_DISCORD_SHARD_COUNT, or unset it" in text
    else:
        assert "restart it to use the new recommendation" in text
    assert fake.shard_closes == [(4011, 0)]
    assert not adapter.running
    # Nothing else about it in the log: no traceback, no retry loop, no second line.
    shown = [r for r in caplog.records if r.levelno >= logging.INFO]
    about = [r for r in shown if "4011" in r.getMessage() or r.exc_info]
    assert about == []


@pytest.mark.slow
async def test_outgrowing_the_shards_while_running_is_logged_once_with_the_setting(
    fake: FakeDiscord,
    settings_factory: Callable[..., Settings],
    redis_client: aioredis.Redis,
    intake: SelfieIntake,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Running fine on Discord's recommendation, the bot joins one server too many; its
    next IDENTIFY is refused with 4011. No caller waits on a start any more, so the
    client logs the explanation itself (after discord.py's 5 s IDENTIFY pacing)."""
    fake.max_guilds_per_shard = 1
    settings = settings_factory(DISCORD_BOT_TOKEN=fake.bot_token)
    caplog.set_level(logging.INFO)
    async with DiscordHarness(fake, settings, redis_client, intake=intake) as h:
        side = await h.start_bot()
        fake.add_guild(shard=0, of=1)
        await fake.drop_gateway(resumable=False)
        await fake.wait_for(lambda: fake.shard_closes, within=15, what="the 4011 close")
        await fake.wait_for(lambda: not side.adapter.running, what="the client to stop")
    shown = [r for r in caplog.records if r.levelno >= logging.INFO]
    about = [r for r in shown if "4011" in r.getMessage() or r.exc_info]
    assert [r.levelno for r in about] == [logging.ERROR]
    assert "restart it to use the new recommendation" in about[0].getMessage()
    assert "AVATARBOT_DISCORD_SHARD_COUNT" in about[0].getMessage()
    assert fake.shard_closes == [(4011, 0)]


# --------------------------------------------------------------------------- processes


def start_discord_bot(env: dict[str, str], output: Path) -> subprocess.Popen[bytes]:
    with output.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "discord_bot_process.py")],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def bot_env(
    fake: FakeDiscord, redis_url: str, key_prefix: str, data: Path, **extra: str
) -> dict[str, str]:
    return process_env(
        redis_url,
        key_prefix,
        data,
        DISCORD_BOT_TOKEN=fake.bot_token,
        FAKE_DISCORD_URL=fake.base_url,
        AVATARBOT_WEB_ENABLED="false",
        AVATARBOT_WEB_PORT=str(free_port()),
        **extra,
    )


async def wait_for_line(proc: subprocess.Popen[bytes], output: Path, text: str) -> None:
    """Until the process's output holds `text` (it must not exit first)."""
    deadline = time.monotonic() + 60
    while True:
        seen = await asyncio.to_thread(output.read_text, errors="replace")
        if text in seen:
            return
        assert proc.poll() is None, seen
        assert time.monotonic() < deadline, f"no {text!r} in:\n{seen}"
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_two_bot_processes_split_the_shards_and_deliver_each_others_results(  # noqa: PLR0917  # fixtures
    fake: FakeDiscord,
    settings_factory: Callable[..., Settings],
    redis_url: str,
    key_prefix: str,
    redis_client: aioredis.Redis,
    face_jpeg: bytes,
    tmp_path: Path,
) -> None:
    fake.max_guilds_per_shard = 1  # one process alone could not hold these guilds
    fake.max_concurrency = 4
    fake.enforce_identify_pacing = True
    guilds = {shard: fake.add_guild(shard=shard, of=4) for shard in range(4)}
    fake.guilds.pop(fake.guild_id)  # only the four above
    first_out, second_out = tmp_path / "bot-a.log", tmp_path / "bot-b.log"
    common = {"AVATARBOT_DISCORD_SHARD_COUNT": "4"}
    first = start_discord_bot(
        bot_env(fake, redis_url, key_prefix, tmp_path / "a", AVATARBOT_DISCORD_SHARD_IDS="0,1",
                **common),
        first_out,
    )  # fmt: skip
    second = start_discord_bot(
        bot_env(fake, redis_url, key_prefix, tmp_path / "b", AVATARBOT_DISCORD_SHARD_IDS="2,3",
                **common),
        second_out,
    )  # fmt: skip
    settings = settings_factory(DISCORD_BOT_TOKEN=fake.bot_token)
    catalog = StyleCatalog.load(settings.styles_file)
    worker = InProcessWorker(
        JobQueue(redis_client, QueueConfig.from_settings(settings)), catalog, settings, redis_client
    )
    with stopped_at_exit(first, second):
        await wait_for_line(first, first_out, "running: Discord")
        await wait_for_line(second, second_out, "running: Discord")
        assert fake.connected_shards == {0, 1, 2, 3}
        assert {s.shard for s in fake.shards.values()} == {(n, 4) for n in range(4)}
        syncs = [r for r in fake.requests if r.operation == "bulk_set_application_commands"]
        assert len(syncs) == 1  # by the process running shard 0 only

        # /avatar in a guild of each process: only the process running that guild's
        # shard receives the interaction, so an answer proves it handled it.
        asks = {
            "a": await ask_avatar(fake, guilds[1], face_jpeg, "ann"),
            "b": await ask_avatar(fake, guilds[2], face_jpeg, "bob"),
        }
        for inter in asks.values():
            assert "ready in about" in await queued(fake, inter, within=30)

        # The first process goes away before any avatar exists; the second delivers both.
        assert stop(first) == 0
        await worker.start()
        try:
            for inter in asks.values():
                result = await result_of(fake, inter, within=60)
                assert result.files
                assert not result.ephemeral
        finally:
            await worker.stop()
        assert stop(second) == 0
    logs = first_out.read_text() + second_out.read_text()
    assert "shard(s) 0,1 of 4" in first_out.read_text()
    assert "shard(s) 2,3 of 4" in second_out.read_text()
    assert fake.bot_token not in logs
    assert fake.identifies_too_fast == 0
    assert fake.violations == []


@pytest.mark.slow
async def test_an_unsharded_bot_process_says_in_one_line_which_setting_to_use(
    fake: FakeDiscord, redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    fake.max_guilds_per_shard = 1
    fake.add_guild(shard=1, of=2)
    output = tmp_path / "bot.log"
    env = bot_env(fake, redis_url, key_prefix, tmp_path / "data",
                  AVATARBOT_DISCORD_SHARD_COUNT="1")  # fmt: skip
    proc = start_discord_bot(env, output)
    with stopped_at_exit(proc):
        code = await asyncio.to_thread(proc.wait, 60)  # the fake answers meanwhile
    lines = output.read_text(errors="replace").splitlines()
    explained = [line for line in lines if "4011" in line]
    assert code == 2, "\n".join(lines)
    assert len(explained) == 1, "\n".join(lines)
    assert "raise AVATARBOT_DISCORD_SHARD_COUNT, or unset it" in explained[0]
    assert not any("Traceback" in line for line in lines), "\n".join(lines)
    assert fake.shard_closes == [(4011, 0)]
