"""Operators in control, in the web chat: an admin (`web:<uid>` in AVATARBOT_ADMINS) and
everyone else, a ban mid-queue, the pause with jobs queued and restricted mode, through
its HTTP API as a browser uses it (cookies, same origin), served as a bot process serves
it, with the real queue, a real CPU worker when a test starts one, on a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from yarl import URL

from adapters.web.identity import COOKIE_NAME, Identities
from bot import operator_texts, texts
from bot.config import Settings
from bot.jobs import JobStatus
from tests.conftest import DATA
from tests.test_operators import ADMIN_LINES
from tests.web_chat_server import RunningWebChat, running_web_chat

SELFIE = (DATA / "astronaut.jpg").read_bytes()
Message = dict[str, Any]


@dataclass
class Browser:
    """One web chat user: a cookie jar and the chat API."""

    http: aiohttp.ClientSession
    url: str

    @property
    def uid(self) -> str:
        cookie = self.http.cookie_jar.filter_cookies(URL(self.url))[COOKIE_NAME]
        return cookie.value.split(".", 1)[0]

    async def post(self, path: str, **kwargs: Any) -> list[Message]:
        async with self.http.post(self.url + path, **kwargs) as response:
            assert response.status == 200, await response.text()
            return list((await response.json())["messages"])

    async def say(self, text: str) -> list[tuple[str, str]]:
        """The bot's answers to `text`: (kind, text) of each."""
        return shown(await self.post("/api/message", json={"text": text}))

    async def line(self, text: str) -> str:
        [(_kind, answer)] = await self.say(text)
        return answer

    async def selfie(self) -> list[tuple[str, str]]:
        headers = {"Content-Type": "image/jpeg"}
        return shown(await self.post("/api/selfie", data=SELFIE, headers=headers))

    async def choose(self, style_id: str = "sketch") -> list[Message]:
        sent = await self.post("/api/choose", json={"style_id": style_id})
        return [m for m in sent if m["from"] == "bot"]

    async def queue(self) -> Message:
        """/avatar, the selfie, a style: the queue message."""
        assert await self.line("/avatar") == texts.ask_selfie()
        assert [kind for kind, _ in await self.selfie()] == ["picker"]
        [queued] = await self.choose()
        assert queued["kind"] == "queued", queued
        return queued

    async def history(self) -> list[Message]:
        async with self.http.get(self.url + "/api/history") as response:
            return list((await response.json())["messages"])


@dataclass
class Site:
    chat: RunningWebChat
    admin: Browser
    stack: contextlib.AsyncExitStack

    async def visitor(self) -> Browser:
        """A new browser: its cookie (a new anonymous user) from the first page."""
        http = await self.stack.enter_async_context(
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        )
        async with http.get(self.chat.url + "/") as page:
            assert page.status == 200
        return Browser(http, self.chat.url)


@pytest.fixture
async def site(
    settings_factory: Callable[..., Settings], redis_client: aioredis.Redis, key_prefix: str
) -> AsyncIterator[Site]:
    """The web chat with one admin, known by the cookie its browser holds; no worker."""
    identities = await Identities.load(redis_client, key_prefix)  # the one the chat uses
    uid, cookie = identities.issue()
    settings = settings_factory(
        AVATARBOT_WEB_ENABLED="true",
        AVATARBOT_WEB_HOST="127.0.0.1",
        AVATARBOT_WEB_PORT="0",
        AVATARBOT_ADMINS=f"web:{uid}",
    )
    async with contextlib.AsyncExitStack() as stack:
        chat = await stack.enter_async_context(running_web_chat(settings, redis_client, workers=0))
        jar = aiohttp.CookieJar(unsafe=True)
        jar.update_cookies({COOKIE_NAME: cookie}, URL(chat.url))
        http = await stack.enter_async_context(aiohttp.ClientSession(cookie_jar=jar))
        admin = Browser(http, chat.url)
        assert admin.uid == uid
        yield Site(chat, admin, stack)


def shown(messages: list[Message]) -> list[tuple[str, str]]:
    """(kind, text) of the bot's messages (the user's own left out)."""
    return [(m["kind"], m["text"]) for m in messages if m["from"] == "bot"]


async def wait_status(browser: Browser, job_id: str, text: str) -> None:
    """Until the job's queue message in the browser's history reads `text`."""
    for _ in range(200):
        history = await browser.history()
        shown = [m["text"] for m in history if m["kind"] == "queued" and m["job_id"] == job_id]
        if shown == [text]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id}'s message never read {text!r}: {shown}")


# --------------------------------------------------------------------------- who is an admin


async def test_the_admin_runs_commands_everyone_else_gets_unknown_command(site: Site) -> None:
    visitor = await site.visitor()
    for line in ADMIN_LINES:
        unknown = [("text", texts.unknown_command())]
        assert await visitor.say(line.replace("test:", "web:")) == unknown, line
    policy = site.chat.stack.conversation.gate.policy
    assert (await policy.denied(), await policy.paused(), await policy.mode()) == ([], None, "open")

    assert (await site.admin.line("/stats")).startswith("Queue: 0 waiting, 0 running")
    banned = await site.admin.line(f"/ban web:{visitor.uid}")
    assert banned == operator_texts.banned(user=f"web:{visitor.uid}", jobs=0)
    assert await visitor.say("/help") == [("failure", operator_texts.denied())]
    # The admin's commands and their answers are in the admin's own chat only.
    said = [m["text"] for m in await site.admin.history() if m["from"] == "user"]
    assert said == ["/stats", f"/ban web:{visitor.uid}"]
    assert not [m for m in await visitor.history() if "Banned" in str(m["text"])]


async def test_a_ban_mid_queue_cancels_the_job_and_refuses_the_user(site: Site) -> None:
    alice, bob = await site.visitor(), await site.visitor()
    hers, his = await alice.queue(), await bob.queue()

    banned = await site.admin.line(f"/ban web:{alice.uid}")
    assert banned == operator_texts.banned(user=f"web:{alice.uid}", jobs=1)
    await wait_status(alice, hers["job_id"], texts.status_cancelled())  # her queue message
    assert await alice.say("/avatar") == [("failure", operator_texts.denied())]
    assert await alice.selfie() == [("failure", operator_texts.denied())]
    assert shown(await alice.choose()) == [("failure", operator_texts.denied())]

    site.chat.stack.start_worker()  # the queue goes on for everyone else
    queue = site.chat.stack.queue
    await wait_status(bob, his["job_id"], texts.finished_done())
    cancelled = await queue.get_job(hers["job_id"])
    assert cancelled is not None
    assert cancelled.status is JobStatus.CANCELLED
    assert not [m for m in await alice.history() if m["kind"] == "avatar"]


async def test_pause_with_jobs_queued_they_still_finish(site: Site) -> None:
    alice, bob, carol = await site.visitor(), await site.visitor(), await site.visitor()
    queued = [await alice.queue(), await bob.queue()]
    paused = await site.admin.line("/pause Back at six")
    assert paused == operator_texts.admin_paused(operator_texts.paused("Back at six"))

    back_soon = ("text", operator_texts.paused("Back at six"))
    assert await carol.say("/avatar") == [back_soon]
    assert await carol.selfie() == [back_soon]
    assert await carol.line("/help") != back_soon[1]  # only new avatars wait

    site.chat.stack.start_worker()
    for browser, message in zip((alice, bob), queued, strict=True):
        await wait_status(browser, message["job_id"], texts.finished_done())
        assert [m["kind"] for m in await browser.history()].count("avatar") == 1
    assert await site.admin.line("/resume") == operator_texts.admin_resumed()
    assert await carol.line("/avatar") == texts.ask_selfie()


async def test_restricted_mode_refuses_an_unlisted_user(site: Site) -> None:
    dave, erin = await site.visitor(), await site.visitor()
    assert await site.admin.line("/mode restricted") == operator_texts.access_mode(restricted=True)
    assert await dave.say("/start") == [("failure", operator_texts.not_allowed())]
    assert await dave.selfie() == [("failure", operator_texts.not_allowed())]
    prefix = site.chat.stack.settings.key_prefix
    keys = [k async for k in site.chat.stack.redis.scan_iter(match=f"{prefix}:*")]
    # Nothing of his but the chat he sees, and the upload rate counter every visitor has
    # (a minute's TTL: refused or not, nobody may flood the server with uploads).
    kept = [
        k
        for k in keys
        if dave.uid.encode() in k and b":web:history:" not in k and b":rate:" not in k
    ]
    assert kept == []
    assert await site.admin.line("/avatar") == texts.ask_selfie()  # admins need no list

    assert await site.admin.line(f"/allow web:{dave.uid}") == operator_texts.allow_added(
        scope=f"web:{dave.uid}"
    )
    await dave.queue()
    assert await erin.say("/avatar") == [("failure", operator_texts.not_allowed())]
