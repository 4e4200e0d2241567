"""Choosing the language: what platforms say, each user's /language choice (in Redis,
gone with /forgetme), and a job's language kept with the job, so whatever is said about
it later (its queue message, its outcome, after a restart too) is said in it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot import i18n, job_texts, texts
from bot.config import Settings
from bot.i18n import LanguagePreferences
from bot.jobs import Job, JobRequest, Owner, Route
from bot.queue import Delivery, DeliveryPump, DeliveryQueue
from bot.replies import Action, Avatar, Queued, Reply, StylePicker, Text
from bot.styles import StyleCatalog, StyleCatalogError
from tests.chat_stack import ChatStack, chat_stack, owner

ALICE = owner("alice")


@pytest.fixture
async def stack(settings: Settings, redis_client: aioredis.Redis) -> AsyncIterator[ChatStack]:
    async with chat_stack(settings, redis_client) as s:
        yield s


# --------------------------------------------------------------------------- negotiation


@pytest.mark.parametrize(
    ("tag", "locale"),
    [
        ("es", "es"),
        ("es-419", "es"),  # Latin American Spanish -> Spanish
        ("es-ES", "es"),
        ("pt-br", "pt_BR"),  # Telegram's spelling
        ("pt-BR", "pt_BR"),  # Discord's
        ("pt_BR", "pt_BR"),
        ("pt", "pt_BR"),  # the language alone: its one regional catalog
        ("pt-PT", "pt_BR"),  # another region of the same language
        ("de-AT", "de"),
        ("ru", "ru"),
        ("id", "id"),
        ("ar-EG", "ar"),
        ("en-US", "en"),
        ("en-GB", "en"),
        ("zh-CN", None),  # no catalog: the caller speaks English
        ("fr", None),
        ("", None),
        (None, None),
        ("x", None),
        ("pt-br-x-" + "a" * 100, None),
        ("'; DROP TABLE", None),
    ],
)
def test_negotiate(tag: str | None, locale: str | None) -> None:
    assert i18n.negotiate(tag) == locale


@pytest.mark.parametrize(
    ("header", "locale"),
    [
        ("ar", "ar"),
        ("ar,en;q=0.8", "ar"),
        ("fr-FR,fr;q=0.9,de;q=0.8,en;q=0.5", "de"),  # the best one we speak
        ("en-US,en;q=0.9,es;q=0.8", "en"),
        ("es;q=0.2,ru;q=0.9", "ru"),  # by q, not by order
        ("es;q=0,de", "de"),  # q=0: "not this one"
        ("pt-BR,pt;q=0.9", "pt_BR"),
        ("es;q=abc,de", "de"),  # a malformed entry is skipped
        ("*", None),
        ("", None),
        (None, None),
    ],
)
def test_accept_language(header: str | None, locale: str | None) -> None:
    assert i18n.from_accept_language(header) == locale


def test_tags_for_html_and_telegram() -> None:
    assert i18n.bcp47("pt_BR") == "pt-BR"
    assert i18n.language_code("pt_BR") == "pt"
    assert i18n.language_code("ar") == "ar"


async def test_the_language_of_the_moment_stays_with_its_task() -> None:
    """Two events handled at once each keep their own language."""

    async def event(locale: str) -> str:
        i18n.activate(locale)
        await asyncio.sleep(0.01)  # the other event runs meanwhile
        return texts.button_cancel()

    spanish, german = await asyncio.gather(
        asyncio.create_task(event("es")), asyncio.create_task(event("de"))
    )
    assert (spanish, german) == ("✖ Cancelar", "✖ Abbrechen")
    assert i18n.current_locale() == i18n.SOURCE_LOCALE  # the caller's is untouched
    with i18n.use("ru"):
        assert texts.button_cancel() == "✖ Отменить"
    assert texts.button_cancel() == "✖ Cancel"


def test_plural_forms_follow_each_language() -> None:
    with i18n.use("ru"):
        said = [texts.forgot_everything(n, True) for n in (1, 2, 5, 21, 22, 25)]
    assert [s.rsplit("общения. ", 1)[1] for s in said] == [
        "Ещё я отменил 1 ожидающую задачу.",
        "Ещё я отменил 2 ожидающие задачи.",
        "Ещё я отменил 5 ожидающих задач.",
        "Ещё я отменил 21 ожидающую задачу.",
        "Ещё я отменил 22 ожидающие задачи.",
        "Ещё я отменил 25 ожидающих задач.",
    ]
    with i18n.use("ar"):
        minutes = [job_texts.queued("S", 1, n * 60) for n in (1, 2, 3, 11)]
        hundred = texts.forgot_everything(100, True)
    assert "خلال دقيقة واحدة" in minutes[0]
    assert "خلال دقيقتين" in minutes[1]
    assert "خلال 3 دقائق" in minutes[2]
    assert "خلال 11 دقيقة" in minutes[3]
    assert hundred.endswith("وألغيت أيضًا 100 طلب كانت في الانتظار.")


def test_errors_are_told_in_the_language_of_the_moment() -> None:
    from bot.queue import QuotaExceededError  # noqa: PLC0415
    from bot.selfie import FileTooLarge, NotAnImage  # noqa: PLC0415

    error = QuotaExceededError(5, 7200)
    pdf = NotAnImage("a PDF document")
    big = FileTooLarge(30 << 20, 20 << 20)
    assert error.user_message.startswith("You've made 5 avatars today")
    with i18n.use("de"):
        assert error.user_message == (
            "Du hast heute schon 5 Avatare erstellt, das Tageslimit. "
            "Versuch es in etwa 2 Stunden noch einmal."
        )
        assert pdf.user_message.startswith("Das ist anscheinend ein PDF-Dokument, kein Foto.")
        assert "20 MB" in big.user_message
    with i18n.use("es"):
        assert pdf.user_message.startswith("Eso parece un documento PDF, no una foto.")


# --------------------------------------------------------------------------- jobs


def test_a_job_keeps_its_locale_and_old_records_still_read() -> None:
    request = JobRequest(owner=ALICE, route=Route(bot="b"), style_id="sketch", locale="pt_BR")
    job = Job.from_request(request)
    fields = job.to_fields()
    assert fields["locale"] == "pt_BR"
    assert Job.from_fields(fields).locale == "pt_BR"
    older = {k: v for k, v in fields.items() if k != "locale"}  # before languages existed
    assert Job.from_fields(older).locale == ""
    english = Job.from_request(JobRequest(owner=ALICE, route=Route(bot="b"), style_id="oil"))
    assert "locale" not in english.to_fields()


# --------------------------------------------------------------------------- preferences


async def test_preferences_live_in_redis_with_a_lifetime(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    prefs = LanguagePreferences(redis_client, key_prefix, ttl_s=100)
    assert await prefs.get(ALICE) is None
    await prefs.set(ALICE, "ru")
    assert await prefs.get(ALICE) == "ru"
    assert 0 < await redis_client.ttl(prefs.key(ALICE)) <= 100
    assert await prefs.get(Owner("other", ALICE.user_id, "x")) is None  # per platform
    assert await prefs.clear(ALICE)
    assert await prefs.get(ALICE) is None
    assert not await prefs.clear(ALICE)


async def test_the_users_choice_beats_their_apps_language(stack: ChatStack) -> None:
    conv = stack.conversation
    assert await conv.use_language(ALICE, "es-ES") == "es"
    assert await conv.use_language(ALICE, "zh-CN") == "en"  # no catalog: English
    await conv.languages.set(ALICE, "de")
    assert await conv.use_language(ALICE, "es-ES") == "de"
    assert i18n.app_locale() == "es"
    await conv.languages.set(ALICE, "tlh")  # a language this deployment no longer has
    assert await conv.use_language(ALICE, "es-ES") == "es"


# --------------------------------------------------------------------------- /language


async def test_language_command_lists_every_language_by_its_own_name(stack: ChatStack) -> None:
    conv = stack.conversation
    await conv.use_language(ALICE, "ru")
    [picker] = await conv.text(ALICE, "/language")
    assert isinstance(picker, Text)
    assert picker.text == "🌐 На каком языке мне говорить? Сейчас: Русский."
    labels = [b.label for b in picker.buttons]
    assert labels == [
        "English",
        "العربية",
        "Deutsch",
        "Español",
        "Bahasa Indonesia",
        "Português (Brasil)",
        "Русский",
        "🌐 Автоматически",
    ]
    assert {b.action for b in picker.buttons} == {Action.LANGUAGE}
    assert [b.arg for b in picker.buttons][-2:] == ["ru", "auto"]


async def test_choosing_a_language_answers_in_it_and_lasts(stack: ChatStack) -> None:
    conv = stack.conversation
    await conv.use_language(ALICE, "en-US")
    [picker] = await conv.text(ALICE, "/language")
    assert isinstance(picker, Text)
    german = next(b for b in picker.buttons if b.arg == "de")
    [done] = await conv.button(ALICE, german.data)
    assert done == Text("✅ Sprache: Deutsch. Sende /language, um sie zu ändern.")
    assert i18n.current_locale() == "de"  # the rest of this event too
    assert await conv.languages.get(ALICE) == "de"
    # The next event, from an app set to English, is in German.
    assert await conv.use_language(ALICE, "en-US") == "de"
    [ask] = await conv.text(ALICE, "/avatar")
    assert ask == Text(texts.ask_selfie())
    assert ask.text.startswith("📸 Schick mir ein Selfie")

    [done] = await conv.text(ALICE, "/language pt-BR")  # typed, with a tag
    assert done == Text("✅ Idioma: Português (Brasil). Envie /language para mudar.")
    [unknown] = await conv.text(ALICE, "/language klingon")
    assert isinstance(unknown, Text)
    assert unknown.text == "Ainda não falo esse idioma. Escolha um destes:"
    assert len(unknown.buttons) == len(i18n.catalogs().locales) + 1

    auto = next(b for b in picker.buttons if b.arg == "auto")
    [back] = await conv.button(ALICE, auto.data)
    assert back == Text("✅ I'll speak your app's language: English.")
    assert await conv.languages.get(ALICE) is None


async def test_forgetme_forgets_the_language_and_says_so_in_it(
    stack: ChatStack, face_jpeg: bytes
) -> None:
    conv = stack.conversation
    await conv.use_language(ALICE, None)
    await conv.text(ALICE, "/language id")
    await conv.use_language(ALICE, None)
    [receipt] = await conv.text(ALICE, "/forgetme")
    assert receipt == Text(
        "🗑 Beres. Swafotomu, hasilmu, dan riwayatmu denganku sudah kuhapus. "
        "(Aku memang tidak menyimpan swafotomu.)"
    )
    assert await conv.languages.get(ALICE) is None
    keys = [k async for k in stack.redis.scan_iter(match=f"{stack.settings.key_prefix}:lang:*")]
    assert keys == []
    assert await conv.use_language(ALICE, None) == "en"


# --------------------------------------------------------------------------- a job's language


async def test_a_jobs_messages_keep_the_language_it_was_asked_in(
    stack: ChatStack, face_jpeg: bytes
) -> None:
    """Asked in Spanish: the queue message and the outcome are Spanish, whoever renders
    them later, in whatever language that caller speaks (here English), and the user's
    later /language choice does not change them."""
    conv = stack.conversation
    await conv.use_language(ALICE, "es")
    await conv.avatar(ALICE)
    [picker] = await conv.selfie(ALICE, face_jpeg)
    assert isinstance(picker, StylePicker)
    assert picker.text == "¡Qué buena foto! Ahora elige un estilo (y cuántas variantes quieres)."
    sketch = next(o for o in picker.options if o.style_id == "sketch")
    assert (sketch.label, sketch.description) == (
        "✏️ Boceto a lápiz",
        "Grafito sobre papel, sombreado suave.",
    )
    [queued] = await conv.choose(ALICE, "sketch")
    assert isinstance(queued, Queued)
    assert queued.text.startswith("⏳ Tu avatar con estilo ✏️ Boceto a lápiz es el siguiente")
    job = await stack.queue.get_job(queued.job_id)
    assert job is not None
    assert job.locale == "es"

    await conv.text(ALICE, "/language de")  # changing one's mind later changes nothing here
    i18n.activate("en")  # the pump runs in no user's language
    receipt = await stack.queue.status(queued.job_id)
    assert receipt is not None
    assert conv.status_reply(receipt).text == queued.text

    stack.start_worker()
    got: list[Sequence[Reply]] = []
    words: list[str] = []

    async def deliver(delivery: Delivery, replies: Sequence[Reply]) -> None:
        got.append(replies)
        words.append(texts.finished_done())  # what an adapter adds, in the job's language

    pump = DeliveryPump(
        DeliveryQueue.sharing(stack.queue), conv, stack.settings.bot_name, "bot-i18n"
    )
    pump.register("test", deliver)
    for _ in range(300):
        if await pump.pump_once(block_ms=100):
            break
    [[avatar]] = got
    assert isinstance(avatar, Avatar)
    assert avatar.caption == (
        "✨ Aquí tienes tu avatar con estilo ✏️ Boceto a lápiz. Hecho por IA y etiquetado como tal."
    )
    assert [b.label for b in avatar.buttons] == [
        "🔁 Más como este",
        "🎨 Otro estilo",
        "📥 Archivo original",
        "🗑 Olvida mi selfie",
    ]
    assert words == ["✅ Hecho."]
    assert i18n.current_locale() == "en"


# --------------------------------------------------------------------------- styles


def test_operators_translate_their_styles_in_the_catalog(tmp_path: Path) -> None:
    recipe = '[style.cpu]\neffect = "cartoon"\n[style.diffusion]\nprompt = "neon portrait"\n'
    catalog = tmp_path / "styles.toml"
    catalog.write_text(
        '[[style]]\nid = "neon"\ntitle = "Neon"\nemoji = "💡"\n'
        'description = "Glowing lines on black."\n' + recipe
        + '[style.translations.es]\ntitle = "Neón"\ndescription = "Líneas luminosas."\n'
        + '[style.translations.pt-BR]\ntitle = "Neon brilhante"\n',
        "utf-8",
    )  # fmt: skip
    neon = StyleCatalog.load(catalog).get("neon")
    with i18n.use("es"):
        assert (neon.label, neon.blurb) == ("💡 Neón", "Líneas luminosas.")
    with i18n.use("pt_BR"):  # a tag spelled either way; no description: the English one
        assert (neon.label, neon.blurb) == ("💡 Neon brilhante", "Glowing lines on black.")
    with i18n.use("de"):  # no table: English
        assert (neon.label, neon.blurb) == ("💡 Neon", "Glowing lines on black.")
    assert {"neon", "neón", "neon brilhante", "💡 neón"} <= neon.names()

    for bad, problem in [
        ('[style.translations."not a tag!"]\ntitle = "x"\n', "not a language tag"),
        ('[style.translations.es]\ndescription = "sin título"\n', "needs a title"),
    ]:
        catalog.write_text('[[style]]\nid = "neon"\ntitle = "Neon"\n' + recipe + bad, "utf-8")
        with pytest.raises(StyleCatalogError, match=problem):
            StyleCatalog.load(catalog)


async def test_a_style_typed_in_the_users_language_is_picked(
    stack: ChatStack, face_jpeg: bytes
) -> None:
    conv = stack.conversation
    await conv.use_language(ALICE, "es")
    await conv.avatar(ALICE)
    await conv.selfie(ALICE, face_jpeg)
    [queued] = await conv.text(ALICE, "acuarela")
    assert isinstance(queued, Queued)
    assert "🖌️ Acuarela" in queued.text
