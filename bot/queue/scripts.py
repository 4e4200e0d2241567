"""The queue's Lua scripts: every state change that must be atomic, one `.lua` file each.

Each file in `lua/` starts with a comment naming the KEYS and ARGV it takes (and the keys
it must derive from data it reads). The loader puts two things in front of every script:
two lines naming the consumer groups and the hand-back consumer (from `bot.queue.keys`),
and `lua/lib.lua`, the helpers the scripts share. That is all it does.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from bot.queue.keys import DELIVERY_GROUP, HANDED_BACK, JOBS_GROUP

_LUA = resources.files("bot.queue").joinpath("lua")
_GROUPS = (
    f"local JOBS_GROUP, DELIVERY_GROUP = '{JOBS_GROUP}', '{DELIVERY_GROUP}'\n"
    f"local HANDED_BACK = '{HANDED_BACK}'\n"
)


def script_names() -> list[str]:
    """The scripts there are (file names without `.lua`; the shared lib.lua is not one)."""
    names = (entry.name.removesuffix(".lua") for entry in _LUA.iterdir())
    return sorted(name for name in names if not name.startswith(("lib", ".")))


@functools.cache
def source(name: str) -> str:
    """The script `name` as Redis runs it: the group names, lib.lua, then `lua/{name}.lua`."""
    lib = _LUA.joinpath("lib.lua").read_text(encoding="utf-8")
    return _GROUPS + lib + "\n" + _LUA.joinpath(f"{name}.lua").read_text(encoding="utf-8")


@functools.cache
def sha(name: str) -> str:
    return hashlib.sha1(source(name).encode(), usedforsecurity=False).hexdigest()


class Script:
    """A Lua script run with EVALSHA, falling back to EVAL (which also caches it again)
    when the server lost its script cache (a restart). Calls EVALSHA directly rather than
    through redis-py's `Script` object: one script call per job makes the client's
    per-call work count."""

    def __init__(self, redis: aioredis.Redis, name: str) -> None:
        self._redis = redis
        self.name = name
        self.sha = sha(name)

    async def __call__(self, *, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await self._redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self._redis.eval(source(self.name), len(keys), *keys, *args)
