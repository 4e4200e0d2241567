"""Telegram in the user's language, end to end: real python-telegram-bot against the fake
Bot API (every request checked against the spec, the bot's profile methods against their
stated limits), the real conversation, queue and a CPU worker on a real Redis.

A user whose Telegram app speaks Spanish (`language_code=es`) goes through the whole flow
in Spanish; /language overrides the app and /forgetme forgets the choice; a job asked for
in Russian is delivered in Russian by a bot restarted in between; the command menu and
descriptions are set in every language."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot import i18n, platform_texts, texts
from bot.chat_commands import MENU
from bot.config import Settings
from bot.jobs import JobStatus
from bot.replies import Action
from bot.selfie import NoFaceFound, SelfieIntake
from tests import hostile
from tests.fake_telegram import Call, FakeTelegram
from tests.telegram_harness import TelegramHarness, eventually, telegram_env

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

STYLE = "sketch"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
async def harness(
    fake: FakeTelegram,
    settings_factory: Callable[..., Settings],
    redis_client: aioredis.Redis,
    intake: SelfieIntake,
) -> AsyncIterator[TelegramHarness]:
    settings = settings_factory(**telegram_env(fake))
    async with TelegramHarness(fake, settings, redis_client, intake=intake) as h:
        await h.start_bot()
        yield h
        assert h.bot is None or h.bot.errors == []
    assert fake.violations == []


def in_(locale: str, say: Callable[[], str]) -> str:
    with i18n.use(locale):
        return say()


def button(call: Call, action: Action, arg: str | None = None) -> tuple[str, str]:
    """(label, data) of the first button of `action` (and `arg`) on a sent message."""
    return next(
        (label, data)
        for label, data in FakeTelegram.buttons(call.result)
        if data.split(":")[1] == action.value and (arg is None or data.split(":")[2] == arg)
    )


async def sent_text(fake: FakeTelegram, chat: dict[str, Any], text: str) -> Call:
    found = await fake.wait_for(
        "sendMessage", lambda c: c.fields.get("text") == text, chat_id=chat["id"]
    )
    return found[0]


async def test_a_spanish_app_gets_the_whole_flow_in_spanish(
    harness: TelegramHarness, fake: FakeTelegram, face_jpeg: bytes
) -> None:
    await harness.start_worker()
    user = fake.user(7001, "Lucía", language_code="es")
    chat = fake.private_chat(user)

    fake.send_text(chat, user, "/avatar")
    await sent_text(fake, chat, in_("es", texts.ask_selfie))

    # Intake refusal.
    fake.send_photo(chat, user, hostile.no_face_gradient())
    refusal = in_("es", lambda: NoFaceFound().user_message)
    assert refusal.startswith("No he encontrado ninguna cara en esa foto.")
    await sent_text(fake, chat, refusal)

    # The picker: previews captioned, styles and variants in Spanish.
    fake.send_photo(chat, user, face_jpeg)
    picker = await sent_text(fake, chat, in_("es", texts.pick_style))
    album = fake.calls_to("sendMediaGroup", chat["id"])[0]
    captions = [item["caption"] for item in album.fields["media"]]
    assert captions[0] == "✏️ Boceto a lápiz — Grafito sobre papel, sombreado suave."
    labels = [label for label, _ in FakeTelegram.buttons(picker.result)]
    assert labels[:2] == ["✏️ Boceto a lápiz", "🖌️ Acuarela"]
    assert "✓ 1" in labels

    # The queue message (the picker edited into it), with its Cancel button.
    fake.press(user, picker.result, button(picker, Action.PICK, STYLE)[1])
    queued = (await fake.wait_for("editMessageText", chat_id=chat["id"]))[0]
    assert str(queued.fields["text"]).startswith(
        "⏳ Tu avatar con estilo ✏️ Boceto a lápiz es el siguiente: estará listo en "
    )
    assert button(queued, Action.CANCEL)[0] == "✖ Cancelar"

    # The avatar: caption and buttons.
    result = (await fake.wait_for("sendPhoto", chat_id=chat["id"]))[0]
    assert result.fields["caption"] == (
        "✨ Aquí tienes tu avatar con estilo ✏️ Boceto a lápiz. Hecho por IA y etiquetado como tal."
    )
    assert [label for label, _ in FakeTelegram.buttons(result.result)] == [
        "🔁 Más como este",
        "🎨 Otro estilo",
        "📥 Archivo original",
        "🗑 Olvida mi selfie",
    ]
    fake.press(user, result.result, button(result, Action.ORIGINAL)[1])
    original = (await fake.wait_for("sendDocument", chat_id=chat["id"]))[0]
    assert original.fields["caption"] == in_("es", texts.original_caption)

    # /forgetme: the receipt.
    fake.send_text(chat, user, "/forgetme")
    await sent_text(
        fake,
        chat,
        "🗑 Hecho. He borrado tu selfie, tus resultados y tu historial conmigo.",
    )


async def test_language_overrides_the_app_until_forgetme(
    harness: TelegramHarness, fake: FakeTelegram
) -> None:
    user = fake.user(7002, "Lucía", language_code="es")
    chat = fake.private_chat(user)
    fake.send_text(chat, user, "/language")
    picker = await sent_text(fake, chat, "🌐 ¿En qué idioma te hablo? Ahora: Español.")
    labels = [label for label, _ in FakeTelegram.buttons(picker.result)]
    assert labels == [
        in_(loc, lambda: i18n.language_name(i18n.current_locale()))
        for loc in i18n.catalogs().locales
    ] + ["🌐 Automático"]

    fake.press(user, picker.result, button(picker, Action.LANGUAGE, "de")[1])
    await sent_text(fake, chat, "✅ Sprache: Deutsch. Sende /language, um sie zu ändern.")
    fake.send_text(chat, user, "/help")  # the app still says Spanish
    help_text = await fake.wait_for(
        "sendMessage",
        lambda c: str(c.fields["text"]).startswith("Das kann ich:"),
        chat_id=chat["id"],
    )
    assert "/language — Die Sprache wählen, in der ich mit dir spreche" in str(
        help_text[0].fields["text"]
    )

    fake.send_text(chat, user, "/forgetme")  # the receipt still in German, then it is gone
    await sent_text(
        fake,
        chat,
        "🗑 Erledigt. Ich habe dein Selfie, deine Ergebnisse und deinen Verlauf "
        "mit mir gelöscht. (Ich hatte kein Selfie von dir.)",
    )
    fake.send_text(chat, user, "/help")
    await fake.wait_for(
        "sendMessage",
        lambda c: str(c.fields["text"]).startswith("Esto es lo que sé hacer:"),
        chat_id=chat["id"],
    )


async def test_a_result_delivered_after_a_restart_keeps_the_language_it_was_asked_in(
    harness: TelegramHarness, fake: FakeTelegram, face_jpeg: bytes
) -> None:
    user = fake.user(7003, "Аня", language_code="ru")
    chat = fake.private_chat(user)
    fake.send_photo(chat, user, face_jpeg, caption="/avatar")
    picker = await sent_text(fake, chat, in_("ru", texts.pick_style))
    fake.press(user, picker.result, button(picker, Action.PICK, STYLE)[1])
    queued = (await fake.wait_for("editMessageText", chat_id=chat["id"]))[0]
    assert str(queued.fields["text"]).startswith("⏳ Ваш аватар в стиле ✏️ Карандашный набросок")
    job_id = button(queued, Action.CANCEL)[1].split(":")[2]

    await harness.stop_bot()  # down while the job runs
    await harness.start_worker()

    async def done() -> bool:
        job = await harness.queue.get_job(job_id)
        return job is not None and job.status is JobStatus.DONE

    await eventually(done)
    await harness.start_bot()  # a fresh process: nothing of the user's language in memory
    result = (await fake.wait_for("sendPhoto", chat_id=chat["id"]))[0]
    assert result.fields["caption"] == (
        "✨ Готово: 1 аватар в стиле ✏️ Карандашный набросок. Создан ИИ и помечен соответственно."
    )
    assert button(result, Action.MORE)[0] == "🔁 Ещё такой"


async def test_menu_and_descriptions_are_set_in_every_language(
    harness: TelegramHarness, fake: FakeTelegram
) -> None:
    codes = {i18n.language_code(loc) for loc in i18n.catalogs().locales if loc != "en"}
    assert codes == {"ar", "de", "es", "id", "pt", "ru"}
    assert set(fake.my_commands) == set(fake.my_descriptions) == {"", *codes}
    assert set(fake.my_short_descriptions) == {"", *codes}
    # The first call is the default (English) menu, for every language without its own.
    assert "language_code" not in fake.calls_to("setMyCommands")[0].fields
    for code in ("", *codes):
        locale = {"": "en", "pt": "pt_BR"}.get(code, code)
        with i18n.use(locale):
            assert fake.my_commands[code] == [(c.name, c.summary) for c in MENU]
            assert fake.my_descriptions[code] == platform_texts.bot_description()
            assert fake.my_short_descriptions[code] == platform_texts.bot_short_description()
    assert ("avatar", "Crie um avatar a partir de uma selfie") in fake.my_commands["pt"]
    assert fake.my_short_descriptions["ar"].startswith("يحوّل صورتك الذاتية")


def test_the_fake_refuses_a_profile_telegram_would_refuse() -> None:
    """The fake's check has teeth: a regional code, over-long descriptions and a command
    name with capitals are refused."""
    from tests.fake_telegram import _profile_problems  # noqa: PLC0415

    assert _profile_problems("setMyDescription", {"language_code": "pt-BR"}) != []
    assert _profile_problems("setMyDescription", {"description": "x" * 513}) != []
    assert _profile_problems("setMyShortDescription", {"short_description": "x" * 121}) != []
    bad_menu = {"commands": [{"command": "Avatar", "description": "x"}]}
    assert _profile_problems("setMyCommands", bad_menu) != []
    good = {"language_code": "pt", "commands": [{"command": "avatar", "description": "x"}]}
    assert _profile_problems("setMyCommands", good) == []
