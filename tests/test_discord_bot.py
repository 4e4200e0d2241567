"""The Discord adapter end to end: real discord.py against the fake Discord (gateway, REST,
CDN on 127.0.0.1), the real conversation and queue on a real Redis, a real worker with the
CPU style engine. Every request the bot sends is checked against Discord's OpenAPI spec
by the fake; each test ends by asserting there were no violations."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis
from PIL import Image

from adapters.discord import DiscordAdapter
from adapters.discord.http_errors import DiscordStartError
from bot import job_texts, texts
from bot.chat_commands import command
from bot.config import ConfigError, Settings
from bot.conversation import Conversation
from bot.jobs import Owner
from bot.queue import Delivery
from bot.replies import BadCallbackError, Reply, Text, owner_tag
from bot.selfie import FileTooLarge, SelfieIntake
from bot.styles import UnknownStyleError
from tests.chat_stack import production_encoder, production_verifier
from tests.discord_harness import DiscordHarness
from tests.fake_discord import FakeDiscord, FakeInteraction, SentMessage, running_fake
from tests.hostile import BAD_FILES

CHECKING = texts.checking_photo()
ON_IT = texts.on_it()
READY = texts.result_ready()


MADE_AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Verdict:
    ours: bool
    intact: bool

    @property
    def made_at(self) -> datetime | None:
        return MADE_AT if self.ours else None

    @property
    def made_in_style(self) -> str | None:
        return "sketch" if self.ours else None


MADE_BY_US = b"\x89PNG pretend this is one of ours"


def known_images(data: bytes) -> Verdict:
    """A stand-in verifier: /verify must hand the attachment's bytes to the hook."""
    return Verdict(ours=data == MADE_BY_US, intact=True)


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
    settings = settings_factory(DISCORD_BOT_TOKEN=fake.bot_token)
    h = DiscordHarness(fake, settings, redis_client, verifier=known_images, intake=intake)
    await h.start_bot()
    try:
        yield h
    finally:
        await h.close()
    assert fake.violations == []


# --------------------------------------------------------------------------- helpers


def original(inter: FakeInteraction) -> SentMessage:
    assert inter.response is not None, "the interaction was never answered"
    return inter.response


async def answered(fake: FakeDiscord, inter: FakeInteraction) -> str:
    """The text of the interaction's (ephemeral) original response once it settles."""

    def settled() -> str | None:
        resp = inter.response
        if resp is None or resp.loading or resp.content in ("", CHECKING, ON_IT):
            return None
        return resp.content

    return await fake.wait_for(settled, what="the original response")


async def result_of(fake: FakeDiscord, inter: FakeInteraction) -> SentMessage:
    return await fake.wait_for(
        lambda: next((m for m in inter.followups if m.files), None), what="the result followup"
    )


def images(message: SentMessage) -> list[Image.Image]:
    out: list[Image.Image] = []
    for upload in message.files:
        image = Image.open(io.BytesIO(upload.data))
        image.load()
        out.append(image)
    return out


def job_id_of(message: SentMessage) -> str:
    ids = [c for c in message.custom_ids() if c.startswith("v1:more:")]
    assert ids, f"no 'more like this' button in {message.custom_ids()}"
    return ids[0].split(":")[2]


def bound(user: dict[str, Any], data: str) -> str:
    """Callback data as sent to `user`: bound to them."""
    return f"{data}:{owner_tag(Owner('discord', str(user['id']), ''))}"


def button(message: SentMessage, action: str) -> str:
    return next(c for c in message.custom_ids() if c.startswith(f"v1:{action}:"))


async def ask_avatar(
    fake: FakeDiscord,
    user: dict[str, Any],
    data: bytes,
    *,
    style: str = "sketch",
    dm: bool = False,
    **options: Any,
) -> FakeInteraction:
    selfie = fake.attachment(data, "me.jpg", "image/jpeg", **options)
    return await fake.command("avatar", {"selfie": selfie, "style": style}, user=user, dm=dm)


# --------------------------------------------------------------------------- the main flow


async def test_commands_are_synced_globally_with_choices_and_contexts(
    harness: DiscordHarness, fake: FakeDiscord
) -> None:
    commands = fake.commands[None]
    assert set(commands) == {"avatar", "styles", "forgetme", "verify", "language", "admin"}
    for name in set(commands) - {"admin"}:  # described as the core's command table says
        assert commands[name]["description"] == command(name).summary
    options = {o["name"]: o for o in commands["avatar"]["options"]}
    assert options["selfie"]["type"] == 11
    assert [c["value"] for c in options["style"]["choices"]] == harness.catalog.ids
    assert (options["variants"]["min_value"], options["variants"]["max_value"]) == (1, 4)
    assert commands["avatar"]["contexts"] == [0, 1, 2]


async def test_avatar_is_deferred_fetched_queued_and_delivered(
    harness: DiscordHarness, fake: FakeDiscord, face_jpeg: bytes
) -> None:
    await harness.start_worker()
    alice = fake.user("alice")
    selfie = fake.attachment(face_jpeg, "me.jpg")
    inter = await fake.command(
        "avatar", {"selfie": selfie, "style": "watercolor", "variants": 2}, user=alice
    )
    result = await result_of(fake, inter)

    assert inter.callbacks[0] == {"type": 5, "data": {"flags": 64}}  # thinking, ephemeral
    assert fake.cdn_fetches == [f"/attachments/{selfie.channel_id}/{selfie.id}/me.jpg"]
    edits = [e.get("content", "") for e in inter.original_edits]
    assert edits[0] == CHECKING
    assert any(e.startswith(("⏳", "🎨")) and "Watercolor" in e for e in edits)
    assert not result.ephemeral
    assert result.content == job_texts.avatar_caption("🖌️ Watercolor", 2) or "2 avatars" in (
        result.content
    )
    pictures = images(result)
    assert [(p.format, p.size) for p in pictures] == [("PNG", (512, 512))] * 2
    job_id = job_id_of(result)
    assert set(result.custom_ids()) >= {f"v1:more:{job_id}", f"v1:style:{job_id}"}
    assert f"v1:forget:{job_id}" in result.custom_ids()
    stored = await harness.queue.get_result(job_id)  # each avatar's likeness is recorded
    assert stored is not None
    assert len(stored.images) == 2
    for image in stored.images:
        assert image.likeness is not None
        assert image.likeness.same_person  # watercolour keeps the astronaut's face
    await fake.wait_for(lambda: original(inter).content == READY, what="status retired")
    assert original(inter).ephemeral
    assert original(inter).buttons() == []


async def test_avatar_in_a_dm(harness: DiscordHarness, fake: FakeDiscord, face_jpeg: bytes) -> None:
    await harness.start_worker()
    bob = fake.user("bob")
    inter = await ask_avatar(fake, bob, face_jpeg, dm=True)
    result = await result_of(fake, inter)
    assert inter.guild_id is None
    assert result.guild_id is None
    assert [p.format for p in images(result)] == ["PNG"]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("case", ["html_page", "no_face_gradient", "two_faces"])
async def test_bad_attachment_is_answered_ephemerally_in_one_line(
    harness: DiscordHarness, fake: FakeDiscord, case: str
) -> None:
    bad = BAD_FILES[case]
    with pytest.raises(bad.error) as expected:
        harness.intake.process(bad.make())
    user = fake.user()
    inter = await ask_avatar(fake, user, bad.make())
    text = await answered(fake, inter)
    assert text == expected.value.user_message
    assert original(inter).ephemeral
    assert inter.followups == []
    assert await harness.queue.active_job(harness_owner(user, fake)) is None


async def test_too_large_attachment_is_refused_without_downloading(
    harness: DiscordHarness, fake: FakeDiscord, face_jpeg: bytes
) -> None:
    limit = harness.settings.max_upload_bytes
    inter = await ask_avatar(fake, fake.user(), face_jpeg, declared_size=limit + 1)
    text = await answered(fake, inter)
    assert text == FileTooLarge(limit + 1, limit).user_message
    assert fake.cdn_fetches == []


async def test_unknown_style_is_refused_before_downloading(
    harness: DiscordHarness, fake: FakeDiscord, face_jpeg: bytes
) -> None:
    inter = await ask_avatar(fake, fake.user(), face_jpeg, style="vaporwave")
    assert await answered(fake, inter) == UnknownStyleError().user_message
    assert fake.cdn_fetches == []


# --------------------------------------------------------------------------- buttons


async def test_only_the_requester_may_press_the_buttons_even_after_a_restart(
    harness: DiscordHarness, fake: FakeDiscord, face_jpeg: bytes
) -> None:
    await harness.start_worker()
    alice, mallory = fake.user("alice"), fake.user("mallory")
    first = await result_of(fake, await ask_avatar(fake, alice, face_jpeg))
    job_id = job_id_of(first)

    await harness.restart_bot()  # a new discord.py client: the buttons must still work

    refused = await fake.press(first, f"v1:more:{job_id}", user=mallory)
    assert await answered(fake, refused) == texts.not_your_button()
    assert original(refused).ephemeral
    forget = await fake.press(first, f"v1:forget:{job_id}", user=mallory)
    assert await answered(fake, forget) == texts.not_your_button()
    assert await harness.conversation.selfies.get(harness_owner(alice, fake)) is not None

    again = await fake.press(first, f"v1:more:{job_id}", user=alice)
    second = await result_of(fake, again)
    assert job_id_of(second) != job_id
    assert not second.ephemeral


async def test_original_file_button_sends_the_untouched_files_privately(
    harness: DiscordHarness, fake: FakeDiscord, face_jpeg: bytes
) -> None:
    await harness.start_worker()
    alice = fake.user("alice")
    result = await result_of(fake, await ask_avatar(fake, alice, face_jpeg))
    press = await fake.press(result, button(result, "orig"), user=alice)
    await answered(fake, press)
    sent = original(press)
    assert sent.ephemeral
    assert [u.data for u in sent.files] == [u.data for u in result.files]
    assert sent.files[0].filename.endswith(".png")


async def test_a_button_from_an_older_release_is_answered(
    harness: DiscordHarness, fake: FakeDiscord
) -> None:
    old = SentMessage(
        id=fake.snowflake(),
        channel_id=fake.channel_id,
        guild_id=fake.guild_id,
        kind="channel",
        interaction=None,
        payload={
            "content": "an avatar from last year",
            "components": [
                {
                    "type": 1,
                    "components": [
                        {"type": 2, "style": 1, "label": "More", "custom_id": "v0:again:x1"}
                    ],
                }
            ],
        },
        files=[],
    )
    fake.messages.append(old)
    press = await fake.press(old, "v0:again:x1", user=fake.user())
    assert await answered(fake, press) == BadCallbackError().user_message
    assert original(press).ephemeral


def harness_owner(user: dict[str, Any], fake: FakeDiscord) -> Any:
    from bot.jobs import Owner  # noqa: PLC0415  # local: only this helper needs it

    return Owner("discord", str(user["id"]), str(fake.channel_id))


async def test_another_style_then_pick_from_the_picker(
    harness: DiscordHarness, fake: FakeDiscord, face_jpeg: bytes
) -> None:
    await harness.start_worker()
    alice = fake.user("alice")
    first = await result_of(fake, await ask_avatar(fake, alice, face_jpeg))
    picker_press = await fake.press(first, button(first, "style"), user=alice)
    assert await answered(fake, picker_press) == texts.pick_another_style()
    picker = original(picker_press)
    assert picker.ephemeral
    assert bound(alice, "v1:pick:cartoon") in picker.custom_ids()
    assert bound(alice, "v1:n:2") in picker.custom_ids()

    two = await fake.press(
        picker, bound(alice, "v1:n:2"), user=alice
    )  # updates the picker in place
    await fake.wait_for(
        lambda: any(b.get("label") == "✓ 2" for b in picker.buttons()), what="picker update"
    )
    assert two.callback_types == [6]
    assert two.response is None  # no new message: the picker itself changed

    pick = await fake.press(picker, bound(alice, "v1:pick:cartoon"), user=alice)
    result = await result_of(fake, pick)
    assert len(result.files) == 2
    assert "Cartoon" in result.content


async def test_cancel_updates_the_status_and_the_next_in_line(
    harness: DiscordHarness, fake: FakeDiscord, face_jpeg: bytes
) -> None:
    alice, bob = fake.user("alice"), fake.user("bob")  # no worker: both jobs wait
    first = await ask_avatar(fake, alice, face_jpeg)
    assert "You're next" in await answered(fake, first)
    second = await ask_avatar(fake, bob, face_jpeg)
    assert "number 2" in await answered(fake, second)

    cancel = await fake.press(original(first), button(original(first), "cancel"), user=alice)
    await fake.wait_for(lambda: original(first).content == texts.cancelled(), what="cancelled")
    assert cancel.callback_types == [6]
    # The status tracker moves bob up, by editing his ephemeral queue message.
    await fake.wait_for(lambda: "You're next" in original(second).content, what="bob moved up")


async def test_a_stranger_cannot_press_someone_elses_picker(
    harness: DiscordHarness, fake: FakeDiscord, face_jpeg: bytes
) -> None:
    """Two users in a guild: Bob's presses on Alice's picker are refused ephemerally and
    change nothing (neither her picker nor anything of his)."""
    await harness.start_worker()
    alice, bob = fake.user("alice"), fake.user("bob")
    first = await result_of(fake, await ask_avatar(fake, alice, face_jpeg))
    picker_press = await fake.press(first, button(first, "style"), user=alice)
    assert await answered(fake, picker_press) == texts.pick_another_style()
    picker = original(picker_press)
    shown, edits = (picker.content, picker.buttons()), picker.edits
    for data in (bound(alice, "v1:n:2"), bound(alice, "v1:pick:cartoon")):
        refused = await fake.press(picker, data, user=bob)
        assert await answered(fake, refused) == texts.not_your_button()
        assert original(refused).ephemeral
        assert refused.followups == []
    assert (picker.content, picker.buttons(), picker.edits) == (*shown, edits)
    assert await harness.queue.user_job_ids(harness_owner(bob, fake)) == []
    pick = await fake.press(picker, bound(alice, "v1:pick:cartoon"), user=alice)
    assert "Cartoon" in (await result_of(fake, pick)).content


NOTE = "A note after the avatar."


class NotedConversation(Conversation):
    """The real conversation, whose outcomes come in two parts: the avatar, then a note."""

    async def outcome_replies(self, delivery: Delivery) -> list[Reply]:
        return [*await super().outcome_replies(delivery), Text(NOTE)]


async def test_a_retried_delivery_sends_each_part_exactly_once(
    fake: FakeDiscord,
    settings_factory: Callable[..., Settings],
    redis_client: aioredis.Redis,
    intake: SelfieIntake,
    face_jpeg: bytes,
) -> None:
    """The second message of an outcome is refused once: the pump retries the delivery,
    and the user gets the avatar once and the note once, in that order."""
    settings = settings_factory(DISCORD_BOT_TOKEN=fake.bot_token)
    h = DiscordHarness(fake, settings, redis_client, intake=intake, conversation=NotedConversation)
    side = await h.start_bot()
    try:
        fake.fail_once("execute_webhook", after=1)
        await h.start_worker()
        inter = await ask_avatar(fake, fake.user("alice"), face_jpeg)
        await fake.wait_for(lambda: side.pump.delivered == 1, what="the delivery, retried")
        refused = [r for r in fake.requests if r.operation == "execute_webhook" and r.status == 429]
        assert len(refused) == 1
        assert [(bool(m.files), m.content) for m in inter.followups] == [
            (True, job_texts.avatar_caption("✏️ Pencil sketch", 1)),
            (False, NOTE),
        ]
    finally:
        await h.close()
    assert fake.violations == []


# --------------------------------------------------------------------------- Discord trouble


async def test_a_429_on_the_result_followup_is_waited_out(
    harness: DiscordHarness, fake: FakeDiscord, face_jpeg: bytes
) -> None:
    fake.rate_limit_next("execute_webhook", retry_after=0.05)
    await harness.start_worker()
    result = await result_of(fake, await ask_avatar(fake, fake.user(), face_jpeg))
    assert fake.rate_limits == ["execute_webhook"]
    assert [p.format for p in images(result)] == ["PNG"]
    assert harness.bot is not None
    pump = harness.bot.pump  # it confirms just after the followup went through
    await fake.wait_for(lambda: pump.retrying == 0, what="delivery confirmed")


async def test_an_expired_token_sends_the_result_by_dm(
    harness: DiscordHarness, fake: FakeDiscord, face_jpeg: bytes
) -> None:
    alice = fake.user("alice")
    inter = await ask_avatar(fake, alice, face_jpeg)
    await answered(fake, inter)
    fake.expire(inter)  # Discord says the token is dead (401 / 50027)
    await harness.start_worker()
    [dm] = await fake.wait_for(lambda: fake.messages_for(alice), what="a DM")
    assert dm.channel_id == fake.dm_channels[int(alice["id"])]
    assert [p.format for p in images(dm)] == ["PNG"]
    assert f"v1:more:{job_id_of(dm)}" in dm.custom_ids()
    assert inter.followups == []
    assert harness.bot is not None
    assert harness.bot.adapter.health.fallbacks == 1


async def test_after_fifteen_minutes_the_token_is_not_even_tried(
    harness: DiscordHarness, fake: FakeDiscord, face_jpeg: bytes
) -> None:
    alice = fake.user("alice")
    fake.close_dms(alice)
    inter = await ask_avatar(fake, alice, face_jpeg)
    await answered(fake, inter)
    harness.clock.offset_s = 16 * 60
    await harness.start_worker()
    [post] = await fake.wait_for(lambda: fake.messages_for(alice), what="a channel post")
    assert post.channel_id == fake.channel_id
    assert post.content.startswith(f"<@{alice['id']}> ")
    mentions = post.payload["allowed_mentions"]
    assert (mentions["parse"], mentions["users"]) == ([], [int(alice["id"])])  # only alice
    assert [p.format for p in images(post)] == ["PNG"]
    assert [r for r in fake.requests if r.operation == "execute_webhook"] == []
    refused = [r for r in fake.requests if r.operation == "create_message" and r.status == 403]
    assert len(refused) == 1  # the DM was tried first


async def test_the_bot_resumes_after_the_gateway_drops_and_still_delivers(
    harness: DiscordHarness, fake: FakeDiscord, face_jpeg: bytes
) -> None:
    await harness.start_worker()
    alice = fake.user("alice")
    first = await ask_avatar(fake, alice, face_jpeg)
    await fake.drop_gateway()  # mid-run: a job is in flight
    second_user = fake.user("bob")
    second = await ask_avatar(fake, second_user, face_jpeg)  # sent while disconnected
    await result_of(fake, first)
    await result_of(fake, second)
    assert (fake.identifies, fake.resumes) == (1, 1)


async def test_results_are_fitted_into_a_small_upload_limit(
    harness: DiscordHarness, fake: FakeDiscord, face_jpeg: bytes
) -> None:
    fake.upload_limit = 64 * 1024 + 150 * 1024  # room for ~150 KB of files
    await harness.start_worker()
    selfie = fake.attachment(face_jpeg)
    inter = await fake.command(
        "avatar", {"selfie": selfie, "style": "popart", "variants": 4}, user=fake.user()
    )
    result = await result_of(fake, inter)
    sizes = sum(len(u.data) for u in result.files)
    assert sizes <= 150 * 1024
    assert {p.format for p in images(result)} == {"JPEG"}
    assert all(u.filename.endswith(".jpg") for u in result.files)
    if len(result.files) < 4:
        assert "didn't fit" in result.content


# --------------------------------------------------------------------------- other commands


async def test_styles_forgetme_and_verify(
    harness: DiscordHarness, fake: FakeDiscord, face_jpeg: bytes
) -> None:
    alice = fake.user("alice")
    styles = await fake.command("styles", user=alice)
    listing = await answered(fake, styles)
    for style in harness.catalog:
        assert style.label in listing
    assert original(styles).ephemeral
    previews = sorted(u.filename for u in original(styles).files)
    assert previews == sorted(f"{s}.jpg" for s in harness.catalog.ids)

    picked = await ask_avatar(fake, alice, face_jpeg)
    await answered(fake, picked)
    forget = await fake.command("forgetme", user=alice)
    receipt = await answered(fake, forget)
    assert receipt == texts.forgot_everything(1, had_selfie=True)
    assert await harness.conversation.selfies.get(harness_owner(alice, fake)) is None

    ours = fake.attachment(MADE_BY_US, "avatar.png", "image/png")
    verify = await fake.command("verify", {"image": ours}, user=alice, dm=True)
    made = texts.verdict(True, True, MADE_AT.date(), harness.catalog.get("sketch").label)
    assert await answered(fake, verify) == made
    other = fake.attachment(b"something else", "x.png", "image/png")
    verify = await fake.command("verify", {"image": other}, user=alice)
    assert await answered(fake, verify) == texts.verdict(False, True)


async def test_no_token_in_any_log_line(
    harness: DiscordHarness,
    fake: FakeDiscord,
    face_jpeg: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await harness.start_worker()
    inter = await ask_avatar(fake, fake.user(), face_jpeg)
    await result_of(fake, inter)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "/webhooks/" in logged  # discord.py did log its requests...
    assert inter.token not in logged  # ...without the interaction token
    assert fake.bot_token not in logged


# --------------------------------------------------------------------------- configuration


async def test_guild_mode_syncs_to_the_guild_only(
    fake: FakeDiscord,
    settings_factory: Callable[..., Settings],
    redis_client: aioredis.Redis,
    intake: SelfieIntake,
    face_jpeg: bytes,
) -> None:
    settings = settings_factory(
        DISCORD_BOT_TOKEN=fake.bot_token, AVATARBOT_DISCORD_GUILD_ID=str(fake.guild_id)
    )
    h = DiscordHarness(fake, settings, redis_client, intake=intake)
    await h.start_bot()
    try:
        assert None not in fake.commands
        guild_commands = fake.commands[fake.guild_id]
        assert set(guild_commands) == {
            "avatar",
            "styles",
            "forgetme",
            "verify",
            "language",
            "admin",
        }
        assert guild_commands["avatar"]["contexts"] is None  # contexts are for global ones
        await h.start_worker()
        inter = await ask_avatar(fake, fake.user(), face_jpeg)
        assert inter.payload["data"]["guild_id"] == str(fake.guild_id)
        await result_of(fake, inter)
    finally:
        await h.close()
    assert fake.violations == []


async def test_missing_or_rejected_token(
    fake: FakeDiscord,
    settings_factory: Callable[..., Settings],
    redis_client: aioredis.Redis,
    intake: SelfieIntake,
) -> None:
    h = DiscordHarness(fake, settings_factory(), redis_client, intake=intake)
    with pytest.raises(ConfigError, match="DISCORD_BOT_TOKEN"):
        DiscordAdapter(h.settings, h.conversation, redis_client)
    wrong = settings_factory(DISCORD_BOT_TOKEN="not-the-token")  # noqa: S106  # a test value
    adapter = DiscordAdapter(
        wrong, h.conversation, redis_client, client_options={"guild_ready_timeout": 0}
    )
    with pytest.raises(DiscordStartError, match="rejected DISCORD_BOT_TOKEN"):
        await adapter.start()
    assert not adapter.running
    assert fake.identifies == 0


async def test_a_start_cancelled_by_a_stop_signal_leaves_nothing_running(
    fake: FakeDiscord,
    settings_factory: Callable[..., Settings],
    redis_client: aioredis.Redis,
    intake: SelfieIntake,
) -> None:
    settings = settings_factory(DISCORD_BOT_TOKEN=fake.bot_token)
    h = DiscordHarness(fake, settings, redis_client, intake=intake)
    adapter = DiscordAdapter(
        settings, h.conversation, redis_client, client_options={"guild_ready_timeout": 0}
    )
    starting = asyncio.create_task(adapter.start())
    await asyncio.sleep(0)  # start() is under way, not ready yet
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert not adapter.running
    assert adapter.client is None
    assert not fake.connected


async def test_verify_with_the_production_verifier(
    fake: FakeDiscord,
    settings_factory: Callable[..., Settings],
    redis_client: aioredis.Redis,
    intake: SelfieIntake,
    face_jpeg: bytes,
) -> None:
    """/verify in Discord with what bot/app.py wires: a labelled avatar is recognised with
    its origin; a photo we never made is not."""
    settings = settings_factory(DISCORD_BOT_TOKEN=fake.bot_token)
    verifier = production_verifier(settings, redis_client)
    h = DiscordHarness(fake, settings, redis_client, verifier=verifier, intake=intake)
    await h.start_bot()
    try:
        with Image.open(io.BytesIO(face_jpeg)) as photo:
            selfie = photo.convert("RGB").resize((512, 512))
        made = await asyncio.to_thread(
            production_encoder(settings, redis_client).encode, selfie, "oil", 1
        )
        alice = fake.user("alice")
        ours = fake.attachment(made.data, "avatar.png", "image/png")
        text = await answered(fake, await fake.command("verify", {"image": ours}, user=alice))
        assert text.startswith("✅ I made this image"), text
        assert "in the style 🖼️ Oil painting" in text
        foreign = fake.attachment(face_jpeg, "me.jpg", "image/jpeg")
        text = await answered(fake, await fake.command("verify", {"image": foreign}, user=alice))
        assert text.startswith("❌ I didn't make this image"), text
    finally:
        await h.close()
    assert fake.violations == []
