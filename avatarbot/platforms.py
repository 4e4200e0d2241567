"""The chat platforms of a bot process: each started, retried while it cannot be reached,
and watched, without a platform's outage ever stopping the process.

- **At start**: an adapter whose `start` raises `PlatformUnreachable` (Telegram's Bot
  API down, Discord's gateway unreachable) is tried again with capped exponential backoff
  (1 s, 2 s, 4 s ... 60 s), one log line per change of state. Meanwhile the web chat, the
  other platforms, delivery and `/healthz` keep serving. Any other error from `start` is a
  setting to fix (a rejected token, a bad webhook URL, Discord refusing the shards): it
  stops the process with its one line, as before.
- **Later**: an adapter that can `check` its platform (a cheap call such as Telegram's
  getMe) is checked every `check_interval_s`; a failed check marks the platform down
  until a check passes again. The adapters' own libraries keep retrying in the meantime
  (python-telegram-bot's polling loop, discord.py's reconnects); nothing is restarted.
- **Shown** in `/healthz` under `platforms` (state, since when, the last error's class,
  start attempts) and in `/metrics` (`avatarbot_platform_up`,
  `avatarbot_platform_start_attempts_total`). A platform that is down does not make
  `/healthz` answer 503: restarting the process would not bring the platform back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bot import metrics as prom
from bot.chat_adapter import ChatAdapter, PlatformUnreachable

log = logging.getLogger(__name__)

UP, DOWN, STARTING = "up", "down", "starting"
CHECK_TIMEOUT_S = 15.0


@runtime_checkable
class Checkable(Protocol):
    """An adapter that can tell whether its platform answers (raises when it does not)."""

    async def check(self) -> None: ...


@dataclass(frozen=True)
class Backoff:
    first_s: float = 1.0
    max_s: float = 60.0

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (1, 2, ...)."""
        return float(min(self.max_s, self.first_s * 2 ** min(attempt - 1, 30)))


@dataclass
class PlatformStatus:
    state: str = STARTING
    since: float = 0.0
    error: str = ""
    """The class of the last error (never its message: it may quote a URL)."""
    attempts: int = 0

    def body(self) -> dict[str, object]:
        body: dict[str, object] = {
            "state": self.state,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.since)),
            "start_attempts": self.attempts,
        }
        if self.error:
            body["error"] = self.error
        return body


class Platforms:
    """Runs the adapters of one process: `run` until stopped, then `stop`."""

    def __init__(
        self,
        adapters: Sequence[ChatAdapter],
        *,
        backoff: Backoff | None = None,
        check_interval_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.adapters = list(adapters)
        self.backoff = backoff or Backoff()
        self.check_interval_s = check_interval_s
        self._clock = clock
        self.status = {a.platform: PlatformStatus(since=clock()) for a in self.adapters}
        self._started: list[ChatAdapter] = []
        self._all_up = asyncio.Event()
        if not self.adapters:
            self._all_up.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Start every adapter (each on its own, retrying), then watch them, until `stop`.
        Raises the first error that is not `PlatformUnreachable` (the process stops)."""
        tasks = [
            asyncio.create_task(self._run_one(a, stop), name=f"{a.platform}-platform")
            for a in self.adapters
        ]
        if not tasks:
            await stop.wait()
            return
        try:
            done, _ = await asyncio.wait(tasks, return_when="FIRST_EXCEPTION")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]  # checked not None just above
        await stop.wait()  # watching ends with the stop, or there was nothing to watch

    async def all_up(self) -> None:
        """Until every adapter has started once."""
        await self._all_up.wait()

    async def stop(self) -> None:
        """Stop the started adapters, last started first; never raises."""
        while self._started:
            adapter = self._started.pop()
            with contextlib.suppress(Exception):
                await adapter.stop()

    async def _run_one(self, adapter: ChatAdapter, stop: asyncio.Event) -> None:
        if await self._start(adapter, stop):
            await self._watch(adapter, stop)

    async def _start(self, adapter: ChatAdapter, stop: asyncio.Event) -> bool:
        status = self.status[adapter.platform]
        while not stop.is_set():
            status.attempts += 1
            try:
                await _until(adapter.start(), stop)
            except PlatformUnreachable as exc:
                self._set(adapter.platform, DOWN, exc)
                delay = self.backoff.delay(status.attempts)
                if delay < self.backoff.max_s or status.attempts % 10 == 0:
                    log.warning("%s: not reachable at start (%s); trying again in %.0f s",
                                adapter.platform, _cause(exc), delay)  # fmt: skip
                await _sleep(delay, stop)
                continue
            self._started.append(adapter)  # stopped by `stop`, even if it came meanwhile
            if stop.is_set():
                return False
            self._set(adapter.platform, UP)
            if len(self._started) == len(self.adapters):
                self._all_up.set()
            return True
        return False

    async def _watch(self, adapter: ChatAdapter, stop: asyncio.Event) -> None:
        if not isinstance(adapter, Checkable):
            return
        while not await _sleep(self.check_interval_s, stop):
            try:
                await asyncio.wait_for(adapter.check(), CHECK_TIMEOUT_S)
            except (PlatformUnreachable, TimeoutError, OSError) as exc:
                if self.status[adapter.platform].state != DOWN:
                    log.warning("%s: not reachable (%s); still trying", adapter.platform,
                                _cause(exc))  # fmt: skip
                self._set(adapter.platform, DOWN, exc)
            else:
                if self.status[adapter.platform].state != UP:
                    log.info("%s: reachable again", adapter.platform)
                self._set(adapter.platform, UP)

    def _set(self, platform: str, state: str, exc: BaseException | None = None) -> None:
        status = self.status[platform]
        if status.state != state:
            status.state, status.since = state, self._clock()
            if state == UP:
                log.info("%s: up", platform)
        if exc is not None:
            status.error = _cause(exc)

    def health(self) -> dict[str, object]:
        """`/healthz`'s `platforms`: each platform's state."""
        return {name: status.body() for name, status in self.status.items()}

    def metrics(self) -> list[str]:
        up = [({"platform": n}, float(s.state == UP)) for n, s in self.status.items()]
        tries = [({"platform": n}, float(s.attempts)) for n, s in self.status.items()]
        return prom.family(
            "avatarbot_platform_up", "gauge", "1 while the chat platform answers.", up
        ) + prom.family(
            "avatarbot_platform_start_attempts_total",
            "counter",
            "Tries to start each chat platform's adapter.",
            tries,
        )


def _cause(exc: BaseException) -> str:
    """The class name of what went wrong underneath (`NetworkError`, `ConnectError`...)."""
    inner = exc.__cause__ or exc
    return type(inner).__name__


async def _until(call: Awaitable[None], stop: asyncio.Event) -> None:
    """Await `call` unless `stop` comes first (then it is cancelled)."""
    task = asyncio.ensure_future(call)
    waiter = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, waiter}, return_when="FIRST_COMPLETED")
    finally:
        waiter.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return
    task.result()


async def _sleep(seconds: float, stop: asyncio.Event) -> bool:
    """Sleep `seconds`, or less if `stop` is set; returns whether it was."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
