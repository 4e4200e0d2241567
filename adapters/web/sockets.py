"""The web chat's websockets: server -> browser pushes, `{"type": "message", "message": ...}`.

A user may have several tabs open; each gets every message. The browser only listens;
anything it sends is ignored.
"""

from __future__ import annotations

import contextlib
import json

from aiohttp import WSMsgType, web

from adapters.web.guard import UID_KEY
from adapters.web.messages import Message


class Sockets:
    """Open websockets by user id."""

    def __init__(self) -> None:
        self._open: dict[str, set[web.WebSocketResponse]] = {}

    def __len__(self) -> int:
        return sum(len(s) for s in self._open.values())

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """`GET /api/ws`: hold the socket open until the browser or the server closes it."""
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=4096)
        await ws.prepare(request)
        uid = request[UID_KEY]
        self._open.setdefault(uid, set()).add(ws)
        try:
            async for msg in ws:
                if msg.type is WSMsgType.ERROR:
                    break
        finally:
            sockets = self._open.get(uid)
            if sockets is not None:
                sockets.discard(ws)
                if not sockets:
                    del self._open[uid]
        return ws

    async def push(self, uid: str, message: Message) -> None:
        for ws in list(self._open.get(uid, ())):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str(json.dumps({"type": "message", "message": message}))

    async def close_all(self, app: web.Application) -> None:
        """The server is shutting down (an `on_shutdown` hook)."""
        for sockets in list(self._open.values()):
            for ws in list(sockets):
                await ws.close(code=1001, message=b"server shutdown")
