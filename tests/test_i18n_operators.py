"""The operator's controls speak each reader's language: a refused user reads the gate's
line in theirs (chosen per request, not when the gate was imported), an admin reads the
replies to admin commands in theirs, counts in the language's plural forms, and the
command line stays English."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis

from bot import i18n, job_texts, operator_texts
from bot.admin_commands import AdminUsageError, plan
from bot.config import Settings
from bot.replies import Failure, Text
from bot.scopes import ScopeError, parse_user
from tests.chat_stack import ChatStack, chat_stack, owner

BOSS = owner("boss")
ALICE = owner("alice")


@pytest.fixture
async def stack(
    settings_factory: Callable[..., Settings], redis_client: aioredis.Redis
) -> AsyncIterator[ChatStack]:
    async with chat_stack(settings_factory(AVATARBOT_ADMINS="test:boss"), redis_client) as s:
        yield s


async def one_line(stack: ChatStack, who: str, app_language: str, message: str) -> str:
    """What the conversation answers `message` with, for a user whose app speaks
    `app_language` (as an adapter does it: the language first, then the event)."""
    sender = BOSS if who == "boss" else ALICE
    await stack.conversation.use_language(sender, app_language)
    [reply] = await stack.conversation.text(sender, message)
    assert isinstance(reply, Text | Failure)
    return reply.text


async def test_a_banned_user_is_refused_in_their_language(stack: ChatStack) -> None:
    await one_line(stack, "boss", "en", "/ban test:alice")
    refusals = {lang: await one_line(stack, "alice", lang, "/avatar") for lang in ("ru", "de")}
    with i18n.use("ru"):
        assert refusals["ru"] == operator_texts.denied()
    with i18n.use("de"):
        assert refusals["de"] == operator_texts.denied()
    with i18n.use("en"):
        assert len({*refusals.values(), operator_texts.denied()}) == 3  # three languages


async def test_admin_replies_in_the_admins_language_with_plural_forms(stack: ChatStack) -> None:
    russian = {
        n: await one_line(stack, "boss", "ru", f"/quota test:alice {n}") for n in (1, 3, 5, 21)
    }
    assert russian[1].endswith("1 аватар в день.")
    assert russian[3].endswith("3 аватара в день.")
    assert russian[5].endswith("5 аватаров в день.")
    assert russian[21].endswith("21 аватар в день.")
    arabic = await one_line(stack, "boss", "ar", "/quota test:alice 2")
    assert "صورتين رمزيتين" in arabic  # the dual: no number needed
    stats = await one_line(stack, "boss", "de", "/stats")
    assert stats.startswith("Warteschlange: 0 wartend, 0 in Arbeit, 0 Worker aktiv.")
    assert "Heute (UTC): 0 Avatare, 0 Fehlschläge." in stats
    usage = await one_line(stack, "boss", "es", "/ban")
    assert usage == "Uso: /ban PLATFORM:USER_ID"  # the grammar itself stays as typed


def test_errors_choose_their_words_when_told() -> None:
    with pytest.raises(ScopeError) as bad_user:
        parse_user("alice")
    with pytest.raises(AdminUsageError) as bad_words:
        plan("ban", [], lead="avatarbot admin ")
    assert bad_user.value.user_message.startswith("'alice' is not a user")  # English: the CLI
    with i18n.use("pt_BR"):
        assert bad_user.value.user_message.startswith("'alice' não é um usuário")
        assert bad_words.value.user_message == "Uso: avatarbot admin ban PLATFORM:USER_ID"


def test_numbers_are_written_as_the_language_writes_them() -> None:
    with i18n.use("en"):
        assert (operator_texts.seconds(12.34), job_texts.percent(0.72)) == ("12.3 s", "72%")
    with i18n.use("de"):
        assert (operator_texts.seconds(12.34), job_texts.percent(0.72)) == ("12,3 s", "72 %")
    with i18n.use("ar"):
        assert job_texts.percent(0.72) == "72٪"
