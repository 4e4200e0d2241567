"""A local Discord for tests: gateway (websocket), REST API and CDN on 127.0.0.1.

Real discord.py 2.7 talks to it after `patched_discord(fake)` points `Route.BASE` and
`DiscordWebSocket.DEFAULT_GATEWAY` here (only inside a test fixture; restored after).

- Gateway: HELLO, heartbeat ACK, IDENTIFY -> READY (+ GUILD_CREATE per guild with the
  GUILDS intent), RESUME -> replay of missed events + RESUMED (or INVALID_SESSION when the
  session was forgotten).
- Shards, as Discord does them: `GET /gateway/bot` recommends `recommended_shards` and
  tells the session start limit; IDENTIFY's `shard: [id, count]` (none means [0, 1]) is
  checked (4010 invalid shard; 4011 sharding required when a shard would hold more than
  `max_guilds_per_shard` guilds); READY echoes `shard`; each event goes to the shard of
  its guild, `(guild_id >> 22) % count`, DMs to shard 0. `add_guild(shard=, of=)` makes a
  guild that lands on a given shard. With `enforce_identify_pacing`, an IDENTIFY sooner
  than 5 s after another in its bucket (`shard_id % max_concurrency`) is answered with
  INVALID_SESSION and counted in `identifies_too_fast`. Tests build and dispatch
  INTERACTION_CREATE events (slash commands with attachment options, button presses, in
  a guild channel or a DM) and can drop the websocket at any time; events dispatched
  while the bot is away are replayed when it resumes, as Discord does.
- Command permissions, as Discord applies them before a bot hears of anything
  (`tests.discord_permissions`): a command's `contexts`, its `default_member_permissions`
  against the member's permissions (`command(..., permissions=)`), and a server's
  override for one member (`permit_command`). A command the user could not run is never
  dispatched: `command()` raises CommandUnavailable. Subcommands: `command(subcommand=)`.
- Interaction responses behave as on Discord where it matters to a bot: a deferred
  response shows "thinking" until it is edited, and the first followup after a deferral
  *becomes* that message and keeps its ephemerality; a second callback is refused (40060).
- REST: every request is checked against Discord's OpenAPI description
  (tests/discord_spec.py); problems land in `violations`, which tests assert empty. The
  endpoints a bot needs are implemented with Discord's answers and error codes: login,
  application info, command sync (global and guild), interaction callbacks, editing the
  original response, followups (JSON or multipart; uploaded bytes are recorded), DMs and
  channel messages.
- Faults on demand: a 429 (with `Via` and `Retry-After`) for the next followup, a
  refusal of the n-th next request of an operation (`fail_once`), expired
  interaction tokens (401 / 50027 Invalid Webhook Token), users whose DMs are closed
  (403 / 50007), a dropped gateway.
- CDN: `GET /attachments/...` serves bytes the test registered (any size).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import discord
import yarl
from aiohttp import BodyPartReader, WSMsgType, web
from discord.gateway import DiscordWebSocket

from tests.discord_permissions import MEMBER_PERMISSIONS, CommandUnavailable, refusal
from tests.discord_spec import DiscordSpec, Operation

T = TypeVar("T")

API_PREFIX = "/api/v10"
EPHEMERAL = 1 << 6
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
HEARTBEAT_INTERVAL_MS = 41_250
GUILDS_INTENT = 1 << 0
IDENTIFY_WINDOW_S = 5.0
_POLL_S = 0.02

_shared_spec: DiscordSpec | None = None
#: The body of a 429 from Discord's edge (no `Via` header): not retried by discord.py.
_EDGE_BLOCK = {"message": "You are being blocked from accessing our API temporarily.", "code": 0}


def shared_spec() -> DiscordSpec:
    """The parsed OpenAPI description, loaded once per test session (it is 1 MB)."""
    global _shared_spec  # noqa: PLW0603  # a cache, not state
    if _shared_spec is None:
        _shared_spec = DiscordSpec()
    return _shared_spec


# --------------------------------------------------------------------------- records


@dataclass
class Upload:
    """One file the bot uploaded (multipart `files[n]`)."""

    index: int
    filename: str
    content_type: str
    data: bytes


@dataclass
class FakeAttachment:
    """A file a user attached to a command, served by the fake CDN."""

    id: int
    filename: str
    content_type: str | None
    data: bytes
    channel_id: int
    base_url: str
    declared_size: int | None = None

    @property
    def size(self) -> int:
        return self.declared_size if self.declared_size is not None else len(self.data)

    @property
    def url(self) -> str:
        return f"{self.base_url}/attachments/{self.channel_id}/{self.id}/{self.filename}"

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.url,
        }
        if self.content_type is not None:
            data["content_type"] = self.content_type
        return data


@dataclass
class SentMessage:
    """A message the bot created: an interaction response, a followup, a channel/DM post."""

    id: int
    channel_id: int
    guild_id: int | None
    kind: str  # "response" | "followup" | "channel"
    interaction: FakeInteraction | None
    payload: dict[str, Any]
    files: list[Upload]
    edits: int = 0
    loading: bool = False
    """A deferred response still showing "thinking" (no edit, no followup yet)."""

    @property
    def content(self) -> str:
        return str(self.payload.get("content") or "")

    @property
    def flags(self) -> int:
        return int(self.payload.get("flags") or 0)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def components(self) -> list[dict[str, Any]]:
        return list(self.payload.get("components") or [])

    def buttons(self) -> list[dict[str, Any]]:
        found = []
        for row in self.components:
            found += [c for c in row.get("components", []) if c.get("type") == 2]
        return found

    def custom_ids(self) -> list[str]:
        return [str(b["custom_id"]) for b in self.buttons() if b.get("custom_id")]


@dataclass
class FakeInteraction:
    id: int
    token: str
    type: int
    user: dict[str, Any]
    channel_id: int
    guild_id: int | None
    payload: dict[str, Any]
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    response: SentMessage | None = None
    original_edits: list[dict[str, Any]] = field(default_factory=list)
    followups: list[SentMessage] = field(default_factory=list)
    expired: bool = False

    @property
    def acknowledged(self) -> bool:
        return bool(self.callbacks)

    @property
    def callback_types(self) -> list[int]:
        return [int(c.get("type", 0)) for c in self.callbacks]


@dataclass
class RecordedRequest:
    method: str
    path: str
    operation: str
    query: dict[str, str]
    body: Any
    files: list[Upload]
    status: int = 0


@dataclass
class _Session:
    id: str
    seq: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    ws: web.WebSocketResponse | None = None
    shard: tuple[int, int] = (0, 1)


# --------------------------------------------------------------------------- the fake


class FakeDiscord:
    """Gateway + REST + CDN. Use `async with FakeDiscord() as fake:`."""

    def __init__(
        self,
        *,
        bot_token: str = "fake-bot-token",  # noqa: S107  # a test token, not a secret
        spec: DiscordSpec | None = None,
    ) -> None:
        self.spec = spec or shared_spec()
        self.bot_token = bot_token
        self._ids = itertools.count(1)
        self.app_id = self.snowflake()
        self.bot_user = self._user_payload(self.app_id, "avatarbot", bot=True)
        self.guild_id = self.snowflake()
        self.channel_id = self.snowflake()
        self.channels: dict[int, dict[str, Any]] = {self.channel_id: self._guild_channel()}
        self.dm_channels: dict[int, int] = {}  # user id -> DM channel id
        self.users: dict[int, dict[str, Any]] = {}
        self.user_locales: dict[int, str] = {}
        self.closed_dms: set[int] = set()
        self.upload_limit = DEFAULT_UPLOAD_LIMIT

        self.violations: list[str] = []
        self.requests: list[RecordedRequest] = []
        self.interactions: dict[int, FakeInteraction] = {}
        self._by_token: dict[str, FakeInteraction] = {}
        self.messages: list[SentMessage] = []
        self.commands: dict[int | None, dict[str, dict[str, Any]]] = {}
        # (guild id, command name) -> {user id: allowed}: the servers' command overrides
        self.command_overrides: dict[tuple[int, str], dict[int, bool]] = {}
        self.cdn: dict[str, FakeAttachment] = {}
        self.cdn_fetches: list[str] = []
        self.rate_limits: list[str] = []  # operation ids answered with a 429

        self.identifies = 0
        self.resumes = 0
        self.heartbeats = 0
        self._sessions: dict[str, _Session] = {}
        self.shards: dict[int, _Session] = {}  # shard id -> its current session
        self.guilds: dict[int, int] = {self.guild_id: self.channel_id}  # guild -> channel
        self.recommended_shards = 1
        self.max_guilds_per_shard = 2500
        self.max_concurrency = 1
        self.session_starts_left = 1000
        self.enforce_identify_pacing = False
        self.identifies_too_fast = 0
        self.shard_closes: list[tuple[int, int]] = []  # (close code, shard id) refused
        self._bucket_identified: dict[int, float] = {}
        self._pending_429: dict[str, list[float]] = {}
        self._pending_failures: dict[str, list[int]] = {}  # requests to let through first

        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/ws/", self._gateway)
        app.router.add_get("/attachments/{channel}/{id}/{filename}", self._cdn)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None)
        assert sockets
        self.port = int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/"

    # ------------------------------------------------------------------ helpers for tests

    def snowflake(self) -> int:
        """A fresh id carrying the current time (discord.py checks interaction expiry)."""
        base = discord.utils.time_snowflake(discord.utils.utcnow())
        return base + (next(self._ids) % (1 << 22))

    def user(
        self, name: str = "alice", user_id: int | None = None, *, locale: str = "en-US"
    ) -> dict[str, Any]:
        """A user whose Discord client speaks `locale` (sent as each interaction's locale)."""
        if locale not in discord_locales():
            raise ValueError(f"{locale!r} is not a Discord locale")
        uid = user_id or self.snowflake()
        payload = self._user_payload(uid, name)
        self.users[uid] = payload
        self.user_locales[uid] = locale
        return payload

    def attachment(
        self,
        data: bytes,
        filename: str = "selfie.jpg",
        content_type: str | None = "image/jpeg",
        *,
        declared_size: int | None = None,
    ) -> FakeAttachment:
        """Register a file on the CDN, ready to be passed as a command option value."""
        att = FakeAttachment(
            id=self.snowflake(),
            filename=filename,
            content_type=content_type,
            data=data,
            channel_id=self.channel_id,
            base_url=self.base_url,
            declared_size=declared_size,
        )
        self.cdn[f"/attachments/{att.channel_id}/{att.id}/{att.filename}"] = att
        return att

    def rate_limit_next(
        self, operation: str = "execute_webhook", retry_after: float = 0.05
    ) -> None:
        """Answer the next request to `operation` (an OpenAPI operationId) with a 429."""
        self._pending_429.setdefault(operation, []).append(retry_after)

    def fail_once(self, operation: str = "execute_webhook", *, after: int = 0) -> None:
        """Let `after` requests to `operation` through, then refuse the next one with the
        429 Discord's edge sends without a `Via` header (a temporary block), which
        discord.py raises at once instead of waiting: nothing of that request was sent."""
        self._pending_failures.setdefault(operation, []).append(after)

    def expire(self, interaction: FakeInteraction) -> None:
        """The 15 minutes are over: its token no longer works."""
        interaction.expired = True

    def close_dms(self, user: dict[str, Any]) -> None:
        self.closed_dms.add(int(user["id"]))

    async def command(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        user: dict[str, Any],
        dm: bool = False,
        guild: int | None = None,
        subcommand: str | None = None,
        permissions: int = MEMBER_PERMISSIONS,
    ) -> FakeInteraction:
        """Dispatch a slash command as `user`, in a guild's channel (the first guild's
        unless `guild` is given) or in their DM; `options` are the `subcommand`'s if one
        is named. In a guild the member has `permissions`. A command Discord would not
        let them run (`tests.discord_permissions`) raises CommandUnavailable instead."""
        guild_id = None if dm else (guild or self.guild_id)
        registered = self._registered_command(name, guild_id)
        override = self.command_overrides.get((guild_id or 0, name), {}).get(int(user["id"]))
        problem = refusal(registered, dm=dm, permissions=permissions, override=override)
        if problem is not None:
            raise CommandUnavailable(problem)
        data: dict[str, Any] = {
            "id": registered["id"],
            "name": name,
            "type": registered.get("type", 1),
        }
        if registered.get("guild_id"):
            data["guild_id"] = registered["guild_id"]
        built, attachments = self._options(name, registered, options, subcommand)
        if built:
            data["options"] = built
        if attachments:
            data["resolved"] = {"attachments": attachments}
        return await self._interaction(
            2, data, user=user, dm=dm, guild=guild_id, permissions=permissions
        )

    def permit_command(
        self, name: str, user: dict[str, Any], *, allowed: bool = True, guild: int | None = None
    ) -> None:
        """A server's command permission override for one member (Server Settings >
        Integrations): `allowed` lets them run `name` whatever their permissions."""
        key = (guild or self.guild_id, name)
        self.command_overrides.setdefault(key, {})[int(user["id"])] = allowed

    def _options(
        self,
        name: str,
        registered: dict[str, Any],
        options: dict[str, Any] | None,
        subcommand: str | None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The interaction's options (nested under the subcommand) and resolved files."""
        option_specs = {o["name"]: o for o in registered.get("options") or []}
        if subcommand is not None:
            sub = option_specs.get(subcommand)
            if sub is None or sub.get("type") != 1:
                raise AssertionError(f"/{name} has no subcommand {subcommand!r}")
            inner, attachments = self._options(f"{name} {subcommand}", sub, options, None)
            entry: dict[str, Any] = {"name": subcommand, "type": 1}
            if inner:
                entry["options"] = inner
            return [entry], attachments
        given = options or {}
        missing = [o["name"] for o in option_specs.values() if o.get("required")]
        missing = [n for n in missing if n not in given]
        if missing:  # the Discord client does not send a command without them
            raise AssertionError(f"/{name} needs its options {missing}")
        built = []
        attachments: dict[str, Any] = {}
        for opt_name, value in (options or {}).items():
            spec = option_specs.get(opt_name)
            if spec is None:
                raise AssertionError(f"/{name} has no option {opt_name!r}")
            if isinstance(value, FakeAttachment):
                attachments[str(value.id)] = value.payload()
                built.append({"name": opt_name, "type": spec["type"], "value": str(value.id)})
            else:
                built.append({"name": opt_name, "type": spec["type"], "value": value})
        return built, attachments

    async def press(
        self, message: SentMessage, custom_id: str, *, user: dict[str, Any]
    ) -> FakeInteraction:
        """Dispatch a button press on a message the bot sent."""
        if custom_id not in message.custom_ids():
            raise AssertionError(f"no button {custom_id!r} on message {message.id}")
        data = {"custom_id": custom_id, "component_type": 2}
        dm = message.guild_id is None
        return await self._interaction(
            3, data, user=user, dm=dm, message=message, guild=message.guild_id
        )

    async def drop_gateway(
        self, *, code: int = 4000, resumable: bool = True, shard: int = 0
    ) -> None:
        """Close the bot's websocket (of `shard`). With `resumable=False` the session is
        forgotten too, so the bot's RESUME is answered with INVALID_SESSION and it must
        IDENTIFY again."""
        session = self.shards.get(shard)
        if session is None or session.ws is None:
            raise AssertionError("no gateway connection to drop")
        ws, session.ws = session.ws, None
        if not resumable:
            self._sessions.pop(session.id, None)
            self.shards.pop(shard, None)
        await ws.close(code=code, message=b"dropped by the test")
        self._notify()

    @property
    def _session(self) -> _Session | None:
        """Shard 0's session (the only one of an unsharded bot; DMs go to it)."""
        return self.shards.get(0)

    @property
    def connected(self) -> bool:
        return self._session is not None and self._session.ws is not None

    @property
    def connected_shards(self) -> set[int]:
        return {shard for shard, s in self.shards.items() if s.ws is not None}

    async def wait_for(
        self, predicate: Callable[[], T | None], *, within: float = 10.0, what: str = ""
    ) -> T:
        """Wait until `predicate()` is truthy (checked after every change); return it."""
        try:
            async with asyncio.timeout(within):
                while True:
                    event = self._changed
                    result = predicate()
                    if result:
                        return result
                    # Woken by the fake's own changes; polled for the bot's side.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(event.wait(), _POLL_S)
        except TimeoutError:
            seen = "\n  ".join(f"{r.method} {r.path} -> {r.status}" for r in self.requests[-15:])
            raise AssertionError(
                f"timed out waiting for {what or predicate!r}; last requests:\n  {seen}\n"
                f"violations: {self.violations}"
            ) from None

    async def wait_connected(self, within: float = 10.0) -> None:
        await self.wait_for(lambda: self.connected, within=within, what="gateway connection")

    def messages_for(self, user: dict[str, Any]) -> list[SentMessage]:
        """Messages that reached the user: in their DM, or mentioning them in a channel."""
        uid = int(user["id"])
        dm = self.dm_channels.get(uid)
        found = []
        for m in self.messages:
            if m.kind != "channel":
                continue
            if m.channel_id == dm or f"<@{uid}>" in m.content:
                found.append(m)
        return found

    # ------------------------------------------------------------------ internals: building

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _violation(self, text: str) -> None:
        self.violations.append(text)

    @staticmethod
    def _user_payload(uid: int, name: str, *, bot: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(uid),
            "username": name,
            "discriminator": "0",
            "global_name": name.title(),
            "avatar": None,
            "public_flags": 0,
            "flags": 0,
        }
        if bot:
            data["bot"] = True
        return data

    def _guild_channel(self) -> dict[str, Any]:
        return {
            "id": str(self.channel_id),
            "type": 0,
            "guild_id": str(self.guild_id),
            "name": "general",
            "position": 0,
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
            "rate_limit_per_user": 0,
            "topic": None,
            "last_message_id": None,
            "flags": 0,
        }

    def _dm_channel(self, user: dict[str, Any]) -> dict[str, Any]:
        uid = int(user["id"])
        if uid not in self.dm_channels:
            cid = self.snowflake()
            self.dm_channels[uid] = cid
            self.channels[cid] = {
                "id": str(cid),
                "type": 1,
                "recipients": [user],
                "last_message_id": None,
                "flags": 0,
            }
        return self.channels[self.dm_channels[uid]]

    def _registered_command(self, name: str, guild_id: int | None) -> dict[str, Any]:
        if guild_id is not None and name in self.commands.get(guild_id, {}):
            return self.commands[guild_id][name]
        if name in self.commands.get(None, {}):
            return self.commands[None][name]
        raise AssertionError(f"/{name} was never registered (registered: {self.commands})")

    async def _interaction(
        self,
        kind: int,
        data: dict[str, Any],
        *,
        user: dict[str, Any],
        dm: bool,
        message: SentMessage | None = None,
        guild: int | None = None,
        permissions: int = MEMBER_PERMISSIONS,
    ) -> FakeInteraction:
        uid = int(user["id"])
        self.users.setdefault(uid, user)
        interaction_id = self.snowflake()
        token = "aW50ZXJhY3Rpb24" + secrets.token_urlsafe(48)
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.app_id),
            "type": kind,
            "data": data,
            "token": token,
            "version": 1,
            "locale": self.user_locales.get(uid, "en-US"),
            "app_permissions": "562949953421311",
            "entitlements": [],
            "attachment_size_limit": self.upload_limit,
        }
        if dm:
            channel = self._dm_channel(user)
            payload["channel"] = channel
            payload["channel_id"] = channel["id"]
            payload["user"] = user
            payload["context"] = 1
            payload["authorizing_integration_owners"] = {"0": str(uid)}
            guild_id = None
        else:
            guild_id = guild or self.guild_id
            channel = self.channels[self.guilds[guild_id]]
            payload["guild_id"] = str(guild_id)
            payload["guild_locale"] = "en-US"
            payload["channel"] = channel
            payload["channel_id"] = channel["id"]
            payload["member"] = {
                "user": user,
                "roles": [],
                "joined_at": "2024-01-01T00:00:00+00:00",
                "deaf": False,
                "mute": False,
                "flags": 0,
                "pending": False,
                "permissions": str(permissions),
            }
            payload["context"] = 0
            payload["authorizing_integration_owners"] = {"0": str(guild_id)}
        if message is not None:
            payload["message"] = self._message_payload(message)
        interaction = FakeInteraction(
            id=interaction_id,
            token=token,
            type=kind,
            user=user,
            channel_id=int(channel["id"]),
            guild_id=guild_id,
            payload=payload,
        )
        self.interactions[interaction_id] = interaction
        self._by_token[token] = interaction
        await self._dispatch("INTERACTION_CREATE", payload)
        return interaction

    def _message_payload(self, message: SentMessage) -> dict[str, Any]:
        body = message.payload
        attachments = []
        for up in message.files:
            att_id = self.snowflake()
            url = f"{self.base_url}/attachments/{message.channel_id}/{att_id}/{up.filename}"
            attachments.append(
                {
                    "id": str(att_id),
                    "filename": up.filename,
                    "size": len(up.data),
                    "url": url,
                    "proxy_url": url,
                    "content_type": up.content_type,
                }
            )
        data: dict[str, Any] = {
            "id": str(message.id),
            "channel_id": str(message.channel_id),
            "type": 0 if message.kind == "channel" else 20,
            "content": body.get("content") or "",
            "author": self.bot_user,
            "timestamp": dt.datetime.now(dt.UTC).isoformat(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": attachments,
            "embeds": body.get("embeds") or [],
            "pinned": False,
            "flags": message.flags,
            "components": message.components,
        }
        if message.interaction is not None:
            data["webhook_id"] = str(self.app_id)
            data["application_id"] = str(self.app_id)
        if message.guild_id is not None:
            data["guild_id"] = str(message.guild_id)
        return data

    # ------------------------------------------------------------------ gateway

    async def _dispatch(
        self, event: str, data: dict[str, Any], session: _Session | None = None
    ) -> None:
        """Send an event to `session`, or to the shard its guild lives on (DMs: shard 0)."""
        if session is None:
            session = self._shard_session(data.get("guild_id"))
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.events.append(frame)
        if session.ws is not None and not session.ws.closed:
            await session.ws.send_str(json.dumps(frame))

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        if request.query.get("v") != "10" or request.query.get("encoding") != "json":
            self._violation(f"gateway connected with query {dict(request.query)}")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.add(ws)
        await ws.send_str(
            json.dumps({"op": 10, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}})
        )
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                await self._gateway_frame(ws, frame)
        finally:
            self._sockets.discard(ws)
            for session in self._sessions.values():
                if session.ws is ws:
                    session.ws = None
            self._notify()
        return ws

    async def _gateway_frame(self, ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        op, data = frame.get("op"), frame.get("d")
        if op == 1:
            self.heartbeats += 1
            await ws.send_str(json.dumps({"op": 11}))
        elif op == 2:
            await self._identify(ws, data or {})
        elif op == 6:
            await self._resume(ws, data or {})
        elif op in (3, 4, 8):
            pass  # presence / voice state / member chunk requests: nothing to answer
        else:
            self._violation(f"unexpected gateway op {op}")

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        if data.get("token") != self.bot_token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        shard = await self._admit_shard(ws, data)
        if shard is None:
            return
        self.identifies += 1
        self.session_starts_left -= 1
        previous = self.shards.get(shard[0])
        if previous is not None and previous.ws is not None:
            old = previous.ws
            previous.ws = None
            await old.close(code=4009)
        session = _Session(id=secrets.token_hex(16), ws=ws, shard=shard)
        self._sessions[session.id] = session
        self.shards[shard[0]] = session
        guilds = self.guilds_on(*shard)
        ready = {
            "v": 10,
            "user": self.bot_user,
            "guilds": [{"id": str(g), "unavailable": True} for g in guilds],
            "session_id": session.id,
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.app_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
        }
        if "shard" in data:
            ready["shard"] = list(shard)
        await self._dispatch("READY", ready, session)
        if int(data.get("intents") or 0) & GUILDS_INTENT:
            for guild_id in guilds:
                await self._dispatch("GUILD_CREATE", self._guild_payload(guild_id), session)
        self._notify()

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        session = self._sessions.get(str(data.get("session_id")))
        if data.get("token") != self.bot_token or session is None:
            await ws.send_str(json.dumps({"op": 9, "d": False}))
            return
        self.resumes += 1
        session.ws = ws
        self.shards[session.shard[0]] = session
        last = int(data.get("seq") or 0)
        for frame in [f for f in session.events if f["s"] > last]:
            await ws.send_str(json.dumps(frame))
        await self._dispatch("RESUMED", {}, session)
        self._notify()

    # ------------------------------------------------------------------ CDN

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        att = self.cdn.get(request.path)
        self.cdn_fetches.append(request.path)
        self._notify()
        if att is None:
            return web.Response(status=404, text="Not Found")
        headers = {"Content-Type": att.content_type or "application/octet-stream"}
        return web.Response(body=att.data, headers=headers)

    # ------------------------------------------------------------------ REST

    async def _rest(self, request: web.Request) -> web.Response:
        path = request.path[len(API_PREFIX) :]
        op, problems = self.spec.operation(request.method, path)
        record = RecordedRequest(
            method=request.method,
            path=path,
            operation=op.operation_id if op else "?",
            query=dict(request.query),
            body=None,
            files=[],
        )
        self.requests.append(record)
        try:
            if op is None:
                self.violations += problems
                return self._reply(record, 404, {"message": "404: Not Found", "code": 0})
            status, answer = await self._answer(request, op, path, record, problems)
            if status == 429 and answer is not _EDGE_BLOCK:
                return self._rate_limited(record, op.operation_id, float(answer))
            return self._reply(record, status, answer)
        finally:
            self._notify()

    async def _answer(
        self,
        request: web.Request,
        op: Operation,
        path: str,
        record: RecordedRequest,
        problems: list[str],
    ) -> tuple[int, Any]:
        """Check the request against the spec, then let the endpoint's handler answer."""
        problems += self.spec.check_query(op, record.query)
        body, files, content_type, body_problems = await self._read_body(request)
        record.body, record.files = body, files
        problems += body_problems
        if content_type is not None:
            problems += _without_library_extras(
                op.operation_id, self.spec.check_body(op, content_type, body)
            )
        elif op.spec.get("requestBody", {}).get("required"):
            problems.append(f"{op.operation_id}: request body is required")
        self.violations += problems
        refusal = self._refusal(request, op, files, problems)
        if refusal is not None:
            return refusal
        handler = self._handlers()[op.template + " " + op.method]
        retry = self._pending_429.get(op.operation_id)
        if retry:
            return 429, retry.pop(0)
        if self._fails_now(op.operation_id):
            return 429, _EDGE_BLOCK
        names = _template_names(op.template)
        params = dict(zip(names, _path_values(op.template, path), strict=True))
        try:
            return handler(params, body, files)
        except Exception as exc:  # a bug in the fake or a malformed body: fail the test
            self._violation(f"{op.operation_id}: fake failed on this request: {exc!r}")
            return 400, {"message": "400: Bad Request", "code": 50035}

    def _refusal(
        self, request: web.Request, op: Operation, files: list[Upload], problems: list[str]
    ) -> tuple[int, Any] | None:
        if sum(len(f.data) for f in files) > self.upload_limit:
            return 413, {"message": "Request entity too large", "code": 40005}
        if problems:  # Discord refuses what its schema does not allow
            return 400, {"message": "Invalid Form Body", "code": 50035}
        if op.template + " " + op.method not in self._handlers():
            self._violation(f"{op.method} {op.template}: not implemented by the fake")
            return 404, {"message": "404: Not Found", "code": 0}
        if op.template not in _UNAUTHENTICATED and not self._authorized(request):
            return 401, {"message": "401: Unauthorized", "code": 0}
        return None

    def _fails_now(self, operation: str) -> bool:
        pending = self._pending_failures.get(operation)
        if not pending:
            return False
        if pending[0] > 0:
            pending[0] -= 1
            return False
        pending.pop(0)
        return True

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bot {self.bot_token}"

    def _reply(self, record: RecordedRequest, status: int, answer: Any) -> web.Response:
        record.status = status
        if status == 204:
            return web.Response(status=204)
        # Exactly `application/json`: discord.py compares the header verbatim.
        return web.Response(
            status=status,
            body=json.dumps(answer).encode(),
            headers={"Content-Type": "application/json"},
        )

    def _rate_limited(self, record: RecordedRequest, operation: str, retry: float) -> web.Response:
        record.status = 429
        self.rate_limits.append(operation)
        body = {"message": "You are being rate limited.", "retry_after": retry, "global": False}
        return web.Response(
            status=429,
            body=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                "Retry-After": str(max(1, round(retry))),
                "Via": "1.1 google",
                "X-RateLimit-Scope": "shared",
            },
        )

    async def _read_body(
        self, request: web.Request
    ) -> tuple[Any, list[Upload], str | None, list[str]]:
        if not request.body_exists:
            return None, [], None, []
        ctype = request.content_type
        if ctype == "application/json":
            raw = await request.read()
            try:
                return json.loads(raw), [], ctype, []
            except ValueError:
                return None, [], ctype, [f"{request.path}: body is not JSON"]
        if ctype == "multipart/form-data":
            return await self._read_multipart(request)
        return None, [], ctype, [f"{request.method} {request.path}: content type {ctype!r}"]

    async def _read_multipart(
        self, request: web.Request
    ) -> tuple[Any, list[Upload], str, list[str]]:
        problems: list[str] = []
        payload: Any = None
        files: list[Upload] = []
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                problems.append("nested multipart is not accepted")
                continue
            name = part.name or ""
            data = await part.read(decode=False)
            if name == "payload_json":
                payload = json.loads(data)
            elif name.startswith("files[") and name.endswith("]"):
                index = int(name[6:-1])
                ctype = part.headers.get("Content-Type", "application/octet-stream")
                files.append(Upload(index, part.filename or "", ctype, bytes(data)))
            else:
                problems.append(f"unexpected multipart field {name!r}")
        if payload is None:
            payload = {}
        declared = {int(a["id"]) for a in payload.get("attachments") or [] if "id" in a}
        sent = {f.index for f in files}
        if not sent <= declared:
            problems.append(f"files {sorted(sent)} not all declared in attachments {declared}")
        total = sum(len(f.data) for f in files)
        if total > self.upload_limit:
            problems.append(f"upload of {total} bytes exceeds the {self.upload_limit} limit")
        return payload, files, "multipart/form-data", problems

    # ------------------------------------------------------------------ REST handlers

    Handler = Callable[[dict[str, str], Any, list[Upload]], tuple[int, Any]]

    def _handlers(self) -> dict[str, FakeDiscord.Handler]:
        return {
            "/users/@me GET": self._get_me,
            "/oauth2/applications/@me GET": self._get_application,
            "/applications/{application_id}/commands PUT": self._put_commands,
            "/applications/{application_id}/guilds/{guild_id}/commands PUT": self._put_commands,
            "/interactions/{interaction_id}/{interaction_token}/callback POST": self._callback,
            "/webhooks/{webhook_id}/{webhook_token}/messages/@original PATCH": self._edit_original,
            "/webhooks/{webhook_id}/{webhook_token}/messages/@original GET": self._get_original,
            "/webhooks/{webhook_id}/{webhook_token} POST": self._followup,
            "/users/@me/channels POST": self._create_dm,
            "/channels/{channel_id}/messages POST": self._channel_message,
            "/users/{user_id} GET": self._get_user,
            "/gateway/bot GET": self._get_gateway_bot,
        }

    def _get_me(self, params: dict[str, str], body: Any, files: list[Upload]) -> tuple[int, Any]:
        return 200, self.bot_user

    def _get_user(self, params: dict[str, str], body: Any, files: list[Upload]) -> tuple[int, Any]:
        user = self.users.get(int(params["user_id"]))
        if user is None:
            return 404, {"message": "Unknown User", "code": 10013}
        return 200, user

    def _get_application(
        self, params: dict[str, str], body: Any, files: list[Upload]
    ) -> tuple[int, Any]:
        return 200, {
            "id": str(self.app_id),
            "name": "avatarbot",
            "icon": None,
            "description": "test application",
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": self._user_payload(self.snowflake(), "owner"),
            "verify_key": "0" * 64,
            "team": None,
            "flags": 0,
            "summary": "",
            "bot": self.bot_user,
        }

    def _put_commands(
        self, params: dict[str, str], body: Any, files: list[Upload]
    ) -> tuple[int, Any]:
        if params["application_id"] != str(self.app_id):
            return 403, {"message": "Missing Access", "code": 50001}
        guild = int(params["guild_id"]) if "guild_id" in params else None
        problems = [p for cmd in body or [] for p in _command_problems(cmd)]
        if problems:
            self.violations += problems
            return 400, {"message": "Invalid Form Body", "code": 50035}
        stored: dict[str, dict[str, Any]] = {}
        answer = []
        for cmd in body or []:
            full = {
                "id": str(self.snowflake()),
                "application_id": str(self.app_id),
                "version": str(self.snowflake()),
                "type": cmd.get("type", 1),
                "default_member_permissions": None,
                "nsfw": False,
                **cmd,
            }
            if guild is not None:
                full["guild_id"] = str(guild)
            if full["default_member_permissions"] is not None:  # sent as a number (the
                # spec checked it), answered as a string, as Discord does
                full["default_member_permissions"] = str(full["default_member_permissions"])
            full.setdefault("description", "")
            stored[cmd["name"]] = full
            answer.append(full)
        self.commands[guild] = stored
        return 200, answer

    def _interaction_for_token(
        self, params: dict[str, str]
    ) -> tuple[FakeInteraction | None, tuple[int, Any] | None]:
        if params.get("webhook_id") not in (None, str(self.app_id)):
            return None, (404, {"message": "Unknown Webhook", "code": 10015})
        interaction = self._by_token.get(params.get("webhook_token", ""))
        if interaction is None:
            return None, (404, {"message": "Unknown Webhook", "code": 10015})
        if interaction.expired:
            return None, (401, {"message": "Invalid Webhook Token", "code": 50027})
        return interaction, None

    def _callback(self, params: dict[str, str], body: Any, files: list[Upload]) -> tuple[int, Any]:
        interaction = self.interactions.get(int(params["interaction_id"]))
        if interaction is None or interaction.token != params["interaction_token"]:
            return 404, {"message": "Unknown interaction", "code": 10062}
        if interaction.expired:
            return 404, {"message": "Unknown interaction", "code": 10062}
        if interaction.acknowledged:
            return 400, {"message": "Interaction has already been acknowledged.", "code": 40060}
        body = body or {}
        interaction.callbacks.append(body)
        kind = int(body.get("type", 0))
        data = body.get("data") or {}
        answer: dict[str, Any] = {
            "interaction": {
                "id": str(interaction.id),
                "type": interaction.type,
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(int(data.get("flags") or 0) & EPHEMERAL),
            },
            "resource": {"type": kind},
        }
        if kind in (4, 5):
            message = SentMessage(
                id=self.snowflake(),
                channel_id=interaction.channel_id,
                guild_id=interaction.guild_id,
                kind="response",
                interaction=interaction,
                payload=dict(data),
                files=files,
                loading=kind == 5,
            )
            interaction.response = message
            self.messages.append(message)
            answer["interaction"]["response_message_id"] = str(message.id)
            answer["resource"]["message"] = self._message_payload(message)
        return 200, answer

    def _get_original(
        self, params: dict[str, str], body: Any, files: list[Upload]
    ) -> tuple[int, Any]:
        interaction, error = self._interaction_for_token(params)
        if error is not None or interaction is None:
            return error or (404, {})
        if interaction.response is None:
            return 404, {"message": "Unknown Message", "code": 10008}
        return 200, self._message_payload(interaction.response)

    def _edit_original(
        self, params: dict[str, str], body: Any, files: list[Upload]
    ) -> tuple[int, Any]:
        interaction, error = self._interaction_for_token(params)
        if error is not None or interaction is None:
            return error or (404, {})
        target = interaction.response
        if target is None and interaction.type == 3 and 6 in interaction.callback_types:
            target = next(
                (m for m in self.messages if str(m.id) == interaction.payload["message"]["id"]),
                None,
            )
        if target is None:
            return 404, {"message": "Unknown Message", "code": 10008}
        if _empty_after_edit(target, body or {}, files):
            return 400, {"message": "Cannot send an empty message", "code": 50006}
        interaction.original_edits.append(dict(body or {}))
        target.loading = False
        target.payload.update(body or {})
        if files:
            target.files = files
        target.edits += 1
        return 200, self._message_payload(target)

    def _followup(self, params: dict[str, str], body: Any, files: list[Upload]) -> tuple[int, Any]:
        interaction, error = self._interaction_for_token(params)
        if error is not None or interaction is None:
            return error or (404, {})
        if not interaction.acknowledged:
            self._violation(f"followup on interaction {interaction.id} before its callback")
            return 404, {"message": "Unknown Webhook", "code": 10015}
        payload = dict(body or {})
        loading = interaction.response
        if loading is not None and loading.loading:
            # Discord: the first followup after a deferred response *becomes* the loading
            # message, and keeps the deferral's ephemerality whatever its own flags say.
            loading.loading = False
            flags = (int(payload.get("flags") or 0) & ~EPHEMERAL) | (loading.flags & EPHEMERAL)
            loading.payload = {**payload, "flags": flags}
            loading.files = files
            interaction.followups.append(loading)
            return 200, self._message_payload(loading)
        message = SentMessage(
            id=self.snowflake(),
            channel_id=interaction.channel_id,
            guild_id=interaction.guild_id,
            kind="followup",
            interaction=interaction,
            payload=payload,
            files=files,
        )
        interaction.followups.append(message)
        self.messages.append(message)
        return 200, self._message_payload(message)

    def _create_dm(self, params: dict[str, str], body: Any, files: list[Upload]) -> tuple[int, Any]:
        recipient = int((body or {}).get("recipient_id") or 0)
        user = self.users.get(recipient)
        if user is None:
            return 400, {"message": "Invalid Recipient(s)", "code": 50033}
        return 200, self._dm_channel(user)

    def _channel_message(
        self, params: dict[str, str], body: Any, files: list[Upload]
    ) -> tuple[int, Any]:
        cid = int(params["channel_id"])
        channel = self.channels.get(cid)
        if channel is None:
            return 404, {"message": "Unknown Channel", "code": 10003}
        if channel["type"] == 1:
            recipient = int(channel["recipients"][0]["id"])
            if recipient in self.closed_dms:
                return 403, {"message": "Cannot send messages to this user", "code": 50007}
        guild_id = int(channel["guild_id"]) if "guild_id" in channel else None
        message = SentMessage(
            id=self.snowflake(),
            channel_id=cid,
            guild_id=guild_id,
            kind="channel",
            interaction=None,
            payload=dict(body or {}),
            files=files,
        )
        self.messages.append(message)
        return 200, self._message_payload(message)

    # ------------------------------------------------------------------ shards

    @staticmethod
    def shard_of(guild_id: int, count: int) -> int:
        """Discord's routing of a guild to a shard."""
        return (guild_id >> 22) % count

    def add_guild(self, *, shard: int = 0, of: int = 1, name: str = "server") -> int:
        """A guild the bot is in, with one text channel, whose id Discord routes to
        `shard` of `of` shards. Returns the guild id."""
        base = self.snowflake()
        stamp = base >> 22
        stamp -= (stamp - shard) % of  # a few ms earlier: the same shard for `of` shards
        guild_id = (stamp << 22) | (base & ((1 << 22) - 1))
        channel_id = self.snowflake()
        self.guilds[guild_id] = channel_id
        self.channels[channel_id] = {
            **self._guild_channel(),
            "id": str(channel_id),
            "guild_id": str(guild_id),
            "name": name,
        }
        return guild_id

    def guilds_on(self, shard: int, count: int) -> list[int]:
        return [g for g in self.guilds if self.shard_of(g, count) == shard]

    def _shard_session(self, guild_id: object) -> _Session:
        counts = {s.shard[1] for s in self.shards.values()}
        if not counts:
            raise AssertionError("the bot never identified; nothing to dispatch to")
        if len(counts) > 1:
            self._violation(f"sessions disagree on the shard count: {sorted(counts)}")
        shard = self.shard_of(int(str(guild_id)), max(counts)) if guild_id else 0
        session = self.shards.get(shard)
        if session is None:
            raise AssertionError(f"no session runs shard {shard} (running: {sorted(self.shards)})")
        return session

    async def _admit_shard(
        self, ws: web.WebSocketResponse, data: dict[str, Any]
    ) -> tuple[int, int] | None:
        """The IDENTIFY's shard, or None once it was refused as Discord refuses it."""
        raw = data.get("shard", [0, 1])
        valid = (
            isinstance(raw, list)
            and len(raw) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) for n in raw)
            and 0 <= raw[0] < raw[1]
        )
        if not valid:
            self.shard_closes.append((4010, -1))
            await ws.close(code=4010, message=b"Invalid shard.")
            return None
        shard = (int(raw[0]), int(raw[1]))
        if len(self.guilds_on(*shard)) > self.max_guilds_per_shard:
            self.shard_closes.append((4011, shard[0]))
            await ws.close(code=4011, message=b"Sharding required.")
            return None
        bucket = shard[0] % self.max_concurrency
        now = time.monotonic()
        last = self._bucket_identified.get(bucket)
        if self.enforce_identify_pacing and last is not None and now - last < IDENTIFY_WINDOW_S:
            self.identifies_too_fast += 1
            await ws.send_str(json.dumps({"op": 9, "d": False}))
            return None
        self._bucket_identified[bucket] = now
        return shard

    def _guild_payload(self, guild_id: int) -> dict[str, Any]:
        channel = dict(self.channels[self.guilds[guild_id]])
        channel.pop("guild_id", None)  # GUILD_CREATE's channels leave it out
        return {
            "id": str(guild_id),
            "name": channel["name"],
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": str(self.app_id + 1),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": None,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "joined_at": "2024-01-01T00:00:00+00:00",
            "large": False,
            "unavailable": False,
            "member_count": 2,
            "members": [],
            "channels": [channel],
            "threads": [],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def _get_gateway_bot(
        self, params: dict[str, str], body: Any, files: list[Upload]
    ) -> tuple[int, Any]:
        answer = {
            "url": self.gateway_url,
            "shards": self.recommended_shards,
            "session_start_limit": {
                "total": 1000,
                "remaining": max(0, self.session_starts_left),
                "reset_after": 86_400_000,
                "max_concurrency": self.max_concurrency,
            },
        }
        schema = {"$ref": "#/components/schemas/GatewayBotResponse"}
        for problem in self.spec.validate(answer, schema, "get_bot_gateway answer"):
            self._violation(f"FAKE BUG: {problem}")
        return 200, answer


# Fields discord.py 2.7 sends that Discord's (preview) spec does not name, all of them
# harmless: Discord ignores or documents them. Anything else unknown is a violation.
_LIBRARY_EXTRAS: dict[str, frozenset[str]] = {
    # `nsfw` (age-restricted command) is documented on the command object, absent here.
    "bulk_set_application_commands": frozenset({"nsfw"}),
    "bulk_set_guild_application_commands": frozenset({"nsfw"}),
    # discord.py puts `tts: false` into every message payload, edits included.
    "update_original_webhook_message": frozenset({"tts"}),
    "update_webhook_message": frozenset({"tts"}),
}


def _without_library_extras(operation: str, problems: list[str]) -> list[str]:
    extras = _LIBRARY_EXTRAS.get(operation, frozenset())
    return [p for p in problems if not any(p.endswith(f"unknown field {e!r}") for e in extras)]


def discord_locales() -> frozenset[str]:
    """Discord's locales (what `name_localizations` and `description_localizations` are
    keyed by, and what an interaction's `locale` is), from the spec."""
    return shared_spec().enum("AvailableLocalesEnum")


def _name_problem(where: str, name: Any) -> str | None:
    """Discord's rule for command and option names: 1-32 letters, digits, - or _, in
    lowercase where a letter has a case."""
    text = str(name)
    valid = 1 <= len(text) <= 32 and all(c.isalnum() or c in "-_" for c in text)
    if not valid or text != text.lower():
        return f"PUT commands: {where}: invalid name {text!r}"
    return None


def _localization_problems(where: str, entity: dict[str, Any], *, name_rule: bool) -> list[str]:
    problems = []
    for field_name in ("name_localizations", "description_localizations"):
        table = entity.get(field_name) or {}
        for locale, text in table.items():
            if locale not in discord_locales():
                problems.append(
                    f"PUT commands: {where}: {field_name} has unknown locale {locale!r}"
                )
            limit = 32 if field_name == "name_localizations" and name_rule else 100
            if not 1 <= len(str(text)) <= limit:
                problems.append(
                    f"PUT commands: {where}: {field_name}[{locale}] not 1-{limit} chars"
                )
            if field_name == "name_localizations" and name_rule:
                problem = _name_problem(f"{where} [{locale}]", text)
                if problem:
                    problems.append(problem)
    return problems


def _command_problems(cmd: dict[str, Any]) -> list[str]:
    """What Discord refuses in a command beyond the schema: names and their localisations."""
    where = f"/{cmd.get('name')}"
    problems = [p for p in [_name_problem(where, cmd.get("name"))] if p]
    problems += _localization_problems(where, cmd, name_rule=True)
    for option in cmd.get("options") or []:
        at = f"{where} {option.get('name')}"
        problems += [p for p in [_name_problem(at, option.get("name"))] if p]
        problems += _localization_problems(at, option, name_rule=True)
        for choice in option.get("choices") or []:
            problems += _localization_problems(f"{at} choice", choice, name_rule=False)
    return problems


_UNAUTHENTICATED = frozenset(
    {
        "/interactions/{interaction_id}/{interaction_token}/callback",
        "/webhooks/{webhook_id}/{webhook_token}",
        "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
    }
)


def _empty_after_edit(message: SentMessage, body: dict[str, Any], files: list[Upload]) -> bool:
    """Whether an edit would leave a message with nothing to show (Discord refuses it)."""
    merged = {**message.payload, **body}
    kept_files = bool(files) or (bool(message.files) and "attachments" not in body)
    shown = merged.get("content") or merged.get("embeds") or merged.get("components")
    return not (shown or kept_files or merged.get("attachments"))


def _template_names(template: str) -> list[str]:
    return [seg[1:-1] for seg in template.split("/") if seg.startswith("{")]


def _path_values(template: str, path: str) -> list[str]:
    return [
        value
        for seg, value in zip(template.split("/"), path.split("/"), strict=True)
        if seg.startswith("{")
    ]


@contextlib.contextmanager
def patched_discord(fake: FakeDiscord) -> Iterator[None]:
    """Point discord.py's REST and gateway base URLs at the fake; restore them after.

    For test fixtures only: these are class attributes shared by every client.
    """
    old_base = discord.http.Route.BASE
    old_gateway = DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = fake.api_base
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE = old_base
        DiscordWebSocket.DEFAULT_GATEWAY = old_gateway


@contextlib.asynccontextmanager
async def running_fake(**kwargs: Any) -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(**kwargs) as fake:
        with patched_discord(fake):
            yield fake
