"""How the Telegram adapter runs updates: concurrently, but one user's in one chat in order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor


class PerUserUpdateProcessor(BaseUpdateProcessor):
    """Runs updates concurrently, but one user's updates in one chat strictly in order
    (a selfie must not overtake the /avatar before it)."""

    def __init__(self, max_concurrent_updates: int) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: dict[tuple[int, int], asyncio.Lock] = {}
        self._users: dict[tuple[int, int], int] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = _update_key(update)
        if key is None:
            await coroutine
            return
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        started = False
        try:
            async with lock:
                started = True
                await coroutine
        finally:
            self._users[key] -= 1
            if self._users[key] == 0:
                del self._users[key]
                del self._locks[key]
            if not started and asyncio.iscoroutine(coroutine):
                coroutine.close()  # cancelled while waiting for the lock: never ran

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to free."""


def _update_key(update: object) -> tuple[int, int] | None:
    if not isinstance(update, Update) or update.effective_chat is None:
        return None
    user = update.effective_user
    return update.effective_chat.id, user.id if user is not None else 0
