"""The web chat speaks each browser's language.

A wrapper (inside the guard, which sets the user id) makes every page and API request
speak the user's language: their /language choice, else the browser's Accept-Language,
else English (`Conversation.use_language`). Each request runs in its own task, so the
language stays with it. The answer says which language it spoke (`Content-Language`);
the page reloads itself when that changes (after /language), to switch its own words
and its direction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from bot import i18n
from bot.conversation import Conversation
from bot.jobs import Owner

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Requests that say nothing in words: no language lookup for them.
_WORDLESS = ("/static/", "/previews/", "/media/", "/healthz", "/metrics")


def speaking(
    conversation: Conversation, platform: str, uid_key: web.RequestKey[str]
) -> Callable[[Handler], Handler]:
    """Wrap a handler so that it runs in its user's language."""

    def wrap(handler: Handler) -> Handler:
        async def speak_their_language(request: web.Request) -> web.StreamResponse:
            return await _in_language(conversation, platform, uid_key, request, handler)

        return speak_their_language

    return wrap


async def _in_language(
    conversation: Conversation,
    platform: str,
    uid_key: web.RequestKey[str],
    request: web.Request,
    handler: Handler,
) -> web.StreamResponse:
    if request.path.startswith(_WORDLESS) or uid_key not in request:
        return await handler(request)
    uid = request[uid_key]
    accepted = i18n.from_accept_language(request.headers.get("Accept-Language"))
    await conversation.use_language(Owner(platform, uid, uid), accepted)
    response = await handler(request)
    if not response.prepared:
        response.headers["Content-Language"] = i18n.bcp47(i18n.current_locale())
        response.headers.add("Vary", "Accept-Language")  # caches keep one per language
    return response
