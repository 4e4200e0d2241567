"""The fake Discord keeps the adapter honest only if it is honest itself: these tests drive it
with real discord.py and with raw HTTP, and check the spec checker catches bad requests."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands

from tests.discord_spec import DiscordSpec
from tests.fake_discord import FakeDiscord, running_fake, shared_spec


@pytest.fixture
def spec() -> DiscordSpec:
    return shared_spec()


# --------------------------------------------------------------------------- spec checker


def test_spec_matches_literal_segments_before_parameters(spec: DiscordSpec) -> None:
    op, problems = spec.operation("PATCH", "/webhooks/1/tok/messages/@original")
    assert op is not None
    assert op.operation_id == "update_original_webhook_message"
    assert problems == []
    me, _ = spec.operation("GET", "/users/@me")
    assert me is not None
    assert me.template == "/users/@me"


def test_spec_rejects_unknown_paths_methods_and_bad_snowflakes(spec: DiscordSpec) -> None:
    assert spec.operation("GET", "/no/such/thing")[0] is None
    op, problems = spec.operation("PUT", "/channels/1/messages")
    assert op is None
    assert "method not in the spec" in problems[0]
    _, problems = spec.operation("POST", "/channels/abc/messages")
    assert any("does not match" in p for p in problems)


def test_spec_body_checks_required_types_unknown_fields_and_unions(spec: DiscordSpec) -> None:
    op, _ = spec.operation("PUT", "/applications/1/commands")
    assert op is not None
    good = [
        {
            "name": "avatar",
            "description": "Make an avatar",
            "options": [
                {"type": 11, "name": "selfie", "description": "Your photo", "required": True},
                {
                    "type": 3,
                    "name": "style",
                    "description": "Style",
                    "choices": [{"name": "Sketch", "value": "sketch"}],
                },
            ],
        }
    ]
    assert spec.check_body(op, "application/json", good) == []
    bad = json.loads(json.dumps(good))
    del bad[0]["options"][0]["description"]  # required
    bad[0]["options"][1]["choices"][0]["value"] = 3  # a string option with an int choice
    bad[0]["colour"] = "red"  # unknown
    problems = " | ".join(spec.check_body(op, "application/json", bad))
    assert "missing required field 'description'" in problems
    assert "unknown field 'colour'" in problems
    assert "expected string" in problems

    followup, _ = spec.operation("POST", "/webhooks/1/tok")
    assert followup is not None
    button_row: dict[str, Any] = {
        "content": "hi",
        "attachments": [{"id": 0, "filename": "a.png"}],  # snowflake as int: accepted
        "components": [
            {"type": 1, "components": [{"type": 2, "style": 1, "custom_id": "x", "label": "L"}]}
        ],
    }
    assert spec.check_body(followup, "multipart/form-data", button_row) == []
    button_row["components"][0]["components"][0]["style"] = 99
    assert spec.check_body(followup, "multipart/form-data", button_row) != []
    assert spec.check_body(followup, "text/plain", {}) != []


# --------------------------------------------------------------------------- with discord.py


@dataclass
class MiniBot:
    """The smallest real discord.py bot: one /echo command that defers, edits, follows up."""

    fake: FakeDiscord
    client: discord.Client
    task: asyncio.Task[None]
    errors: list[BaseException] = field(default_factory=list)
    fetched: list[bytes] = field(default_factory=list)


class _QuickClient(discord.Client):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py waits 5 s before a repeat IDENTIFY (Discord's pacing); not here."""


@pytest.fixture
async def mini() -> AsyncIterator[MiniBot]:
    async with running_fake() as fake:
        client = _QuickClient(intents=discord.Intents.none(), guild_ready_timeout=0)
        tree = app_commands.CommandTree(client)
        errors: list[BaseException] = []
        fetched: list[bytes] = []

        @tree.command(name="echo", description="Echo a file back")
        async def echo(interaction: discord.Interaction, file: discord.Attachment) -> None:
            await interaction.response.defer(thinking=True)
            data = await file.read()
            fetched.append(data)
            await interaction.edit_original_response(content="working")
            try:
                await interaction.followup.send(
                    "here", file=discord.File(io.BytesIO(data), filename="back.bin")
                )
            except discord.HTTPException as exc:
                errors.append(exc)

        @tree.command(name="quick", description="Defer privately, then follow up")
        async def quick(interaction: discord.Interaction) -> None:
            await interaction.response.defer(thinking=True, ephemeral=True)
            await interaction.followup.send("first")
            await interaction.followup.send("second")

        async def setup_hook() -> None:
            await tree.sync()

        client.setup_hook = setup_hook  # type: ignore[method-assign]

        async def run() -> None:
            async with client:
                await client.start(fake.bot_token)

        task = asyncio.create_task(run())
        await fake.wait_for(lambda: fake.commands.get(None), what="command sync")
        await fake.wait_connected()
        bot = MiniBot(fake, client, task, errors, fetched)
        try:
            yield bot
        finally:
            await client.close()
            await task


async def test_command_roundtrip_is_recorded_and_valid(mini: MiniBot) -> None:
    fake = mini.fake
    user = fake.user("alice")
    att = fake.attachment(b"\x00\x01payload", "x.bin", "application/octet-stream")
    inter = await fake.command("echo", {"file": att}, user=user)
    await fake.wait_for(lambda: inter.followups, what="followup")
    assert inter.callback_types == [5]
    assert inter.original_edits[0]["content"] == "working"
    [followup] = inter.followups
    assert followup.content == "here"
    assert [(u.filename, u.data) for u in followup.files] == [("back.bin", b"\x00\x01payload")]
    assert mini.fetched == [b"\x00\x01payload"]
    assert fake.cdn_fetches == [f"/attachments/{att.channel_id}/{att.id}/x.bin"]
    assert fake.violations == []


async def test_first_followup_after_a_deferral_replaces_the_loading_message(
    mini: MiniBot,
) -> None:
    fake = mini.fake
    inter = await fake.command("quick", user=fake.user())
    await fake.wait_for(lambda: len(inter.followups) == 2, what="two followups")
    first, second = inter.followups
    assert first is inter.response  # Discord turned the "thinking" message into it
    assert (first.content, first.ephemeral) == ("first", True)  # ephemeral, as deferred
    assert (second.content, second.ephemeral) == ("second", False)


async def test_followup_429_is_retried_by_discord_py(mini: MiniBot) -> None:
    fake = mini.fake
    fake.rate_limit_next("execute_webhook", retry_after=0.01)
    inter = await fake.command("echo", {"file": fake.attachment(b"x")}, user=fake.user(), dm=True)
    await fake.wait_for(lambda: inter.followups, what="followup after 429")
    assert fake.rate_limits == ["execute_webhook"]
    assert [r.status for r in fake.requests if r.operation == "execute_webhook"] == [429, 200]
    assert mini.errors == []


async def test_expired_token_answers_invalid_webhook_token(mini: MiniBot) -> None:
    fake = mini.fake
    inter = await fake.command("echo", {"file": fake.attachment(b"x")}, user=fake.user())
    await fake.wait_for(lambda: inter.original_edits, what="edit")
    fake.expire(inter)
    await fake.wait_for(lambda: mini.errors, what="followup error")
    [error] = mini.errors
    assert isinstance(error, discord.HTTPException)
    assert (error.status, error.code) == (401, 50027)
    assert inter.followups == []


async def test_events_sent_while_dropped_are_replayed_on_resume(mini: MiniBot) -> None:
    fake = mini.fake
    await fake.drop_gateway()
    assert not fake.connected
    inter = await fake.command("echo", {"file": fake.attachment(b"late")}, user=fake.user())
    await fake.wait_for(lambda: inter.followups, what="followup after resume")
    assert (fake.identifies, fake.resumes) == (1, 1)
    assert fake.violations == []


async def test_forgotten_session_makes_the_bot_identify_again(mini: MiniBot) -> None:
    fake = mini.fake
    await fake.drop_gateway(resumable=False)
    await fake.wait_for(lambda: fake.identifies == 2, what="second IDENTIFY")
    inter = await fake.command("echo", {"file": fake.attachment(b"y")}, user=fake.user())
    await fake.wait_for(lambda: inter.followups, what="followup after re-identify")


async def test_dm_and_channel_messages_and_closed_dms(mini: MiniBot) -> None:
    fake = mini.fake
    alice, bob = fake.user("alice"), fake.user("bob")
    fake.close_dms(bob)
    dm = await mini.client.create_dm(discord.Object(id=int(alice["id"])))
    await dm.send("hello alice")
    assert [m.content for m in fake.messages_for(alice)] == ["hello alice"]
    bob_dm = await mini.client.create_dm(discord.Object(id=int(bob["id"])))
    with pytest.raises(discord.Forbidden) as refused:
        await bob_dm.send("hello bob")
    assert refused.value.code == 50007
    channel = mini.client.get_partial_messageable(fake.channel_id)
    await channel.send(f"<@{bob['id']}> here you go")
    assert [m.content for m in fake.messages_for(bob)] == [f"<@{bob['id']}> here you go"]
    assert fake.violations == []


# --------------------------------------------------------------------------- raw HTTP


async def test_rest_needs_the_bot_token_and_flags_bad_bodies() -> None:
    async with FakeDiscord() as fake, aiohttp.ClientSession() as http:
        async with http.get(f"{fake.api_base}/users/@me") as unauthorised:
            assert unauthorised.status == 401
        headers = {"Authorization": f"Bot {fake.bot_token}"}
        async with http.get(f"{fake.api_base}/users/@me", headers=headers) as me:
            assert me.headers["Content-Type"] == "application/json"
            body: dict[str, Any] = await me.json()
            assert body["id"] == str(fake.app_id)
        url = f"{fake.api_base}/applications/{fake.app_id}/commands"
        async with http.put(url, json=[{"description": "no name"}], headers=headers) as put:
            assert put.status == 400
            assert (await put.json())["code"] == 50035
        assert any("missing required field 'name'" in v for v in fake.violations)
        async with http.get(f"{fake.api_base}/guilds/1/widget.json", headers=headers) as other:
            assert other.status == 404
        assert any("not implemented by the fake" in v for v in fake.violations)


async def test_cdn_serves_registered_bytes_only() -> None:
    async with FakeDiscord() as fake, aiohttp.ClientSession() as http:
        big = bytes(range(256)) * 40_000  # ~10 MB
        att = fake.attachment(big, "big.png", "image/png")
        async with http.get(att.url) as found:
            assert found.headers["Content-Type"] == "image/png"
            assert await found.read() == big
        async with http.get(att.url + "x") as missing:
            assert missing.status == 404
        assert att.payload()["size"] == len(big)
