"""What the access policy costs a request, and what `/stats` costs an operator.

Run from the repository root: `.venv/bin/python bench/operators_bench.py [REDIS_URL]`
(default redis://127.0.0.1:6379/0; keys go under a fresh prefix, deleted afterwards).
Per-call figures are the median of 5 rounds of N calls each, after a warm-up; the
baseline is one Redis PING round trip in the same run. `/stats` reads every job record
still kept (a SCAN), so it is timed over 1,000 and 10,000 synthetic job records.
"""

from __future__ import annotations

import asyncio
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.access import AccessMode  # noqa: E402
from bot.gate import Gatekeeper  # noqa: E402
from bot.jobs import Owner  # noqa: E402
from bot.operator_stats import collect  # noqa: E402
from bot.queue import QueueAdmin, QueueConfig  # noqa: E402

N = 500
ROUNDS = 7


async def per_call_us(calls: dict[str, Callable[[], Awaitable[object]]]) -> dict[str, float]:
    """Median µs per call of each, over ROUNDS rounds of N calls, the calls alternating
    round by round so that load on the machine hits them alike."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        for _ in range(50):
            await call()
    for _ in range(ROUNDS):
        for name, call in calls.items():
            start = time.perf_counter()
            for _ in range(N):
                await call()
            times[name].append((time.perf_counter() - start) / N * 1e6)
    return {name: statistics.median(values) for name, values in times.items()}


async def jobs(redis: aioredis.Redis, queue: QueueAdmin, first: int, count: int) -> None:
    """`count` finished job records (every tenth failed), numbered from `first`."""
    now = time.time()
    async with redis.pipeline(transaction=False) as pipe:
        for i in range(first, first + count):
            status = "done" if i % 10 else "failed"
            pipe.hset(
                queue.keys.job(f"{i:016x}"),
                mapping={"status": status, "created_at": now - 9, "finished_at": now - 1},
            )
        await pipe.execute()


async def gate(redis: aioredis.Redis, prefix: str) -> Gatekeeper:
    return Gatekeeper.create(redis, prefix, daily_quota=20, admins=frozenset({"telegram:1"}))


async def main(url: str) -> None:
    redis = aioredis.Redis.from_url(url)
    prefix = f"bench-ops-{uuid.uuid4().hex[:8]}"
    queue = QueueAdmin(redis, QueueConfig(prefix=prefix))
    user = Owner("telegram", "42", "-100777")
    open_gate = await gate(redis, f"{prefix}:open")
    restricted = await gate(redis, f"{prefix}:restricted")
    await redis.sadd(restricted.policy.allow_key, *[f"telegram:{i}" for i in range(1000, 2000)])
    await restricted.policy.allow("telegram-chat:-100777")
    await restricted.policy.set_mode(AccessMode.RESTRICTED)
    refusing = await gate(redis, f"{prefix}:refusing")
    await refusing.policy.deny("telegram:42")
    try:
        rows = await per_call_us(
            {
                "Redis PING round trip (baseline)": redis.ping,
                "gate.check, open mode, empty lists": lambda: open_gate.check(user),
                "gate.check, restricted, 1,001 allowed scopes": lambda: restricted.check(user),
                "gate.admit (check + quota)": lambda: open_gate.admit(user, 2),
                "gate.check, refused (audit throttled)": lambda: refusing.check(user),
            }
        )
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await redis.delete(*keys)
    ping = rows["Redis PING round trip (baseline)"]

    stats_rows = []
    try:
        for count in (1_000, 10_000):
            have = stats_rows[-1][0] if stats_rows else 0
            await jobs(redis, queue, have, count - have)
            times = []
            for _ in range(ROUNDS):
                start = time.perf_counter()
                report = await collect(queue)
                times.append((time.perf_counter() - start) * 1000)
            assert report.today.avatars + report.today.failures == count, report
            stats_rows.append((count, statistics.median(times)))
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{prefix}:*", count=1000)]
        for i in range(0, len(keys), 1000):
            await redis.delete(*keys[i : i + 1000])
        await redis.aclose()

    info = f"{platform.machine()}, Python {platform.python_version()}"
    print(f"Machine: {info}; {N} calls x {ROUNDS} rounds, median per call")
    print("| per request | µs | × PING |")
    print("|---|---:|---:|")
    for name, us in rows.items():
        print(f"| {name} | {us:.0f} | {us / ping:.1f} |")
    print()
    print("| /stats over job records | ms |")
    print("|---|---:|")
    for count, ms in stats_rows:
        print(f"| {count:,} | {ms:.0f} |")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0"))
