"""Discord in the user's language, end to end: real discord.py against the fake Discord
(REST checked against Discord's OpenAPI, command localisations against Discord's rules),
the real conversation and queue on a real Redis, a CPU worker.

A user whose Discord client is set to Brazilian Portuguese (`locale=pt-BR`) goes through
the whole flow in Portuguese, and the slash commands carry descriptions, option names and
style choices for every Discord locale we have a catalog for."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot import i18n, platform_texts, texts
from bot.chat_commands import command
from bot.config import Settings
from bot.selfie import NoFaceFound, SelfieIntake
from tests import hostile
from tests.discord_harness import DiscordHarness
from tests.fake_discord import FakeDiscord, FakeInteraction, SentMessage, running_fake


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
    h = DiscordHarness(fake, settings, redis_client, intake=intake)
    await h.start_bot()
    try:
        yield h
    finally:
        await h.close()
    assert fake.violations == []


def pt(say: Callable[[], str]) -> str:
    with i18n.use("pt_BR"):
        return say()


async def answered(fake: FakeDiscord, inter: FakeInteraction) -> SentMessage:
    """The interaction's original response once it says something final."""
    interim = (pt(texts.checking_photo), pt(texts.on_it), "")

    def settled() -> SentMessage | None:
        resp = inter.response
        return None if resp is None or resp.loading or resp.content in interim else resp

    return await fake.wait_for(settled, what="the original response")


def labels(message: SentMessage) -> list[str]:
    return [str(b["label"]) for b in message.buttons()]


async def test_a_brazilian_client_gets_the_whole_flow_in_portuguese(
    harness: DiscordHarness, fake: FakeDiscord, face_jpeg: bytes
) -> None:
    await harness.start_worker()
    ana = fake.user("ana", locale="pt-BR")

    # /styles: the catalog's own translations.
    styles = await answered(fake, await fake.command("styles", user=ana))
    assert styles.content.startswith(pt(texts.styles_intro))
    assert "✏️ Esboço a lápis (`sketch`): Grafite no papel, sombreado suave." in styles.content

    # Intake refusal.
    no_face = fake.attachment(hostile.no_face_gradient(), "paisagem.jpg")
    refused = await fake.command("avatar", {"selfie": no_face, "style": "oil"}, user=ana)
    assert (await answered(fake, refused)).content == pt(lambda: NoFaceFound().user_message)

    # The queue message, then the result with its caption and buttons.
    selfie = fake.attachment(face_jpeg, "eu.jpg")
    inter = await fake.command("avatar", {"selfie": selfie, "style": "oil"}, user=ana)
    result = await fake.wait_for(
        lambda: next((m for m in inter.followups if m.files), None), what="the result"
    )
    edits = [str(e.get("content", "")) for e in inter.original_edits]
    assert edits[0] == "📥 Recebi! Verificando sua foto…"
    assert any(e.startswith("⏳ Seu avatar no estilo 🖼️ Pintura a óleo é o próximo") for e in edits)
    assert result.content == (
        "✨ Pronto: 1 avatar no estilo 🖼️ Pintura a óleo. Feito por IA e identificado como tal."
    )
    assert labels(result) == [
        "🔁 Mais como este",
        "🎨 Outro estilo",
        "📥 Arquivo original",
        "🗑 Esquecer minha selfie",
    ]
    await fake.wait_for(
        lambda: inter.response is not None and inter.response.content == pt(texts.result_ready),
        what="the queue message retired",
    )

    # The picker ("another style").
    another = next(c for c in result.custom_ids() if c.startswith("v1:style:"))
    picker = await answered(fake, await fake.press(result, another, user=ana))
    assert picker.content == "Escolha outro estilo para a mesma selfie."
    assert labels(picker)[:3] == ["✏️ Esboço a lápis", "🖌️ Aquarela", "🖼️ Pintura a óleo"]

    # /forgetme: the receipt.
    receipt = await answered(fake, await fake.command("forgetme", user=ana))
    assert (
        receipt.content == "🗑 Pronto. Apaguei sua selfie, seus resultados e seu histórico comigo."
    )


async def test_language_command_overrides_the_client(
    harness: DiscordHarness, fake: FakeDiscord
) -> None:
    ana = fake.user("ana", locale="pt-BR")
    picker = await answered(fake, await fake.command("language", user=ana))
    assert picker.content == "🌐 Em que idioma devo falar? Agora: Português (Brasil)."
    russian = next(c for c in picker.custom_ids() if c.startswith("v1:lang:ru"))
    done = await answered(fake, await fake.press(picker, russian, user=ana))
    assert done.content == "✅ Язык: Русский. Отправьте /language, чтобы его сменить."
    styles = await answered(fake, await fake.command("styles", user=ana))
    assert styles.content.startswith("Вот стили, которые я умею.")


def localized(entity: dict[str, Any], field: str) -> dict[str, str]:
    return dict(entity.get(field) or {})


def summary(name: str) -> str:
    """A slash command's description in the current language."""
    if name == "admin":  # the operators' command, not in the chat command table
        return platform_texts.admin_descriptions()["admin"]
    return command(name).summary


async def test_slash_commands_are_localised_for_discords_locales(
    harness: DiscordHarness, fake: FakeDiscord
) -> None:
    commands = fake.commands[None]
    assert "admin" in commands
    for name, synced in commands.items():
        descriptions = localized(synced, "description_localizations")
        with i18n.use("pt_BR"):
            assert descriptions["pt-BR"] == summary(name)
        with i18n.use("es"):
            spanish = summary(name)
        assert descriptions["es-ES"] == descriptions["es-419"] == spanish
        assert {"pt-BR", "es-ES", "es-419", "de", "ru", "id"} <= set(descriptions)
        assert not {"en-US", "en-GB", "fr", "ja"} & set(descriptions)  # no catalog: English
        # One name per command in every language: the messages name them ("send /avatar").
        assert not localized(synced, "name_localizations")

    options = {o["name"]: o for o in commands["avatar"]["options"]}
    assert localized(options["style"], "name_localizations")["pt-BR"] == "estilo"
    assert localized(options["variants"], "name_localizations")["de"] == "varianten"
    assert localized(options["selfie"], "description_localizations")["ru"] == "Фото вашего лица"
    sketch = next(c for c in options["style"]["choices"] if c["value"] == "sketch")
    assert sketch["name"] == "✏️ Pencil sketch"
    names = localized(sketch, "name_localizations")
    assert names["pt-BR"] == "✏️ Esboço a lápis"
    assert names["id"] == "✏️ Sketsa pensil"
    verify = {o["name"]: o for o in commands["verify"]["options"]}
    assert localized(verify["image"], "name_localizations")["es-ES"] == "imagen"


async def test_admin_subcommands_and_their_options_are_localised(
    harness: DiscordHarness, fake: FakeDiscord
) -> None:
    """/admin's subcommands and each of their options are described in every language
    we have a catalog for; the options keep their one name (admins type them)."""
    english = platform_texts.admin_options()
    option_key = {text: key for key, text in english.items()}
    subcommands = {o["name"]: o for o in fake.commands[None]["admin"]["options"]}
    assert set(subcommands) == set(platform_texts.admin_descriptions()) - {"admin"}
    described = 0
    for discord_locale, ours in [("pt-BR", "pt_BR"), ("es-ES", "es"), ("de", "de"),
                                 ("ru", "ru"), ("id", "id")]:  # fmt: skip
        with i18n.use(ours):
            said, options = platform_texts.admin_descriptions(), platform_texts.admin_options()
        for name, sub in subcommands.items():
            assert localized(sub, "description_localizations")[discord_locale] == said[name]
            for option in sub.get("options") or []:
                key = option_key[option["description"]]
                wanted = options[key]
                assert localized(option, "description_localizations")[discord_locale] == wanted
                assert wanted != english[key]
                assert not localized(option, "name_localizations")
                described += 1
    assert described == 5 * 11  # ban, unban, quota (2), pause, allow (2), deny (2), mode, log


async def test_the_fake_refuses_command_localisations_discord_would_refuse(
    fake: FakeDiscord,
) -> None:
    """The fake's check has teeth: a capitalised name, a locale Discord does not know and
    an over-long description are refused with Discord's 50035, and recorded."""
    bad = [
        {
            "name": "avatar",
            "description": "Make an avatar",
            "name_localizations": {"de": "Avatar"},
            "description_localizations": {"xx-YY": "nope", "fr": "x" * 101},
        }
    ]
    status, answer = fake._put_commands({"application_id": str(fake.app_id)}, bad, [])
    assert (status, answer["code"]) == (400, 50035)
    assert len(fake.violations) == 3
    fake.violations.clear()
