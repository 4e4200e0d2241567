"""A fake Telegram Bot API server (aiohttp, 127.0.0.1) that holds the bot to the spec.

Point python-telegram-bot at it with
`ApplicationBuilder().token(fake.token).base_url(fake.base_url).base_file_url(fake.base_file_url)`.

- Routes: `POST /bot{token}/{method}` (form or multipart) and `GET /file/bot{token}/{path}`.
- Every request is checked against tests/specs/telegram-bot-api.json (`telegram_spec.py`):
  an unknown method answers 404, a missing required field, a wrong type, an unknown field,
  an upload nobody refers to or a broken limit (text length, callback data 1-64 bytes,
  album 2-10 items, the bot's menu and descriptions per `language_code`: a two-letter
  code, descriptions of at most 512 / 120 characters, command names of a-z0-9_) answers
  400, and each is recorded in `violations`. The profile set is kept per language code
  (`my_commands`, `my_descriptions`, `my_short_descriptions`). Tests assert
  `fake.violations == []`. The fake's own answers are checked too.
- Every call is recorded (`calls`: method, decoded fields, uploaded bytes, result).
- Tests play the users: `private_chat`/`group_chat`, `send_text`, `send_photo` (several
  PhotoSizes, real downscaled JPEGs, the largest with a `file_size` that may be a lie),
  `send_document`, `press` (a callback query). Files live behind file ids
  (`add_file`); downloads are recorded in `downloads`.
- Group admins: `set_admins(chat, owner, *admins)` is what getChatAdministrators answers
  (a private chat has none: 400, as Telegram says); `change_admin(chat, user, admin=)`
  promotes or demotes and sends the `chat_member` update, which (as on Telegram) reaches
  the bot only if it named `chat_member` in its `allowed_updates` (else: `withheld`).
- Errors on demand: `fail_next(method, status=429, retry_after=1)` or 403; `block(chat_id)`
  makes every send to that chat answer "Forbidden: bot was blocked by the user".
- getUpdates long-polls: it answers at once when updates are pending or `timeout=0`,
  otherwise holds until an update arrives or its timeout; a newer poll ends an older one
  with 409 (as Telegram does); `close()` releases parked polls at once. With a webhook
  set (setWebhook), updates are POSTed to it with the secret token header instead,
  and getUpdates answers 409.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import itertools
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from PIL import Image

from tests.telegram_spec import InputFileRef, TelegramSpec, load_spec

DOWNLOAD_LIMIT = 20 * 1024 * 1024  # getFile refuses larger files
#: Update kinds a bot gets only when it names them in `allowed_updates`.
_NOT_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
PHOTO_UPLOAD_LIMIT = 10 * 1024 * 1024
DOCUMENT_UPLOAD_LIMIT = 50 * 1024 * 1024
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_SEND_METHODS = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendDocument",
        "sendMediaGroup",
        "sendChatAction",
        "editMessageText",
        "editMessageReplyMarkup",
        "editMessageCaption",
        "deleteMessage",
    }
)


@dataclass(frozen=True)
class Upload:
    part: str
    filename: str | None
    content_type: str
    data: bytes


@dataclass
class Call:
    """One request the bot made."""

    method: str
    fields: dict[str, Any]
    uploads: dict[str, Upload]
    status: int = 200
    result: Any = None
    error: str | None = None
    at: float = field(default_factory=time.monotonic)

    @property
    def chat_id(self) -> int | None:
        raw = self.fields.get("chat_id")
        try:
            return int(raw) if raw is not None else None
        except ValueError:
            return None

    @property
    def ok(self) -> bool:
        return self.status == 200

    def upload_for(self, media: str) -> Upload:
        """The uploaded part a field value (`attach://x`) or a field name refers to."""
        name = media.removeprefix("attach://")
        return self.uploads[name]


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    data: bytes
    reported_size: int
    file_path: str


@dataclass
class _Failure:
    method: str
    status: int
    description: str
    retry_after: int | None
    chat_id: int | None


class FakeTelegramError(Exception):
    """Internal: a Bot API error answer (`{"ok": false, ...}`)."""

    def __init__(self, status: int, description: str, *, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after


class FakeTelegram:
    """The fake Bot API. Use `async with FakeTelegram() as fake:` or start()/close()."""

    def __init__(
        self,
        token: str = "123456789:TEST-fake-token-for-avatarbot-tests",  # noqa: S107  # a test token
        *,
        spec: TelegramSpec | None = None,
        bot_username: str = "avatar_test_bot",
    ) -> None:
        self.token = token
        self.spec = spec or load_spec()
        self.bot_user = {
            "id": int(token.split(":", 1)[0]),
            "is_bot": True,
            "first_name": "Avatar Bot",
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.calls: list[Call] = []
        self._by_chat: dict[int, list[Call]] = {}
        self._chat_changed: dict[int, asyncio.Condition] = {}
        self.violations: list[str] = []
        self.downloads: list[str] = []
        self.webhook_posts: list[tuple[int, int]] = []  # (update_id, HTTP status)
        self.files: dict[str, StoredFile] = {}
        self._files_by_path: dict[str, StoredFile] = {}
        self.chats: dict[int, dict[str, Any]] = {}
        self.chat_admins: dict[int, dict[int, dict[str, Any]]] = {}  # chat -> user -> member
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self.blocked: set[int] = set()
        self.webhook: dict[str, Any] | None = None
        # The bot's profile by language code ("" = every language without its own).
        self.my_commands: dict[str, list[tuple[str, str]]] = {}
        self.my_descriptions: dict[str, str] = {}
        self.my_short_descriptions: dict[str, str] = {}
        self._failures: list[_Failure] = []
        self._updates: list[dict[str, Any]] = []
        self.allowed_updates: list[str] = []  # as the bot last set it ([]: the default)
        self.withheld: list[dict[str, Any]] = []  # updates of kinds the bot did not ask for
        self._update_ids = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._callback_ids = itertools.count(1)
        self._open_callbacks: set[str] = set()
        self._poll_generation = 0
        self._changed = asyncio.Condition()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._push_task: asyncio.Task[None] | None = None
        self._wake_push = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._thumb_cache: dict[
            bytes, tuple[tuple[int, int], list[tuple[bytes, tuple[int, int]]]]
        ] = {}
        self.port = 0

    # --- lifecycle -----------------------------------------------------------
    async def start(self) -> FakeTelegram:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/bot{token}/{method}", self._handle_method)
        app.router.add_get("/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)  # 0: any free port
        await site.start()
        server = site._server  # aiohttp exposes the bound port only here
        assert isinstance(server, asyncio.Server)
        self.port = int(server.sockets[0].getsockname()[1])
        self._push_task = asyncio.create_task(self._push_webhook_updates())
        return self

    async def close(self) -> None:
        self._closing = True
        await self._notify()
        if self._push_task is not None:
            self._push_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._push_task
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeTelegram:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    # --- users, chats and what they send --------------------------------------
    def user(self, user_id: int, first_name: str = "Ada", **extra: Any) -> dict[str, Any]:
        return {"id": user_id, "is_bot": False, "first_name": first_name, **extra}

    def private_chat(self, user: Mapping[str, Any]) -> dict[str, Any]:
        chat = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        self.chats[chat["id"]] = chat
        return chat

    def group_chat(self, chat_id: int, title: str = "Friends") -> dict[str, Any]:
        if chat_id >= 0:
            raise ValueError("group chat ids are negative")
        chat = {"id": chat_id, "type": "group", "title": title}
        self.chats[chat_id] = chat
        return chat

    def send_text(
        self,
        chat: Mapping[str, Any],
        user: Mapping[str, Any],
        text: str,
        *,
        reply_to: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The user sends a text message; a leading /command gets its entity."""
        message = self._user_message(chat, user, reply_to, text=text)
        entities = _command_entities(text)
        if entities:
            message["entities"] = entities
        self._push_update({"message": message})
        return message

    def send_photo(
        self,
        chat: Mapping[str, Any],
        user: Mapping[str, Any],
        jpeg: bytes,
        *,
        caption: str | None = None,
        reported_size: int | None = None,
        reply_to: Mapping[str, Any] | None = None,
        media_group_id: str | None = None,
    ) -> dict[str, Any]:
        """The user sends a photo: Telegram offers several sizes, the original last.
        `reply_to`: a message (e.g. one the bot sent) this one replies to;
        `media_group_id`: part of an album (each photo of an album is its own message)."""
        (width, height), thumbs = self._thumbnails(jpeg)
        sizes = []
        for data, (w, h) in thumbs:
            stored = self.add_file(data, ext="jpg", folder="photos")
            sizes.append(
                {
                    "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id,
                    "width": w,
                    "height": h,
                    "file_size": len(data),
                }
            )
        stored = self.add_file(jpeg, reported_size=reported_size, ext="jpg", folder="photos")
        sizes.append(
            {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "width": width,
                "height": height,
                "file_size": stored.reported_size,
            }
        )
        message = self._user_message(chat, user, reply_to, photo=sizes)
        if media_group_id is not None:
            message["media_group_id"] = media_group_id
        _add_caption(message, caption)
        self._push_update({"message": message})
        return message

    def send_document(
        self,
        chat: Mapping[str, Any],
        user: Mapping[str, Any],
        data: bytes,
        *,
        file_name: str = "selfie.jpg",
        mime_type: str = "image/jpeg",
        caption: str | None = None,
        reported_size: int | None = None,
        reply_to: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        stored = self.add_file(data, reported_size=reported_size, ext="bin", folder="documents")
        document = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_name": file_name,
            "mime_type": mime_type,
            "file_size": stored.reported_size,
        }
        message = self._user_message(chat, user, reply_to, document=document)
        _add_caption(message, caption)
        self._push_update({"message": message})
        return message

    def _thumbnails(
        self, jpeg: bytes
    ) -> tuple[tuple[int, int], list[tuple[bytes, tuple[int, int]]]]:
        """(size, [(thumbnail JPEG, size)...]) of a photo: the 90 and 320 px versions
        Telegram makes (cached: load tests send one photo many times)."""
        key = hashlib.blake2b(jpeg, digest_size=16).digest()
        cached = self._thumb_cache.get(key)
        if cached is not None:
            return cached
        thumbs = []
        with Image.open(io.BytesIO(jpeg)) as im:
            size = im.size
            for side in (90, 320):
                if max(size) > side:
                    thumb = im.convert("RGB")
                    thumb.thumbnail((side, side))
                    buf = io.BytesIO()
                    thumb.save(buf, "JPEG", quality=80)
                    thumbs.append((buf.getvalue(), thumb.size))
        self._thumb_cache[key] = (size, thumbs)
        return size, thumbs

    def press(self, user: Mapping[str, Any], message: Mapping[str, Any], data: str) -> str:
        """The user presses an inline button with this callback data; returns the query id."""
        query_id = f"cb{next(self._callback_ids)}"
        self._open_callbacks.add(query_id)
        self._push_update(
            {
                "callback_query": {
                    "id": query_id,
                    "from": dict(user),
                    "message": dict(message),
                    "chat_instance": str(message["chat"]["id"]),
                    "data": data,
                }
            }
        )
        return query_id

    def set_admins(
        self,
        chat: Mapping[str, Any],
        owner: Mapping[str, Any],
        *admins: Mapping[str, Any],
    ) -> None:
        """Who administers a group (getChatAdministrators): its owner and admins."""
        self.chat_admins[chat["id"]] = {
            int(owner["id"]): _chat_member(owner, "creator"),
            **{int(a["id"]): _chat_member(a, "administrator") for a in admins},
        }

    def change_admin(
        self, chat: Mapping[str, Any], user: Mapping[str, Any], *, admin: bool
    ) -> dict[str, Any]:
        """The owner promotes `user` (admin=True) or demotes them: getChatAdministrators
        answers accordingly, and a `chat_member` update tells the bot."""
        members = self.chat_admins.setdefault(chat["id"], {})
        old = members.get(int(user["id"])) or _chat_member(user, "member")
        new = _chat_member(user, "administrator" if admin else "member")
        if admin:
            members[int(user["id"])] = new
        else:
            members.pop(int(user["id"]), None)
        owner = next((m["user"] for m in members.values() if m["status"] == "creator"), user)
        change = {
            "chat": dict(chat),
            "from": dict(owner),
            "date": int(time.time()),
            "old_chat_member": old,
            "new_chat_member": new,
        }
        return self._push_update({"chat_member": change})

    def push_raw_update(self, update: Mapping[str, Any]) -> dict[str, Any]:
        """Queue an update (without update_id) as given; it is still checked by the spec."""
        return self._push_update(dict(update))

    def add_file(
        self,
        data: bytes,
        *,
        reported_size: int | None = None,
        ext: str = "jpg",
        folder: str = "photos",
    ) -> StoredFile:
        """Put bytes behind a new file id; `reported_size` is what Telegram will claim."""
        n = next(self._file_ids)
        stored = StoredFile(
            file_id=f"FILE{n:06d}-{'x' * 20}",
            file_unique_id=f"U{n:06d}",
            data=data,
            reported_size=len(data) if reported_size is None else reported_size,
            file_path=f"{folder}/file_{n}.{ext}",
        )
        self.files[stored.file_id] = stored
        self._files_by_path[stored.file_path] = stored
        return stored

    # --- failures on demand -----------------------------------------------------
    def fail_next(
        self,
        method: str,
        *,
        status: int,
        description: str | None = None,
        retry_after: int | None = None,
        chat_id: int | None = None,
    ) -> None:
        """Answer the next call of `method` (to `chat_id`, if given) with this error, once."""
        if description is None:
            description = {
                429: f"Too Many Requests: retry after {retry_after or 1}",
                403: "Forbidden: bot was blocked by the user",
                400: "Bad Request: file is too big",
            }.get(status, "Internal Server Error")
        if status == 429 and retry_after is None:
            retry_after = 1
        self._failures.append(_Failure(method, status, description, retry_after, chat_id))

    def block(self, chat_id: int) -> None:
        """The user blocked the bot: every send to this chat answers 403 from now on."""
        self.blocked.add(chat_id)

    # --- looking at what the bot did ------------------------------------------
    def calls_to(self, method: str, chat_id: int | None = None) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.method == method and (chat_id is None or c.chat_id == chat_id)
        ]

    def sent_to(self, chat_id: int) -> list[Call]:
        """Successful calls that put something in a chat (messages, edits, albums...)."""
        return [
            c for c in self.calls if c.ok and c.method in _SEND_METHODS and c.chat_id == chat_id
        ]

    async def wait_for(
        self,
        method: str,
        predicate: Callable[[Call], bool] | None = None,
        *,
        count: int = 1,
        within: float = 10.0,
        chat_id: int | None = None,
    ) -> list[Call]:
        """Wait until `count` successful calls of `method` matching `predicate` exist
        (only calls to `chat_id` when given: cheap with many chats waiting at once)."""

        def matching() -> list[Call]:
            pool = self.calls if chat_id is None else self._by_chat.get(chat_id, [])
            return [
                c
                for c in pool
                if c.method == method and c.ok and (predicate is None or predicate(c))
            ]

        condition = (
            self._changed
            if chat_id is None
            else self._chat_changed.setdefault(chat_id, asyncio.Condition())
        )
        try:
            async with asyncio.timeout(within):
                async with condition:
                    await condition.wait_for(lambda: len(matching()) >= count)
        except TimeoutError:
            recent = ", ".join(f"{c.method}:{c.status}" for c in self.calls[-15:])
            raise AssertionError(
                f"no {count} x {method} within {within}s; recent calls: {recent}; "
                f"violations: {self.violations}"
            ) from None
        return matching()

    async def wait_until(self, condition: Callable[[], bool], *, within: float = 10.0) -> None:
        """Wait until `condition()` holds; it is re-checked after every call."""
        try:
            async with asyncio.timeout(within):
                async with self._changed:
                    await self._changed.wait_for(condition)
        except TimeoutError:
            recent = ", ".join(f"{c.method}:{c.status}" for c in self.calls[-15:])
            raise AssertionError(f"condition not met in {within}s; recent: {recent}") from None

    @staticmethod
    def buttons(message: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(text, callback_data) of every inline button on a message the bot sent."""
        markup = message.get("reply_markup") or {}
        return [
            (b["text"], b.get("callback_data", ""))
            for row in markup.get("inline_keyboard", [])
            for b in row
        ]

    # --- the HTTP side ---------------------------------------------------------
    async def _handle_method(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        form, uploads = await _read_request(request)
        fields, problems = self.spec.check_request(method, form, frozenset(uploads))
        call = Call(method, fields, uploads)
        if method not in self.spec.methods:
            return await self._refuse(call, 404, "Not Found", problems)
        problems = problems or self._check_limits(method, fields)
        if problems:
            return await self._refuse(call, 400, "Bad Request: " + problems[0], problems)
        try:
            result = await self._dispatch(call)
        except FakeTelegramError as exc:
            call.status = exc.status
            call.error = exc.description
            await self._record(call)
            return _error(exc.status, exc.description, exc.retry_after)
        own = self.spec.check_result(method, result)
        if own:
            self.violations.extend(f"FAKE BUG: {p}" for p in own)
        call.result = result
        await self._record(call)
        return web.json_response({"ok": True, "result": result})

    async def _dispatch(self, call: Call) -> Any:
        self._maybe_fail(call)
        handler = getattr(self, f"_m_{call.method}", None)
        if handler is None:
            self.violations.append(f"the fake does not implement {call.method}")
            raise FakeTelegramError(501, "Not Implemented")
        return await handler(call)

    async def _refuse(
        self, call: Call, status: int, description: str, problems: list[str]
    ) -> web.Response:
        self.violations.extend(problems)
        call.status = status
        call.error = description
        await self._record(call)
        return _error(status, description)

    async def _record(self, call: Call) -> None:
        self.calls.append(call)
        chat_id = call.chat_id
        if chat_id is not None:
            self._by_chat.setdefault(chat_id, []).append(call)
            condition = self._chat_changed.get(chat_id)
            if condition is not None:
                async with condition:
                    condition.notify_all()
        await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _maybe_fail(self, call: Call) -> None:
        chat_id = call.chat_id
        if call.method in _SEND_METHODS and chat_id in self.blocked:
            raise FakeTelegramError(403, "Forbidden: bot was blocked by the user")
        for failure in self._failures:
            if failure.method == call.method and failure.chat_id in (None, chat_id):
                self._failures.remove(failure)
                raise FakeTelegramError(
                    failure.status, failure.description, retry_after=failure.retry_after
                )

    def _check_limits(self, method: str, f: Mapping[str, Any]) -> list[str]:
        problems: list[str] = []
        text = f.get("text")
        if (
            method in ("sendMessage", "editMessageText")
            and isinstance(text, str)
            and not 1 <= len(text.strip()) <= 4096
        ):
            problems.append(f"{method}: message text must be 1-4096 characters")
        caption = f.get("caption")
        if isinstance(caption, str) and len(caption) > 1024:
            problems.append(f"{method}: caption longer than 1024 characters")
        if method == "answerCallbackQuery" and len(str(f.get("text", ""))) > 200:
            problems.append("answerCallbackQuery: text longer than 200 characters")
        markup = f.get("reply_markup")
        if isinstance(markup, dict):
            for row in markup.get("inline_keyboard", []):
                for button in row:
                    data = button.get("callback_data")
                    if data is not None and not 1 <= len(data.encode()) <= 64:
                        problems.append(f"{method}: BUTTON_DATA_INVALID ({data!r})")
        if method == "sendMediaGroup" and not 2 <= len(f.get("media", [])) <= 10:
            problems.append("sendMediaGroup: an album holds 2-10 items")
        if method == "sendChatAction" and f.get("action") not in CHAT_ACTIONS:
            problems.append(f"sendChatAction: unknown action {f.get('action')!r}")
        if method == "editMessageText" and not (
            "inline_message_id" in f or ("chat_id" in f and "message_id" in f)
        ):
            problems.append("editMessageText: needs chat_id and message_id")
        return problems + _profile_problems(method, f)

    async def _handle_file(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        self.downloads.append(path)
        await self._notify()
        stored = self._files_by_path.get(path)
        if stored is not None:
            return web.Response(body=stored.data, content_type="application/octet-stream")
        self.violations.append(f"download of unknown file path {path!r}")
        return web.Response(status=404)

    # --- methods -----------------------------------------------------------------
    async def _m_getMe(self, call: Call) -> Any:
        return self.bot_user

    async def _m_setMyCommands(self, call: Call) -> Any:
        self.my_commands[call.fields.get("language_code") or ""] = [
            (c["command"], c["description"]) for c in call.fields["commands"]
        ]
        return True

    async def _m_setMyDescription(self, call: Call) -> Any:
        self.my_descriptions[call.fields.get("language_code") or ""] = str(
            call.fields.get("description", "")
        )
        return True

    async def _m_setMyShortDescription(self, call: Call) -> Any:
        self.my_short_descriptions[call.fields.get("language_code") or ""] = str(
            call.fields.get("short_description", "")
        )
        return True

    async def _m_deleteWebhook(self, call: Call) -> Any:
        self.webhook = None
        if call.fields.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _m_setWebhook(self, call: Call) -> Any:
        url = call.fields["url"]
        if not url.startswith(("http://", "https://")):
            raise FakeTelegramError(400, "Bad Request: bad webhook: invalid URL")
        secret = call.fields.get("secret_token")
        if secret is not None and not _valid_secret(secret):
            self.violations.append("setWebhook: secret_token must be 1-256 of A-Z a-z 0-9 _ -")
            raise FakeTelegramError(400, "Bad Request: secret token contains unallowed characters")
        self.webhook = {"url": url, "secret_token": secret}
        if "allowed_updates" in call.fields:
            self.allowed_updates = list(call.fields["allowed_updates"])
        if call.fields.get("drop_pending_updates"):
            self._updates.clear()
        self._wake_push.set()
        return True

    async def _m_getWebhookInfo(self, call: Call) -> Any:
        return {
            "url": self.webhook["url"] if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    async def _m_getUpdates(self, call: Call) -> Any:
        if self.webhook is not None:
            raise FakeTelegramError(
                409, "Conflict: can't use getUpdates method while webhook is active"
            )
        self._poll_generation += 1
        generation = self._poll_generation
        if "allowed_updates" in call.fields:
            self.allowed_updates = list(call.fields["allowed_updates"])
        offset = call.fields.get("offset")
        if isinstance(offset, int) and offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        limit = int(call.fields.get("limit", 100))
        timeout = float(call.fields.get("timeout", 0))
        await self._notify()  # a newer poll ends an older, parked one
        if not self._updates and timeout > 0 and not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout), self._changed:
                    await self._changed.wait_for(
                        lambda: (
                            bool(self._updates)
                            or self._closing
                            or self._poll_generation != generation
                            or self.webhook is not None
                        )
                    )
        if self._poll_generation != generation:
            raise FakeTelegramError(
                409,
                "Conflict: terminated by other getUpdates request; make sure that only "
                "one bot instance is running",
            )
        return self._updates[:limit]

    async def _m_sendMessage(self, call: Call) -> Any:
        f = call.fields
        content: dict[str, Any] = {"text": f["text"]}
        return self._bot_message(f["chat_id"], content, f.get("reply_markup"), f)

    async def _m_sendChatAction(self, call: Call) -> Any:
        self._chat(call.fields["chat_id"])
        return True

    async def _m_sendPhoto(self, call: Call) -> Any:
        f = call.fields
        data = self._media_bytes(call, f["photo"], PHOTO_UPLOAD_LIMIT)
        content: dict[str, Any] = {"photo": self._photo_sizes(data)}
        if "caption" in f:
            content["caption"] = f["caption"]
        return self._bot_message(f["chat_id"], content, f.get("reply_markup"), f)

    async def _m_sendDocument(self, call: Call) -> Any:
        f = call.fields
        doc = f["document"]
        if isinstance(doc, InputFileRef):
            upload = call.uploads[doc.part]
            if len(upload.data) > DOCUMENT_UPLOAD_LIMIT:
                raise FakeTelegramError(413, "Request Entity Too Large")
            stored = self.add_file(upload.data, ext="bin", folder="documents")
            file_name = upload.filename or "document"
            mime = upload.content_type
        else:
            stored = self._known_file(doc)
            file_name, mime = "document", "application/octet-stream"
        content: dict[str, Any] = {
            "document": {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_name": file_name,
                "mime_type": mime,
                "file_size": len(stored.data),
            }
        }
        if "caption" in f:
            content["caption"] = f["caption"]
        return self._bot_message(f["chat_id"], content, f.get("reply_markup"), f)

    async def _m_sendMediaGroup(self, call: Call) -> Any:
        f = call.fields
        group_id = f"album{next(self._file_ids)}"
        messages = []
        for item in f["media"]:
            if item.get("type") != "photo":
                raise FakeTelegramError(400, "Bad Request: only photo albums are faked")
            data = self._media_bytes(call, item["media"], PHOTO_UPLOAD_LIMIT)
            content: dict[str, Any] = {"photo": self._photo_sizes(data), "media_group_id": group_id}
            if "caption" in item:
                content["caption"] = item["caption"]
            messages.append(self._bot_message(f["chat_id"], content, None, f))
        return messages

    async def _m_editMessageText(self, call: Call) -> Any:
        f = call.fields
        message = self._stored_message(f["chat_id"], f["message_id"])
        if "text" not in message:
            raise FakeTelegramError(400, "Bad Request: there is no text in the message to edit")
        markup = f.get("reply_markup")
        if message["text"] == f.get("text") and message.get("reply_markup") == markup:
            raise FakeTelegramError(
                400,
                "Bad Request: message is not modified: specified new message content and "
                "reply markup are exactly the same as a content and reply markup of the "
                "current message",
            )
        message["text"] = f.get("text", message["text"])
        if markup is not None:
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        message["edit_date"] = int(time.time())
        return dict(message)

    async def _m_editMessageReplyMarkup(self, call: Call) -> Any:
        f = call.fields
        message = self._stored_message(f["chat_id"], f["message_id"])
        markup = f.get("reply_markup")
        if message.get("reply_markup") == markup:
            raise FakeTelegramError(400, "Bad Request: message is not modified")
        if markup is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = markup
        return dict(message)

    async def _m_deleteMessage(self, call: Call) -> Any:
        f = call.fields
        key = (int(f["chat_id"]), f["message_id"])
        if key not in self.messages:
            raise FakeTelegramError(400, "Bad Request: message to delete not found")
        del self.messages[key]
        return True

    async def _m_answerCallbackQuery(self, call: Call) -> Any:
        query_id = call.fields["callback_query_id"]
        if query_id not in self._open_callbacks:
            raise FakeTelegramError(
                400,
                "Bad Request: query is too old and response timeout expired or query ID is invalid",
            )
        self._open_callbacks.discard(query_id)
        return True

    async def _m_getFile(self, call: Call) -> Any:
        stored = self._known_file(call.fields["file_id"])
        if stored.reported_size > DOWNLOAD_LIMIT:
            raise FakeTelegramError(400, "Bad Request: file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.reported_size,
            "file_path": stored.file_path,
        }

    async def _m_getChatAdministrators(self, call: Call) -> Any:
        chat = self._chat(call.fields["chat_id"])
        if chat["type"] == "private":
            raise FakeTelegramError(
                400, "Bad Request: there are no administrators in the private chat"
            )
        members = self.chat_admins.get(chat["id"], {}).values()
        wanted = [m for m in members if call.fields.get("return_bots") or not m["user"]["is_bot"]]
        return [dict(m) for m in wanted]

    # --- helpers -----------------------------------------------------------------
    def _chat(self, chat_id: Any) -> dict[str, Any]:
        try:
            return self.chats[int(chat_id)]
        except (KeyError, ValueError):
            raise FakeTelegramError(400, "Bad Request: chat not found") from None

    def _next_message_id(self, chat_id: int) -> int:
        return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    def _user_message(
        self,
        chat: Mapping[str, Any],
        user: Mapping[str, Any],
        reply_to: Mapping[str, Any] | None = None,
        **content: Any,
    ) -> dict[str, Any]:
        self.chats.setdefault(chat["id"], dict(chat))
        message = {
            "message_id": self._next_message_id(chat["id"]),
            "date": int(time.time()),
            "chat": dict(chat),
            "from": dict(user),
            **content,
        }
        if reply_to is not None:
            replied = {k: v for k, v in reply_to.items() if k != "reply_to_message"}
            message["reply_to_message"] = replied
        self.messages[(chat["id"], message["message_id"])] = message
        return message

    def _bot_message(
        self,
        chat_id: Any,
        content: dict[str, Any],
        markup: Any = None,
        fields: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A message the bot sent. Only an inline keyboard stays on a message (a reply
        keyboard or ForceReply acts on the user's client and is not echoed back); a
        reply (`reply_parameters`) carries the message it replies to."""
        chat = self._chat(chat_id)
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            content = {**content, "reply_markup": markup}
        reply = (fields or {}).get("reply_parameters")
        if isinstance(reply, dict):
            replied = self.messages.get((chat["id"], reply["message_id"]))
            if replied is not None:
                inner = {k: v for k, v in replied.items() if k != "reply_to_message"}
                content = {**content, "reply_to_message": inner}
            elif not reply.get("allow_sending_without_reply"):
                raise FakeTelegramError(400, "Bad Request: message to be replied not found")
        message = {
            "message_id": self._next_message_id(chat["id"]),
            "date": int(time.time()),
            "chat": chat,
            "from": self.bot_user,
            **content,
        }
        self.messages[(chat["id"], message["message_id"])] = message
        return dict(message)

    def _stored_message(self, chat_id: Any, message_id: int) -> dict[str, Any]:
        chat = self._chat(chat_id)
        message = self.messages.get((chat["id"], message_id))
        if message is None:
            raise FakeTelegramError(400, "Bad Request: message to edit not found")
        return message

    def _known_file(self, file_id: str) -> StoredFile:
        stored = self.files.get(file_id)
        if stored is None:
            raise FakeTelegramError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        return stored

    def _media_bytes(self, call: Call, value: Any, limit: int) -> bytes:
        """Bytes of a photo given as an upload, an attach:// reference or a file id."""
        if isinstance(value, InputFileRef):
            data = call.uploads[value.part].data
        elif isinstance(value, str) and value.startswith("attach://"):
            data = call.upload_for(value).data
        elif isinstance(value, str) and value.startswith(("http://", "https://")):
            self.violations.append(f"{call.method}: the fake cannot fetch URLs ({value[:40]})")
            raise FakeTelegramError(400, "Bad Request: failed to get HTTP URL content")
        else:
            return self._known_file(str(value)).data
        if len(data) > limit:
            raise FakeTelegramError(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
        return data

    def _photo_sizes(self, data: bytes) -> list[dict[str, Any]]:
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.verify()
                width, height = im.size
        except Exception:  # any decoder failure is Telegram's IMAGE_PROCESS_FAILED
            raise FakeTelegramError(400, "Bad Request: IMAGE_PROCESS_FAILED") from None
        if width + height > 10000:
            raise FakeTelegramError(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
        stored = self.add_file(data, ext="jpg", folder="photos")
        return [
            {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "width": width,
                "height": height,
                "file_size": len(data),
            }
        ]

    def _push_update(self, body: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": next(self._update_ids), **body}
        problems = self.spec.check_value(update, "Update", "Update")
        if problems:
            self.violations.extend(f"FAKE BUG (injected update): {p}" for p in problems)
        if not self._wanted(update):  # Telegram keeps back what the bot did not ask for
            self.withheld.append(update)
            return update
        self._updates.append(update)
        self._wake_push.set()
        task = asyncio.get_running_loop().create_task(self._notify())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return update

    def _wanted(self, update: Mapping[str, Any]) -> bool:
        """Whether the bot's `allowed_updates` (its last getUpdates or setWebhook that
        named any) takes this kind of update; by default all but a few (Bot API)."""
        kind = next(k for k in update if k != "update_id")
        if not self.allowed_updates:
            return kind not in _NOT_BY_DEFAULT
        return kind in self.allowed_updates

    async def _push_webhook_updates(self) -> None:
        """Like Telegram with a webhook set: POST each update, retrying until answered 2xx."""
        async with aiohttp.ClientSession() as session:
            while True:
                await self._wake_push.wait()
                self._wake_push.clear()
                while self.webhook is not None and self._updates:
                    update = self._updates[0]
                    headers = {}
                    if self.webhook.get("secret_token"):
                        headers["X-Telegram-Bot-Api-Secret-Token"] = self.webhook["secret_token"]
                    try:
                        async with session.post(
                            self.webhook["url"], json=update, headers=headers
                        ) as resp:
                            status = resp.status
                    except aiohttp.ClientError:
                        status = 0
                    self.webhook_posts.append((update["update_id"], status))
                    await self._notify()
                    if 200 <= status < 300:
                        self._updates.pop(0)
                    else:
                        await asyncio.sleep(0.05)


def _error(status: int, description: str, retry_after: int | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return web.json_response(body, status=status)


async def _read_request(request: web.Request) -> tuple[dict[str, str], dict[str, Upload]]:
    """Form fields (strings) and uploaded parts of a Bot API request."""
    form: dict[str, str] = dict(request.query)
    uploads: dict[str, Upload] = {}
    if request.method != "POST" or not request.can_read_body:
        return form, uploads
    if request.content_type == "application/json":
        body = await request.json()
        form.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()})
        return form, uploads
    posted = await request.post()
    for name, value in posted.items():
        if isinstance(value, web.FileField):
            uploads[name] = Upload(name, value.filename, value.content_type, value.file.read())
        else:
            form[name] = str(value)
    return form, uploads


def _command_entities(text: str) -> list[dict[str, Any]]:
    if not text.startswith("/"):
        return []
    command = text.split(maxsplit=1)[0]
    return [{"type": "bot_command", "offset": 0, "length": len(command)}]


def _chat_member(user: Mapping[str, Any], status: str) -> dict[str, Any]:
    """A ChatMember of the kind `status` names, shaped as Telegram sends it."""
    member: dict[str, Any] = {"status": status, "user": dict(user)}
    if status == "creator":
        member["is_anonymous"] = False
    elif status == "administrator":
        rights = (
            "can_manage_chat", "can_delete_messages", "can_manage_video_chats",
            "can_restrict_members", "can_change_info", "can_invite_users",
            "can_post_stories", "can_edit_stories", "can_delete_stories",
        )  # fmt: skip
        member |= {"can_be_edited": False, "is_anonymous": False, "can_promote_members": False}
        member |= dict.fromkeys(rights, True)
    return member


def _valid_secret(secret: str) -> bool:
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
    return 1 <= len(secret) <= 256 and set(secret) <= allowed


def _add_caption(message: dict[str, Any], caption: str | None) -> None:
    """A caption as Telegram sends it: the text plus entities for any /command in it."""
    if caption is None:
        return
    message["caption"] = caption
    entities = _command_entities(caption)
    if entities:
        message["caption_entities"] = entities


_PROFILE_METHODS = frozenset({"setMyCommands", "setMyDescription", "setMyShortDescription"})
_LANGUAGE_CODE = re.compile(r"^[a-z]{2}$")
_BOT_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")


def _profile_problems(method: str, f: Mapping[str, Any]) -> list[str]:
    """The limits the spec states in words for the bot's menu and descriptions."""
    if method not in _PROFILE_METHODS:
        return []
    problems: list[str] = []
    code = f.get("language_code")
    if code not in (None, "") and not _LANGUAGE_CODE.match(str(code)):
        problems.append(
            f"{method}: language_code must be a two-letter ISO 639-1 code, not {code!r}"
        )
    if method == "setMyDescription" and len(str(f.get("description", ""))) > 512:
        problems.append("setMyDescription: description longer than 512 characters")
    if method == "setMyShortDescription" and len(str(f.get("short_description", ""))) > 120:
        problems.append("setMyShortDescription: short_description longer than 120 characters")
    if method == "setMyCommands":
        commands = f.get("commands") or []
        if len(commands) > 100:
            problems.append("setMyCommands: at most 100 commands")
        for c in commands:
            if not _BOT_COMMAND.match(str(c.get("command", ""))):
                problems.append(f"setMyCommands: bad command {c.get('command')!r}")
            if not 1 <= len(str(c.get("description", ""))) <= 256:
                problems.append(f"setMyCommands: description of /{c.get('command')} not 1-256")
    return problems
