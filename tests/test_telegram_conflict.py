"""Two bot processes on one Telegram token: long polling allows one poller per token, and
Telegram ends the older getUpdates with 409 Conflict. The adapter says so in one line
(once, not per retry) with what to do; polling goes on, so the survivor takes over."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
import redis.asyncio as aioredis

from adapters.telegram.adapter import TelegramAdapter
from adapters.telegram.polling_conflict import OTHER_POLLER, WEBHOOK_SET
from bot.config import Settings
from bot.selfie import SelfieIntake
from tests.fake_telegram import FakeTelegram
from tests.telegram_harness import TelegramHarness, telegram_env

# PTB 22 itself warns (on every 429) that RetryAfter.retry_after becomes a timedelta in v23.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

TERMINATED = "Conflict: terminated by other getUpdates request"
WEBHOOK_URL = "https://bot.example.org/telegram/webhook"
WEBHOOK_SECRET = "s3cret-for-the-test"  # noqa: S105  # a test value


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


def conflicts(fake: FakeTelegram) -> list[str]:
    return [str(c.error) for c in fake.calls_to("getUpdates") if c.status == 409]


def lines(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == text]


async def test_the_fake_ends_the_older_of_two_long_polls_with_409(fake: FakeTelegram) -> None:
    """As the Bot API does: the newer getUpdates wins, the parked one gets Conflict."""
    url = f"{fake.base_url}{fake.token}/getUpdates"
    async with aiohttp.ClientSession() as http:
        older = asyncio.create_task(http.post(url, data={"timeout": "5"}))
        while fake._poll_generation == 0:  # noqa: ASYNC110  # until the fake holds the poll
            await asyncio.sleep(0.01)
        async with http.post(url, data={"timeout": "0"}) as newer:
            assert (await newer.json())["ok"] is True
        async with await older as answer:
            body = await answer.json()
    assert answer.status == 409
    assert body["ok"] is False
    assert body["error_code"] == 409
    assert body["description"].startswith(TERMINATED)


async def test_a_second_poller_is_told_once_that_only_one_can_poll(
    fake: FakeTelegram,
    settings_factory: Callable[..., Settings],
    redis_client: aioredis.Redis,
    intake: SelfieIntake,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    settings = settings_factory(**telegram_env(fake))
    async with TelegramHarness(fake, settings, redis_client, intake=intake) as h:
        first = (await h.start_bot()).adapter
        second = TelegramAdapter(settings, h.conversation, redis_client, poll_timeout_s=5)
        await second.start()
        try:
            # Each poll of one ends the other's: wait for a few rounds of it.
            await fake.wait_until(lambda: len(conflicts(fake)) >= 3, within=20)
        finally:
            await second.stop()
        assert all(c.startswith(TERMINATED) for c in conflicts(fake))
        assert first.poll_conflict.count >= 1
        assert second.poll_conflict.count >= 1
        # One line per process, however many conflicts; no per-retry "polling failed".
        assert len(lines(caplog, OTHER_POLLER)) == 2
        assert "TELEGRAM_BOT_TOKEN" in OTHER_POLLER
        assert "AVATARBOT_TELEGRAM_WEBHOOK_URL" in OTHER_POLLER
        assert not [r for r in caplog.records if "polling failed" in r.getMessage()]

        # The survivor keeps polling: a user is answered once the other process is gone.
        user = fake.user(4242)
        fake.send_text(fake.private_chat(user), user, "/help")
        await fake.wait_for("sendMessage", chat_id=4242, within=15)
    assert fake.violations == []


async def test_polling_while_a_webhook_is_set_says_to_use_webhook_mode(
    fake: FakeTelegram,
    settings_factory: Callable[..., Settings],
    redis_client: aioredis.Redis,
    intake: SelfieIntake,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    polling = settings_factory(**telegram_env(fake))
    webhook = settings_factory(
        **telegram_env(fake),
        AVATARBOT_TELEGRAM_WEBHOOK_URL=WEBHOOK_URL,
        AVATARBOT_TELEGRAM_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )
    async with TelegramHarness(fake, polling, redis_client, intake=intake) as h:
        poller = (await h.start_bot()).adapter
        hooked = TelegramAdapter(webhook, h.conversation, redis_client)
        await hooked.start()  # sets the webhook: from now on getUpdates is refused
        try:
            await fake.wait_until(lambda: len(conflicts(fake)) >= 2, within=20)
        finally:
            await hooked.stop()
    assert poller.poll_conflict.count >= 1
    assert all("webhook is active" in c for c in conflicts(fake))
    assert len(lines(caplog, WEBHOOK_SET)) == 1
    assert lines(caplog, OTHER_POLLER) == []
    assert fake.violations == []
