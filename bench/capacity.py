"""What one deployment holds: the per-job and per-request costs the capacity table in
docs/deployment.md is computed from, measured on a private Redis in one run.

Run from the repository root: `.venv/bin/python bench/capacity.py [--users 40] [--jobs 1000]
[--write]` (`--write` replaces the "Capacity inputs" section of docs/benchmarks.md).

1. Queue alone (bench/queue_bench.py's code, no-op backend, same process): the bare Redis
   Streams loop (baseline) and avatarbot's queue with the production `DeliveryPump`.
2. The whole Telegram stack (bench/telegram_load.py's code): `--users` users at once
   through the fake Bot API, each with 2 avatars and a quota refusal (4 requests), one
   CPU-engine worker process (`sketch`, 512 px), beside its baseline (a bare
   python-telegram-bot echo, 1 request per user).

Around each part the Redis server's own counters are read: `INFO commandstats` (calls by
command; commands that scripts run are counted too, EVAL/EVALSHA once more), the main
thread's CPU time (`used_cpu_*_main_thread`: Redis executes commands on that one thread,
so 1 / CPU per job is what one Redis sustains at 100 % of a core) and the memory peak.
Process CPU comes from `getrusage`: this process (bot side + fake Bot API server) and the
worker process (its start-up, read from /proc once it registers, taken off). Redis runs
with AOF on, `appendfsync everysec`, as docs/deployment.md recommends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import resource
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import queue_bench, telegram_load  # noqa: E402
from bench.report import write_section  # noqa: E402
from tests.conftest import RedisServer  # noqa: E402

SECTION = "## Capacity inputs"
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class RedisCounters:
    calls: Counter[str]
    usec_by_command: Counter[str]
    usec: int
    cpu_s: float
    used_memory: int
    peak_memory: int

    @classmethod
    async def read(cls, client: aioredis.Redis) -> RedisCounters:
        stats = await client.info("commandstats")
        cpu = await client.info("cpu")
        memory = await client.info("memory")
        calls: Counter[str] = Counter()
        usec: Counter[str] = Counter()
        for name, entry in stats.items():
            command = name.removeprefix("cmdstat_").upper()
            if command in ("INFO", "CONFIG"):
                continue  # this script's own reads
            calls[command] = int(entry["calls"])
            usec[command] = int(entry["usec"])
        main = float(cpu["used_cpu_sys_main_thread"]) + float(cpu["used_cpu_user_main_thread"])
        memory_now, peak = int(memory["used_memory"]), int(memory["used_memory_peak"])
        return cls(calls, usec, sum(usec.values()), main, memory_now, peak)


@dataclass
class Part:
    """One measured part of the run, and what it cost per unit of work."""

    name: str
    units: int
    unit: str
    wall_s: float
    calls: Counter[str]
    redis_usec: int
    redis_cpu_s: float
    redis_peak_bytes: int
    process_cpu_s: float
    worker_cpu_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def per_unit(self, value: float) -> float:
        return value / self.units if self.units else float("nan")


@contextlib.asynccontextmanager
async def measured(client: aioredis.Redis, into: dict[str, Any]) -> AsyncIterator[None]:
    """Redis counters, memory peak and this process's CPU around a block."""
    await client.config_resetstat()
    before = await RedisCounters.read(client)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    yield
    into["wall_s"] = time.perf_counter() - start
    after = await RedisCounters.read(client)
    usage2 = resource.getrusage(resource.RUSAGE_SELF)
    children2 = resource.getrusage(resource.RUSAGE_CHILDREN)
    into["calls"] = after.calls - before.calls
    into["usec_by_command"] = after.usec_by_command - before.usec_by_command
    into["redis_usec"] = after.usec - before.usec
    into["redis_cpu_s"] = after.cpu_s - before.cpu_s
    into["redis_peak_bytes"] = after.peak_memory - before.used_memory
    into["process_cpu_s"] = (usage2.ru_utime + usage2.ru_stime) - (usage.ru_utime + usage.ru_stime)
    into["children_cpu_s"] = (children2.ru_utime + children2.ru_stime) - (
        children.ru_utime + children.ru_stime
    )


async def queue_part(
    client: aioredis.Redis,
    name: str,
    variant: Callable[..., Awaitable[dict[str, float]]],
    jobs: int,
) -> Part:
    got: dict[str, Any] = {}
    prefix = f"cap-{secrets.token_hex(4)}"
    async with measured(client, got):
        result = await variant(client, prefix, jobs, 8, 0)
    keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    return Part(
        name, jobs, "job", got["wall_s"], got["calls"], got["redis_usec"], got["redis_cpu_s"],
        got["redis_peak_bytes"], got["process_cpu_s"],
        extra={"jobs_s": result["jobs_s"], "usec_by_command": got["usec_by_command"]},
    )  # fmt: skip


def _worker_pids() -> list[int]:
    me = str(os.getpid())
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
            if stat.rsplit(")", 1)[1].split()[1] == me and b"worker" in cmdline:
                pids.append(int(entry.name))
    return pids


def _cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


async def _startup_cpu(client: aioredis.Redis, out: dict[str, float]) -> None:
    """The worker's CPU when it first registers in Redis: its start-up, not its jobs."""
    while True:
        keys = [k async for k in client.scan_iter(match="*:workers", count=100)]
        if keys and await client.zcard(keys[0]):
            pids = await asyncio.to_thread(_worker_pids)
            out["startup_cpu_s"] = sum(_cpu_of(p) for p in pids)
            return
        await asyncio.sleep(0.05)


async def slow_scripts(client: aioredis.Redis) -> Counter[str]:
    """Microseconds per script name, from the slow log (calls over 200 us)."""
    spent: Counter[str] = Counter()
    for entry in await client.slowlog_get(100_000):
        command = entry["command"]
        text = command.decode(errors="replace") if isinstance(command, bytes) else str(command)
        words = text.split(maxsplit=2)  # the arguments may be image bytes
        if len(words) > 1 and words[0].upper() == "EVALSHA":
            spent[queue_bench.SCRIPT_NAMES.get(words[1], "other script")] += entry["duration"]
    return spent


async def stack_part(client: aioredis.Redis, url: str, users: int) -> tuple[Part, Part]:
    got: dict[str, Any] = {}
    async with measured(client, got):
        base = await telegram_load.run_baseline(users)
    baseline = Part(
        "baseline: bare python-telegram-bot echo (photo -> 1 text)", users, "request",
        got["wall_s"], got["calls"], got["redis_usec"], got["redis_cpu_s"],
        got["redis_peak_bytes"], got["process_cpu_s"], extra={"rps": base["rps"]},
    )  # fmt: skip
    got = {}
    startup: dict[str, float] = {}
    await client.config_set("slowlog-log-slower-than", 200)
    await client.config_set("slowlog-max-len", 100_000)
    await client.slowlog_reset()
    async with measured(client, got):
        watcher = asyncio.create_task(_startup_cpu(client, startup))
        run = await telegram_load.run_stack(url, users, 1, False)
        watcher.cancel()
    problems = run["problems"] + run["timings"].errors + run["violations"]
    if problems or run["handler_errors"]:
        raise SystemExit(f"the load run failed: {problems[:5]}")
    avatars = len(run["timings"].avatar)
    stack = Part(
        "avatarbot, Telegram stack, 1 CPU worker", avatars, "avatar", got["wall_s"],
        got["calls"], got["redis_usec"], got["redis_cpu_s"], got["redis_peak_bytes"],
        got["process_cpu_s"],
        worker_cpu_s=got["children_cpu_s"] - startup.get("startup_cpu_s", 0.0),
        extra={
            "requests": run["requests"], "rps": run["throughput_rps"],
            "avatars_per_s": run["avatars_per_s"], "chat_calls": run["chat_calls"],
            "api_calls": run["api_calls"], "worker_startup_cpu_s": startup.get("startup_cpu_s"),
            "run_wall_s": run["wall_s"], "usec_by_command": got["usec_by_command"],
            "slow_scripts": await slow_scripts(client),
        },
    )  # fmt: skip
    return baseline, stack


def _ratio(part: Part, baseline: Part) -> float:
    return part.per_unit(part.redis_cpu_s) / baseline.per_unit(baseline.redis_cpu_s)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms" if seconds < 0.01 else f"{seconds * 1000:.1f} ms"


def top(calls: Counter[str], units: int, n: int = 6) -> str:
    return ", ".join(f"{c} {v / units:.2f}" for c, v in calls.most_common(n))


def _row(part: Part) -> str:
    worker = ms(part.per_unit(part.worker_cpu_s)) if part.worker_cpu_s else "-"
    process = ms(part.per_unit(part.process_cpu_s))
    calls = sum(part.calls.values())
    if not calls:  # no Redis in this part
        return f"| {part.name} | {part.unit} | - | - | - | - | {process} | {worker} |"
    cpu = part.per_unit(part.redis_cpu_s)
    peak = part.per_unit(max(0, part.redis_peak_bytes))
    return (
        f"| {part.name} | {part.unit} | {part.per_unit(calls):.1f} | {ms(cpu)} | "
        f"{1 / cpu:,.0f} | {peak / 1024:.0f} KiB | {process} | {worker} |"
    )


def by_time(part: Part, n: int = 6) -> str:
    usec = part.extra.get("usec_by_command", Counter())
    return ", ".join(f"{c} {v / part.units / 1000:.2f} ms" for c, v in usec.most_common(n))


def slow(part: Part, n: int = 4) -> str:
    spent: Counter[str] = part.extra.get("slow_scripts", Counter())
    return ", ".join(f"{c} {v / part.units / 1000:.2f} ms" for c, v in spent.most_common(n))


def render(queue: list[Part], base: Part, stack: Part, version: str) -> str:
    bare, ours = queue
    requests = stack.extra["requests"]
    lines = [
        SECTION,
        "",
        "`bench/capacity.py`: the costs behind the capacity table in docs/deployment.md, read "
        "from the Redis server's own counters (`INFO commandstats`, main-thread CPU, memory "
        "peak) and from `getrusage`, on a private Redis (AOF on, `appendfsync everysec`). "
        f"Queue alone: {bare.units} no-op jobs per variant (bench/queue_bench.py's code). "
        f"Whole Telegram stack: {base.units} users at once through the fake Bot API, 2 avatars "
        "(`sketch`, 512 px) and a quota refusal each, one CPU worker process "
        "(bench/telegram_load.py's code). Redis commands counted by the server include "
        "those run inside scripts (EVALSHA is one more call).",
        f"Machine: 2-core x86_64 VM, CPU only, Python {platform.python_version()}, Redis "
        f"{version}; shared with other work while measured (CPU times are steadier than wall "
        f"times). Measured {time.strftime('%Y-%m-%d')}.",
        "",
        "| | per | Redis calls | Redis CPU (main thread) | → units/s one Redis core "
        "sustains | Redis peak memory | client/bot process CPU | worker CPU |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for part in (bare, ours, base, stack):
        lines.append(_row(part))
    per_request = stack.process_cpu_s / requests
    lines += [
        "",
        f"Redis calls per job, by command: queue alone {top(ours.calls, ours.units)}; "
        f"whole stack (per avatar) {top(stack.calls, stack.units, 10)}. Redis time by "
        f"command (per avatar, whole stack): {by_time(stack)}; of the script time, calls "
        f"over 0.2 ms (slow log) per avatar: {slow(stack)}. Queue alone, the client ran "
        f"{bare.extra['jobs_s']:.0f} jobs/s (bare) and {ours.extra['jobs_s']:.0f} jobs/s "
        "(avatarbot): one Python process, not Redis, is the limit there.",
        "",
        f"Whole stack: {requests} requests in {stack.extra['run_wall_s']:.1f} s "
        f"({stack.extra['rps']:.1f} requests/s, {stack.extra['avatars_per_s']:.1f} avatars/s, "
        f"bounded by the one worker); bot process (with the fake Bot API server in it) "
        f"{ms(per_request)} CPU per request, so about {1 / per_request:.0f} requests/s per "
        f"core; baseline echo {ms(base.per_unit(base.process_cpu_s))} per request "
        f"({per_request / base.per_unit(base.process_cpu_s):.1f}x). Worker: "
        f"{ms(stack.per_unit(stack.worker_cpu_s))} CPU per avatar after its start-up "
        f"({stack.extra['worker_startup_cpu_s'] or 0:.1f} s CPU), so about "
        f"{stack.units / stack.worker_cpu_s:.1f} avatars/s per core. Telegram calls to "
        f"chats: {stack.extra['chat_calls'] / stack.units:.1f} per avatar "
        f"({stack.extra['api_calls'] / stack.units:.1f} Bot API calls in all). Queue alone, "
        f"avatarbot vs bare loop: {_ratio(ours, bare):.1f}x the Redis CPU per job.",
        "",
    ]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace, url: str) -> str:
    client = aioredis.Redis.from_url(url)
    try:
        await client.config_set("appendonly", "yes")
        await client.config_set("appendfsync", "everysec")
        version = str((await client.info("server"))["redis_version"])
        queue = [
            await queue_part(client, queue_bench.LABELS["bare"], queue_bench.bare, args.jobs),
            await queue_part(
                client, queue_bench.LABELS["leased"], queue_bench._ours_leased, args.jobs
            ),
        ]
        base, stack = await stack_part(client, url, args.users)
        return render(queue, base, stack, version)
    finally:
        await client.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis").start()
        try:
            text = asyncio.run(main_async(args, server.url))
        finally:
            server.stop()
    print(text)
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
