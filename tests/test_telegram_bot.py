"""The Telegram adapter, end to end: real python-telegram-bot over HTTP against the fake Bot
API (which checks every request against the official spec), real Redis, the real
conversation, queue, delivery pump and status tracker, and a real worker running the CPU
style engine on the same event loop."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from PIL import Image

from bot import texts
from bot.chat_commands import MENU
from bot.config import ConfigError, Settings
from bot.jobs import JobStatus, Owner
from bot.logs import RedactingFilter
from bot.replies import Action, format_callback, owner_tag
from bot.selfie import FileTooLarge, MultipleFaces, NoFaceFound, NotAnImage, SelfieIntake
from tests import hostile
from tests.conftest import free_port
from tests.fake_telegram import Call, FakeTelegram
from tests.telegram_harness import TelegramHarness, eventually, telegram_env

# PTB 22 itself warns (on every 429) that RetryAfter.retry_after becomes a timedelta in v23.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

STYLE = "sketch"  # the fastest CPU effect
MB = 1024 * 1024


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
def tg_settings(settings_factory: Callable[..., Settings], fake: FakeTelegram) -> Settings:
    return settings_factory(**telegram_env(fake))


@pytest.fixture
async def harness(
    fake: FakeTelegram,
    tg_settings: Settings,
    redis_client: aioredis.Redis,
    intake: SelfieIntake,
) -> AsyncIterator[TelegramHarness]:
    async with TelegramHarness(fake, tg_settings, redis_client, intake=intake) as h:
        await h.start_bot()
        await h.start_worker()
        yield h
        assert h.bot is None or h.bot.errors == []
        assert h.bot is None or h.bot.adapter.handler_errors == 0
    assert fake.violations == []


# --------------------------------------------------------------------------- helpers


def image_of(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def texts_to(fake: FakeTelegram, chat_id: int) -> list[str]:
    return [str(c.fields.get("text", "")) for c in fake.calls_to("sendMessage", chat_id)]


def bound(user: dict[str, Any], action: Action, arg: str) -> str:
    """The callback data of a button sent to `user` (bound to them)."""
    tag = owner_tag(Owner("telegram", str(user["id"]), str(user["id"])))
    return format_callback(action, arg, owner=tag)


def on_message(call: Call, action: Action, arg: str) -> str:
    """The data of the (action, arg) button on the message a call sent, whoever it is for."""
    prefix = format_callback(action, arg)
    return next(
        d for _, d in FakeTelegram.buttons(call.result) if d.split(":")[:3] == prefix.split(":")
    )


def has_button(call: Call, data: str) -> bool:
    return call.result is not None and any(d == data for _, d in FakeTelegram.buttons(call.result))


def job_buttons(call: Call) -> dict[str, str]:
    """action -> callback data of the job buttons on a message."""
    return {d.split(":")[1]: d for _, d in FakeTelegram.buttons(call.result)}


async def wait_text(fake: FakeTelegram, chat_id: int, text: str) -> Call:
    calls = await fake.wait_for(
        "sendMessage", lambda c: c.chat_id == chat_id and c.fields.get("text") == text
    )
    return calls[0]


async def wait_picker(fake: FakeTelegram, chat_id: int, count: int = 1) -> Call:
    pick = format_callback(Action.PICK, STYLE).split(":")

    def is_picker(c: Call) -> bool:
        return c.result is not None and any(
            d.split(":")[:3] == pick for _, d in FakeTelegram.buttons(c.result)
        )

    calls = await fake.wait_for(
        "sendMessage", lambda c: c.chat_id == chat_id and is_picker(c), count=count
    )
    return calls[-1]


async def request_avatar(
    fake: FakeTelegram, user: dict[str, Any], chat: dict[str, Any], jpeg: bytes, variants: int = 1
) -> Call:
    """Photo with /avatar caption, pick the style; returns the picker message call."""
    before = len([c for c in fake.calls if c.method == "sendMessage" and c.chat_id == chat["id"]])
    fake.send_photo(chat, user, jpeg, caption="/avatar")
    picker = await wait_picker(fake, chat["id"], count=1)
    assert len(fake.calls) > before
    if variants != 1:
        edits = len(fake.calls_to("editMessageText", chat["id"]))
        fake.press(user, picker.result, bound(user, Action.VARIANTS, str(variants)))
        await fake.wait_for("editMessageText", lambda c: c.chat_id == chat["id"], count=edits + 1)
    fake.press(user, picker.result, bound(user, Action.PICK, STYLE))
    return picker


# --------------------------------------------------------------------------- the flow


async def test_whole_flow_from_avatar_to_album(
    harness: TelegramHarness, fake: FakeTelegram, face_jpeg: bytes
) -> None:
    user = fake.user(1001)
    chat = fake.private_chat(user)
    fake.send_text(chat, user, "/avatar")
    await fake.wait_for("sendMessage", lambda c: c.chat_id == chat["id"])
    fake.send_photo(chat, user, face_jpeg)
    picker = await wait_picker(fake, chat["id"])
    # The largest photo size was downloaded (the fake offers 90 and 320 px versions too).
    assert (
        fake.downloads[-1] == fake.files[fake.calls_to("getFile")[-1].fields["file_id"]].file_path
    )
    assert (
        fake.calls_to("getFile")[-1].fields["file_id"]
        == max(
            fake.files.values(),
            key=lambda f: len(f.data) if f.file_path.startswith("photos") else 0,
        ).file_id
    )
    # The preview album came first, uploaded (no file ids cached yet).
    previews = fake.calls_to("sendMediaGroup", chat["id"])
    assert len(previews) == 1
    assert len(previews[0].uploads) == len(list(harness.catalog))
    variants = [d for _, d in fake.buttons(picker.result) if d.startswith("v1:n:")]
    assert variants == [bound(user, Action.VARIANTS, str(n)) for n in (1, 2, 3, 4)]
    # 3 variants: the picker is edited in place (no second album, no second picker).
    fake.press(user, picker.result, bound(user, Action.VARIANTS, "3"))
    edit = (await fake.wait_for("editMessageText", lambda c: c.chat_id == chat["id"]))[0]
    assert has_button(edit, bound(user, Action.VARIANTS, "3"))
    assert any(label.startswith("✓ 3") for label, _ in fake.buttons(edit.result))
    fake.press(user, picker.result, bound(user, Action.PICK, STYLE))
    # The picker turns into the queue message, then the album arrives with its buttons.
    results = await fake.wait_for("sendMediaGroup", lambda c: c.chat_id == chat["id"], count=2)
    album = results[1]
    assert len(album.fields["media"]) == 3
    for item in album.fields["media"]:
        image = image_of(album.upload_for(item["media"]).data)
        assert image.format in ("PNG", "JPEG")
        side = harness.settings.output_size
        assert image.size == (side, side)
    after = await fake.wait_for(
        "sendMessage", lambda c: c.chat_id == chat["id"] and "v1:more:" in str(c.fields)
    )
    assert list(job_buttons(after[0])) == ["more", "style", "orig", "forget"]
    job_id = job_buttons(after[0])["more"].split(":")[2]
    assert (await harness.queue.get_job(job_id)) is not None
    assert len(fake.calls_to("sendMessage", chat["id"])) == 3  # ask, picker, buttons message
    # Every callback query was answered exactly once.
    assert len(fake.calls_to("answerCallbackQuery")) == 2


async def test_photo_with_avatar_caption_starts_in_one_step(
    harness: TelegramHarness, fake: FakeTelegram, face_jpeg: bytes
) -> None:
    user = fake.user(1002)
    chat = fake.private_chat(user)
    await request_avatar(fake, user, chat, face_jpeg)
    result = (await fake.wait_for("sendPhoto", lambda c: c.chat_id == chat["id"]))[0]
    image = image_of(result.uploads["photo"].data)
    assert image.size == (harness.settings.output_size,) * 2
    assert list(job_buttons(result)) == ["more", "style", "orig", "forget"]
    assert "Likeness" not in str(result.fields.get("caption"))  # off by default
    # No "send me a selfie" prompt: the caption did it in one step.
    assert len(fake.calls_to("sendMessage", chat["id"])) == 1  # the picker only


async def test_document_upload_is_a_selfie(
    harness: TelegramHarness, fake: FakeTelegram, face_jpeg: bytes
) -> None:
    user = fake.user(1003)
    chat = fake.private_chat(user)
    message = fake.send_document(chat, user, face_jpeg, file_name="me.jpg")
    await wait_picker(fake, chat["id"])
    assert fake.calls_to("getFile")[-1].fields["file_id"] == message["document"]["file_id"]
    assert len(fake.downloads) == 1


async def test_an_album_of_selfies_counts_once(
    harness: TelegramHarness, fake: FakeTelegram, face_jpeg: bytes
) -> None:
    user = fake.user(1012)
    chat = fake.private_chat(user)
    for _ in range(3):
        fake.send_photo(chat, user, face_jpeg, media_group_id="album-1")
    await wait_picker(fake, chat["id"])
    fake.send_text(chat, user, "/help")  # handled after the album, in order
    await fake.wait_for("sendMessage", lambda c: c.chat_id == chat["id"], count=2)
    assert len(fake.downloads) == 1
    assert len(fake.calls_to("sendMessage", chat["id"])) == 2  # one picker, then /help


@pytest.mark.parametrize(
    ("kind", "reported", "max_upload"),
    [
        ("photo", 25 * MB, None),  # over Telegram's 20 MB getFile limit
        ("document", 21 * MB, None),
        ("document", 3 * MB, 2 * MB),  # over the operator's AVATARBOT_MAX_UPLOAD_BYTES
    ],
)
async def test_oversize_file_is_refused_before_download(  # noqa: PLR0917  # fixtures + params
    fake: FakeTelegram,
    settings_factory: Callable[..., Settings],
    redis_client: aioredis.Redis,
    intake: SelfieIntake,
    face_jpeg: bytes,
    kind: str,
    reported: int,
    max_upload: int | None,
) -> None:
    env = telegram_env(fake)
    if max_upload is not None:
        env["AVATARBOT_MAX_UPLOAD_BYTES"] = str(max_upload)
    settings = settings_factory(**env)
    async with TelegramHarness(fake, settings, redis_client, intake=intake) as h:
        await h.start_bot()
        user = fake.user(1004)
        chat = fake.private_chat(user)
        if kind == "photo":
            fake.send_photo(chat, user, face_jpeg, reported_size=reported)
        else:
            fake.send_document(chat, user, face_jpeg, reported_size=reported)
        limit = min(20 * MB, max_upload or 20 * MB)
        await wait_text(fake, chat["id"], FileTooLarge(reported, limit).user_message)
        assert fake.calls_to("getFile") == []
        assert fake.downloads == []
        assert h.bot is not None
        assert h.bot.errors == []
    assert fake.violations == []


async def test_non_image_document_is_refused(harness: TelegramHarness, fake: FakeTelegram) -> None:
    user = fake.user(1005)
    chat = fake.private_chat(user)
    fake.send_document(
        chat, user, hostile.pdf_file(), file_name="cv.pdf", mime_type="application/pdf"
    )
    await wait_text(fake, chat["id"], NotAnImage("a PDF document").user_message)
    assert fake.downloads == []  # the type Telegram reported was enough
    # A web page that claims to be a JPEG is downloaded and then refused by intake.
    fake.send_document(chat, user, hostile.html_page(), file_name="me.jpg", mime_type="image/jpeg")
    await fake.wait_for("sendMessage", lambda c: c.chat_id == chat["id"], count=2)
    assert "not a photo" in texts_to(fake, chat["id"])[1]
    assert len(fake.downloads) == 1


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (hostile.no_face_gradient, NoFaceFound().user_message),
        (hostile.two_faces, MultipleFaces(2).user_message),
    ],
    ids=["no_face", "two_faces"],
)
async def test_intake_problems_are_answered_in_plain_words(
    harness: TelegramHarness,
    fake: FakeTelegram,
    make: Callable[[], bytes],
    message: str,
) -> None:
    user = fake.user(1006)
    chat = fake.private_chat(user)
    fake.send_photo(chat, user, make(), caption="/avatar")
    await wait_text(fake, chat["id"], message)
    assert fake.calls_to("sendMediaGroup") == []  # no picker, no album


# --------------------------------------------------------------------------- commands


async def test_commands_each_get_one_answer(
    harness: TelegramHarness, fake: FakeTelegram, face_jpeg: bytes
) -> None:
    user = fake.user(1007)
    chat = fake.private_chat(user)
    for n, command in enumerate(["/start", "/help", "/cancel", "/forgetme"], start=1):
        fake.send_text(chat, user, command)
        await fake.wait_for("sendMessage", lambda c: c.chat_id == chat["id"], count=n)
    start, helptext, cancel, forget = texts_to(fake, chat["id"])
    assert "AI" in start
    assert "/forgetme" in helptext
    assert cancel == "You have nothing waiting in the queue."
    assert forget.startswith("🗑 Done.")
    fake.send_text(chat, user, "/styles")
    await wait_picker(fake, chat["id"])
    assert len(fake.calls_to("sendMediaGroup", chat["id"])) == 1
    # The command menu was set at start, from the core's command table.
    menu = fake.calls_to("setMyCommands")[0].fields["commands"]
    assert [(c["command"], c["description"]) for c in menu] == [(c.name, c.summary) for c in MENU]
    assert {c["command"] for c in menu} >= {"avatar", "styles", "cancel", "forgetme", "help"}
    assert all(f"/{c.name} — {c.summary}" in helptext for c in MENU if c.name != "help")


async def test_preview_album_once_per_chat_then_by_file_id(
    harness: TelegramHarness, fake: FakeTelegram
) -> None:
    first, second = fake.user(1008), fake.user(1009)
    chat1, chat2 = fake.private_chat(first), fake.private_chat(second)
    fake.send_text(chat1, first, "/styles")
    await wait_picker(fake, chat1["id"])
    fake.send_text(chat1, first, "/styles")
    await wait_picker(fake, chat1["id"], count=2)
    assert len(fake.calls_to("sendMediaGroup", chat1["id"])) == 1  # not again in this chat
    fake.send_text(chat2, second, "/styles")
    await wait_picker(fake, chat2["id"])
    uploaded, reused = fake.calls_to("sendMediaGroup")
    assert len(uploaded.uploads) == len(uploaded.fields["media"])
    assert reused.uploads == {}
    first_ids = [m["photo"][-1]["file_id"] for m in uploaded.result]
    assert [m["media"] for m in reused.fields["media"]] == first_ids


async def test_queue_message_is_edited_as_the_queue_moves(
    harness: TelegramHarness, fake: FakeTelegram, face_jpeg: bytes
) -> None:
    await harness.stop_worker()  # nothing moves until we say so
    a, b = fake.user(1010), fake.user(1011)
    chat_a, chat_b = fake.private_chat(a), fake.private_chat(b)
    await request_avatar(fake, a, chat_a, face_jpeg)
    status_a = (await fake.wait_for("editMessageText", lambda c: c.chat_id == chat_a["id"]))[0]
    assert "You're next" in status_a.fields["text"]
    cancel_a = job_buttons(status_a)["cancel"]
    await request_avatar(fake, b, chat_b, face_jpeg)
    status_b = (await fake.wait_for("editMessageText", lambda c: c.chat_id == chat_b["id"]))[0]
    assert "number 2" in status_b.fields["text"]
    fake.press(a, status_a.result, cancel_a)  # a leaves the queue: b moves up
    await fake.wait_for(
        "editMessageText",
        lambda c: c.chat_id == chat_b["id"] and "You're next" in c.fields["text"],
    )
    # a's queue message itself became the answer to the cancel button.
    cancelled = await fake.wait_for(
        "editMessageText", lambda c: c.chat_id == chat_a["id"] and "Cancelled" in c.fields["text"]
    )
    assert cancelled[0].fields["message_id"] == status_a.fields["message_id"]
    edits_b = fake.calls_to("editMessageText", chat_b["id"])
    assert {c.fields["message_id"] for c in edits_b} == {status_b.result["message_id"]}
    # A worker takes b's job: the message says so and the chat shows "sending a photo".
    claimed = await harness.queue.claim("test-worker", 1, 100)
    assert [c.job.owner.user_id for c in claimed] == [str(b["id"])]
    await fake.wait_for(
        "editMessageText",
        lambda c: c.chat_id == chat_b["id"] and "Making your" in c.fields["text"],
    )
    sent = await fake.wait_for("sendChatAction", lambda c: c.chat_id == chat_b["id"])
    assert sent[0].fields["action"] == "upload_photo"
    assert fake.calls_to("sendChatAction", chat_a["id"]) == []


# --------------------------------------------------------------------------- groups


async def test_group_buttons_only_for_the_requester(
    harness: TelegramHarness, fake: FakeTelegram, face_jpeg: bytes
) -> None:
    owner, stranger = fake.user(2001, "Owner"), fake.user(2002, "Stranger")
    group = fake.group_chat(-5001)
    fake.send_photo(group, owner, face_jpeg)  # a photo alone does nothing in a group
    fake.send_text(group, owner, "/avatar@avatar_test_bot")
    ask = (await fake.wait_for("sendMessage", lambda c: c.chat_id == group["id"]))[0]
    assert ask.fields["reply_markup"]["force_reply"] is True
    assert ask.fields["reply_markup"]["selective"] is True
    assert fake.downloads == []
    # The selfie, sent as a reply to the bot's question.
    photo = fake.send_photo(group, owner, face_jpeg, reply_to=ask.result)
    picker = await wait_picker(fake, group["id"])
    assert picker.fields["reply_parameters"]["message_id"] == photo["message_id"]
    queries = len(fake.calls_to("answerCallbackQuery"))
    fake.press(stranger, picker.result, on_message(picker, Action.PICK, STYLE))
    await fake.wait_until(lambda: len(fake.calls_to("answerCallbackQuery")) > queries)
    refusal = fake.calls_to("answerCallbackQuery")[-1]
    assert refusal.fields["show_alert"] is True
    assert "Only the person" in refusal.fields["text"]
    fake.press(owner, picker.result, on_message(picker, Action.PICK, STYLE))
    result = (await fake.wait_for("sendPhoto", lambda c: c.chat_id == group["id"]))[0]
    assert result.fields["reply_parameters"]["message_id"] == photo["message_id"]
    # The stranger presses "original file" on the owner's result: refused with an alert.
    queries = len(fake.calls_to("answerCallbackQuery"))
    fake.press(stranger, result.result, job_buttons(result)["orig"])
    await fake.wait_until(lambda: len(fake.calls_to("answerCallbackQuery")) > queries)
    assert fake.calls_to("answerCallbackQuery")[-1].fields["show_alert"] is True
    assert fake.calls_to("sendDocument") == []
    fake.press(owner, result.result, job_buttons(result)["orig"])
    document = (await fake.wait_for("sendDocument", lambda c: c.chat_id == group["id"]))[0]
    original = document.uploads["document"].data
    assert image_of(original).format == "PNG"


async def answer_to(fake: FakeTelegram, user: dict[str, Any], call: Call, data: str) -> Call:
    """`user` presses the button with `data` on the message `call` sent; the bot's answer."""
    answers = len(fake.calls_to("answerCallbackQuery"))
    fake.press(user, call.result, data)
    await fake.wait_until(lambda: len(fake.calls_to("answerCallbackQuery")) > answers)
    return fake.calls_to("answerCallbackQuery")[-1]


async def test_a_stranger_cannot_spoil_a_picker_that_replies_to_nobody(
    harness: TelegramHarness, fake: FakeTelegram, face_jpeg: bytes
) -> None:
    """In a group, the picker from "another style" under an album replies to no message
    of the requester's: a stranger's press on it is refused privately and changes nothing."""
    alice, bob = fake.user(2101, "Alice"), fake.user(2102, "Bob")
    group = fake.group_chat(-5101)
    await request_avatar(fake, alice, group, face_jpeg, variants=2)
    buttons = (
        await fake.wait_for(
            "sendMessage", lambda c: c.chat_id == group["id"] and "v1:more:" in str(c.fields)
        )
    )[0]
    fake.press(alice, buttons.result, job_buttons(buttons)["style"])
    picker = await wait_picker(fake, group["id"], count=2)
    assert "reply_to_message" not in picker.result
    edits = len(fake.calls_to("editMessageText"))
    for data in (on_message(picker, Action.PICK, STYLE), on_message(picker, Action.VARIANTS, "3")):
        refusal = await answer_to(fake, bob, picker, data)
        assert refusal.fields["show_alert"] is True
        assert refusal.fields["text"] == texts.not_your_button()
    assert len(fake.calls_to("editMessageText")) == edits  # Alice's picker is untouched
    assert (
        fake.messages[(group["id"], picker.result["message_id"])]["text"] == picker.fields["text"]
    )
    assert not await harness.queue.user_job_ids(Owner("telegram", str(bob["id"]), ""))
    # Alice's own press still works.
    fake.press(alice, picker.result, bound(alice, Action.PICK, "cartoon"))
    await fake.wait_for("sendMediaGroup", lambda c: c.chat_id == group["id"], count=3)


async def test_every_keyboard_in_a_group_answers_its_requester_only(
    harness: TelegramHarness, fake: FakeTelegram
) -> None:
    alice, bob = fake.user(2201, "Alice"), fake.user(2202, "Bob")
    group = fake.group_chat(-5201)
    fake.send_text(group, alice, "/start@avatar_test_bot")
    welcome = (await fake.wait_for("sendMessage", lambda c: c.chat_id == group["id"]))[0]
    make = on_message(welcome, Action.AVATAR, "-")
    assert make == bound(alice, Action.AVATAR, "-")
    sent = len(fake.calls_to("sendMessage", group["id"]))
    refusal = await answer_to(fake, bob, welcome, make)
    assert refusal.fields["text"] == texts.not_your_button()
    assert len(fake.calls_to("sendMessage", group["id"])) == sent
    assert await answer_to(fake, alice, welcome, make) is not None
    ask = (await fake.wait_for("sendMessage", lambda c: c.chat_id == group["id"], count=2))[1]
    assert ask.fields["text"] == texts.ask_selfie()


# --------------------------------------------------------------------------- restarts


async def test_bot_restart_while_a_job_runs_delivers_once(
    harness: TelegramHarness, fake: FakeTelegram, face_jpeg: bytes
) -> None:
    await harness.stop_worker()
    user = fake.user(3001)
    chat = fake.private_chat(user)
    await request_avatar(fake, user, chat, face_jpeg)
    status = (await fake.wait_for("editMessageText", lambda c: c.chat_id == chat["id"]))[0]
    job_id = job_buttons(status)["cancel"].split(":")[2]
    await harness.stop_bot()  # the bot goes down; the job runs meanwhile
    await harness.start_worker()

    async def done() -> bool:
        job = await harness.queue.get_job(job_id)
        return job is not None and job.status is JobStatus.DONE

    await eventually(done)
    assert fake.calls_to("sendPhoto") == []
    await harness.start_bot()  # a fresh adapter, pump and tracker
    result = (await fake.wait_for("sendPhoto", lambda c: c.chat_id == chat["id"]))[0]
    # Buttons still work after another restart, and nothing arrives twice.
    await harness.restart_bot()
    fake.press(user, result.result, job_buttons(result)["orig"])
    await fake.wait_for("sendDocument", lambda c: c.chat_id == chat["id"])
    assert len(fake.calls_to("sendPhoto", chat["id"])) == 1


# --------------------------------------------------------------------------- Telegram errors


async def test_429_on_send_photo_is_retried(
    harness: TelegramHarness, fake: FakeTelegram, face_jpeg: bytes
) -> None:
    user = fake.user(4001)
    chat = fake.private_chat(user)
    fake.fail_next("sendPhoto", status=429, retry_after=1)
    await request_avatar(fake, user, chat, face_jpeg)
    await fake.wait_for("sendPhoto", lambda c: c.chat_id == chat["id"])
    assert [c.status for c in fake.calls_to("sendPhoto")] == [429, 200]


async def test_blocked_user_makes_the_result_undeliverable(
    harness: TelegramHarness, fake: FakeTelegram, face_jpeg: bytes
) -> None:
    user = fake.user(4002)
    chat = fake.private_chat(user)
    await harness.stop_worker()
    await request_avatar(fake, user, chat, face_jpeg)
    status = (await fake.wait_for("editMessageText", lambda c: c.chat_id == chat["id"]))[0]
    job_id = job_buttons(status)["cancel"].split(":")[2]
    fake.block(chat["id"])
    await harness.start_worker()
    assert harness.bot is not None
    adapter, pump = harness.bot.adapter, harness.bot.pump

    async def recorded() -> bool:
        return await adapter.state.undeliverable(job_id) is not None

    await eventually(recorded)
    record = await adapter.state.undeliverable(job_id)
    assert record is not None
    assert record.reason.startswith("Forbidden")
    assert record.chat_id == chat["id"]
    assert [c.status for c in fake.calls_to("sendPhoto")] == [403]

    async def confirmed() -> bool:
        """The pump confirms just after the adapter returns: the job is marked delivered
        and nothing waits for a retry (or for its confirm)."""
        job = await harness.queue.get_job(job_id)
        return job is not None and job.delivered and pump.retrying == 0

    await eventually(confirmed)


async def test_photo_refused_by_telegram_is_sent_as_a_file(
    harness: TelegramHarness, fake: FakeTelegram, face_jpeg: bytes
) -> None:
    user = fake.user(4003)
    chat = fake.private_chat(user)
    fake.fail_next("sendPhoto", status=400, description="Bad Request: PHOTO_INVALID_DIMENSIONS")
    await request_avatar(fake, user, chat, face_jpeg)
    document = (await fake.wait_for("sendDocument", lambda c: c.chat_id == chat["id"]))[0]
    assert image_of(document.uploads["document"].data).size == (harness.settings.output_size,) * 2
    buttons = await fake.wait_for(
        "sendMessage", lambda c: c.chat_id == chat["id"] and "v1:more:" in str(c.fields)
    )
    assert list(job_buttons(buttons[0])) == ["more", "style", "orig", "forget"]
    assert [c.status for c in fake.calls_to("sendPhoto")] == [400]


# --------------------------------------------------------------------------- webhook


@pytest.fixture
def webhook_port() -> int:
    return free_port()


async def test_webhook_requires_the_secret_token(
    fake: FakeTelegram,
    settings_factory: Callable[..., Settings],
    redis_client: aioredis.Redis,
    intake: SelfieIntake,
    webhook_port: int,
) -> None:
    url = f"http://127.0.0.1:{webhook_port}/telegram/hook"
    secret = "s3cret-token_ok"  # noqa: S105  # a test secret
    settings = settings_factory(
        **telegram_env(fake),
        AVATARBOT_TELEGRAM_WEBHOOK_URL=url,
        AVATARBOT_TELEGRAM_WEBHOOK_SECRET=secret,
    )
    async with TelegramHarness(fake, settings, redis_client, intake=intake) as h:
        side = await h.start_bot()
        app = web.Application()
        side.adapter.add_routes(app)  # mounted beside /healthz on the shared server
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", webhook_port).start()
        try:
            assert fake.webhook == {"url": url, "secret_token": secret}
            user = fake.user(5001)
            chat = fake.private_chat(user)
            body = {
                "update_id": 99,
                "message": {
                    "message_id": 1,
                    "date": 0,
                    "chat": chat,
                    "from": user,
                    "text": "/help",
                    "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
                },
            }
            async with aiohttp.ClientSession() as session:
                for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
                    async with session.post(url, json=body, headers=headers) as resp:
                        assert resp.status == 403
            fake.send_text(chat, user, "/start")  # Telegram posts it with the secret
            await fake.wait_for("sendMessage", lambda c: c.chat_id == chat["id"])
            assert fake.webhook_posts == [(1, 200)]
            assert "AI" in texts_to(fake, chat["id"])[0]
            assert len(fake.calls_to("sendMessage")) == 1  # the forged /help did nothing
            assert fake.calls_to("getUpdates") == []
        finally:
            await h.stop_bot()
            await runner.cleanup()
    assert fake.violations == []


def test_webhook_without_secret_is_a_config_error(
    settings_factory: Callable[..., Settings], redis_client: aioredis.Redis
) -> None:
    from adapters.telegram import TelegramAdapter  # noqa: PLC0415

    settings = settings_factory(
        TELEGRAM_BOT_TOKEN="123456789:TEST-fake-token-for-avatarbot-tests",  # noqa: S106  # fake
        AVATARBOT_TELEGRAM_WEBHOOK_URL="https://bot.example.org/telegram/hook",
    )
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET"):
        TelegramAdapter(settings, None, redis_client)  # type: ignore[arg-type]  # fails first


# --------------------------------------------------------------------------- logs


class _Keep(logging.Handler):
    """Keeps (logger, message) of every record as logged, before any redaction."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.getMessage()))


@pytest.fixture
def captured_logs() -> Iterator[tuple[io.StringIO, list[tuple[str, str]]]]:
    """Everything logged (DEBUG and up), through the production redacting filter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    raw = _Keep()
    records = raw.records
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(raw)
    root.addHandler(handler)
    try:
        yield stream, records
    finally:
        root.removeHandler(handler)
        root.removeHandler(raw)
        root.setLevel(old_level)


async def test_token_never_reaches_the_logs(
    harness: TelegramHarness,
    fake: FakeTelegram,
    face_jpeg: bytes,
    captured_logs: tuple[io.StringIO, list[tuple[str, str]]],
) -> None:
    stream, records = captured_logs
    user = fake.user(6001)
    chat = fake.private_chat(user)
    await request_avatar(fake, user, chat, face_jpeg)
    await fake.wait_for("sendPhoto", lambda c: c.chat_id == chat["id"])
    assert fake.token not in stream.getvalue()
    assert "[REDACTED]" in stream.getvalue()  # httpx's request lines carried it
    ours = [m for name, m in records if name.startswith(("adapters", "bot", "generation"))]
    assert ours  # the adapter and the core did log
    assert not [m for m in ours if fake.token in m]


async def test_forgetme_leaves_no_key_about_the_user(
    harness: TelegramHarness,
    fake: FakeTelegram,
    face_jpeg: bytes,
    redis_client: aioredis.Redis,
    key_prefix: str,
) -> None:
    """After a delivered avatar, /forgetme deletes every key about the user: queue, core
    and this adapter's own state (scanned across the whole prefix)."""
    user = fake.user(1777)
    chat = fake.private_chat(user)
    await request_avatar(fake, user, chat, face_jpeg)
    result = (await fake.wait_for("sendPhoto", lambda c: c.chat_id == chat["id"]))[0]
    job_id = job_buttons(result)["more"].split(":")[2]

    async def about_user() -> list[str]:
        found = []
        async for raw in redis_client.scan_iter(match=f"{key_prefix}:*", count=1000):
            key = raw.decode()
            if job_id in key or "1777" in key:
                found.append(key)
            elif await redis_client.type(raw) == b"hash":
                values = b" ".join(v for v in (await redis_client.hgetall(raw)).values())
                if job_id.encode() in values or b'"1777"' in values:
                    found.append(key)
        return found

    assert await about_user()  # the job, its result, the adapter's delivery records...
    fake.send_text(chat, user, "/forgetme")
    await fake.wait_for(
        "sendMessage", lambda c: c.chat_id == chat["id"] and "Done" in str(c.fields)
    )
    assert await about_user() == []


async def test_verify_tells_ours_altered_and_foreign_images_apart(
    harness: TelegramHarness, fake: FakeTelegram, face_jpeg: bytes
) -> None:
    """/verify in Telegram with the production verifier: the avatar as sent (a document
    keeps its bytes), a re-encoded copy (as chat apps do), and a photo we never made."""
    user = fake.user(1888)
    chat = fake.private_chat(user)
    await request_avatar(fake, user, chat, face_jpeg)
    sent = (await fake.wait_for("sendPhoto", lambda c: c.chat_id == chat["id"]))[0]
    avatar = sent.uploads["photo"].data
    buffer = io.BytesIO()
    image_of(avatar).convert("RGB").save(buffer, "JPEG", quality=85)
    cases = [
        (avatar, "avatar.png", "image/png", "✅ I made this image"),
        (buffer.getvalue(), "copy.jpg", "image/jpeg", "⚠️ I made this image, but it has been"),
        (face_jpeg, "other.jpg", "image/jpeg", "❌ I didn't make this image"),
    ]
    verdicts = ("I made this image", "I didn't make this image")
    for n, (data, name, mime, expected) in enumerate(cases, start=1):
        fake.send_text(chat, user, "/verify")
        fake.send_document(chat, user, data, file_name=name, mime_type=mime)
        replies = await fake.wait_for(
            "sendMessage",
            lambda c: c.chat_id == chat["id"] and any(v in str(c.fields) for v in verdicts),
            count=n,
        )
        text = str(replies[n - 1].fields["text"])
        assert text.startswith(expected), text
        if n < 3:
            assert "It was made here on " in text
            assert f"in the style {harness.catalog.get(STYLE).label}" in text


async def test_redis_gone_mid_run_gets_a_try_again_answer_then_recovers(
    fake: FakeTelegram,
    settings_factory: Callable[..., Settings],
    redis_server_factory: Callable[[], Any],
    intake: SelfieIntake,
) -> None:
    """With Redis down, a command is answered "try again shortly" (not silence); once
    Redis is back the same bot process works again, without a restart."""
    server = redis_server_factory()
    settings = settings_factory(REDIS_URL=server.url, **telegram_env(fake))
    redis = aioredis.Redis.from_url(server.url)
    try:
        async with TelegramHarness(fake, settings, redis, intake=intake) as h:
            await h.start_bot()
            user = fake.user(1999)
            chat = fake.private_chat(user)
            server.kill()
            fake.send_text(chat, user, "/avatar")
            down = await fake.wait_for(
                "sendMessage", lambda c: c.chat_id == chat["id"] and "try again" in str(c.fields)
            )
            assert "trouble reaching my queue" in str(down[0].fields["text"])
            server.start()
            fake.send_text(chat, user, "/avatar")
            await fake.wait_for(
                "sendMessage", lambda c: c.chat_id == chat["id"] and "selfie" in str(c.fields)
            )
    finally:
        await redis.aclose()
    assert fake.violations == []


async def test_caption_shows_the_likeness_when_the_operator_turns_it_on(
    fake: FakeTelegram,
    settings_factory: Callable[..., Settings],
    redis_client: aioredis.Redis,
    intake: SelfieIntake,
    face_jpeg: bytes,
) -> None:
    settings = settings_factory(**telegram_env(fake), AVATARBOT_LIKENESS_IN_CAPTION="true")
    async with TelegramHarness(fake, settings, redis_client, intake=intake) as h:
        await h.start_bot()
        await h.start_worker()
        user = fake.user(1090)
        chat = fake.private_chat(user)
        await request_avatar(fake, user, chat, face_jpeg)
        result = (await fake.wait_for("sendPhoto", lambda c: c.chat_id == chat["id"]))[0]
        caption = str(result.fields.get("caption"))
        job_id = job_buttons(result)["more"].split(":")[2]
        stored = await h.queue.get_result(job_id)
        assert stored is not None
        [image] = stored.images
        assert image.likeness is not None
        assert caption.endswith(f"\n🔍 Likeness to your selfie: {image.likeness.percent}")
        assert image.likeness.same_person  # a pencil sketch still looks like the astronaut
    assert fake.violations == []
