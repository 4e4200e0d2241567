"""200 simulated Telegram users at once, through the fake Bot API, against the whole stack.

Each user, all at the same time:
  1. sends a selfie with the caption /avatar        -> expects the style picker
  2. presses a style                                  -> expects one avatar (sendPhoto)
  3. presses "more like this"                         -> expects a second avatar
  4. presses "more like this" again                   -> expects the daily-quota refusal
     (AVATARBOT_DAILY_QUOTA=2)
and every request must get exactly one answer: one picker, one photo per job, one
refusal, every button press answered once, no spec violations at the fake.

Stack: python-telegram-bot 22 over HTTP to `tests.fake_telegram.FakeTelegram`, the
adapter, conversation, queue, delivery pump and status tracker in this process; worker
processes (`python -m avatarbot.cli worker`, CPU style engine) beside it; a private Redis.

Baseline (same run, same fake server, same 200 users): a bare python-telegram-bot app
that answers each photo with one text message: the transport's own ceiling.

Usage: .venv/bin/python -m bench.telegram_load [--users 200] [--workers 1]
       [--flood-limits] [--markdown]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from telegram import Update
from telegram.ext import AIORateLimiter, ApplicationBuilder, MessageHandler, filters

from bot.config import load_settings
from bot.jobs import Owner
from bot.replies import Action, format_callback, owner_tag
from tests.conftest import RedisServer
from tests.fake_telegram import Call, FakeTelegram
from tests.telegram_harness import TelegramHarness, telegram_env

ROOT = Path(__file__).resolve().parent.parent

STYLE = "sketch"
QUOTA = 2
FACE = (ROOT / "tests" / "data" / "astronaut.jpg").read_bytes()


@dataclass
class Timings:
    intake: list[float] = field(default_factory=list)
    """selfie sent -> style picker shown"""
    avatar: list[float] = field(default_factory=list)
    """style (or "more") pressed -> avatar photo delivered"""
    refusal: list[float] = field(default_factory=list)
    """"more" pressed over the quota -> refusal shown"""
    errors: list[str] = field(default_factory=list)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


def button(call: Call, action: Action) -> str:
    prefix = f"v1:{action.value}:"
    for _text, data in FakeTelegram.buttons(call.result):
        if data.startswith(prefix):
            return data
    raise AssertionError(f"no {action.value} button")


async def one_user(fake: FakeTelegram, uid: int, t: Timings, within: float) -> None:
    user = fake.user(uid, f"User{uid}")
    chat = fake.private_chat(user)
    cid = chat["id"]
    start = time.perf_counter()
    fake.send_photo(chat, user, FACE, caption="/avatar")
    tag = owner_tag(Owner("telegram", str(uid), str(cid)))  # the picker is bound to its user
    pick = format_callback(Action.PICK, STYLE, owner=tag)
    pickers = await fake.wait_for(
        "sendMessage",
        lambda c: any(d == pick for _, d in fake.buttons(c.result)),
        chat_id=cid,
        within=within,
    )
    t.intake.append(time.perf_counter() - start)
    start = time.perf_counter()
    fake.press(user, pickers[0].result, pick)
    photos = await fake.wait_for("sendPhoto", chat_id=cid, within=within)
    t.avatar.append(time.perf_counter() - start)
    start = time.perf_counter()
    fake.press(user, photos[0].result, button(photos[0], Action.MORE))
    photos = await fake.wait_for("sendPhoto", chat_id=cid, count=2, within=within)
    t.avatar.append(time.perf_counter() - start)
    start = time.perf_counter()
    fake.press(user, photos[1].result, button(photos[1], Action.MORE))
    await fake.wait_for(
        "sendMessage", lambda c: "daily limit" in c.fields["text"], chat_id=cid, within=within
    )
    t.refusal.append(time.perf_counter() - start)


def check_answers(fake: FakeTelegram, users: list[int]) -> list[str]:
    """Exactly one answer per request, per user."""
    problems: list[str] = []
    pick = format_callback(Action.PICK, STYLE)
    for uid in users:
        sent = [c for c in fake.calls if c.chat_id == uid and c.ok]
        pickers = [
            c
            for c in sent
            if c.method == "sendMessage" and pick in str(c.fields.get("reply_markup"))
        ]
        photos = [c for c in sent if c.method == "sendPhoto"]
        refusals = [
            c for c in sent if c.method == "sendMessage" and "daily limit" in c.fields["text"]
        ]
        albums = [c for c in sent if c.method == "sendMediaGroup"]
        retired = [c for c in sent if c.method == "deleteMessage"]
        counts = (len(pickers), len(photos), len(refusals), len(albums), len(retired))
        if counts != (1, 2, 1, 1, 2):
            problems.append(
                f"user {uid}: pickers/photos/refusals/albums/queue messages retired = {counts}"
            )
    presses = 3 * len(users)
    answered = len([c for c in fake.calls if c.method == "answerCallbackQuery" and c.ok])
    if answered != presses:
        problems.append(f"{answered} callback answers for {presses} presses")
    return problems


@contextlib.contextmanager
def workers(redis_url: str, prefix: str, count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    env = dict(
        os.environ,
        REDIS_URL=redis_url,
        AVATARBOT_KEY_PREFIX=prefix,
        AVATARBOT_BACKEND="cpu",
        AVATARBOT_BATCH_SIZE="4",
        AVATARBOT_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "avatarbot.cli", "worker"],
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
        for _ in range(count)
    ]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)


async def _watch(procs: list[subprocess.Popen[bytes]], work: asyncio.Future[Any]) -> None:
    """Stop the run if a worker process dies (its users would wait forever)."""
    while True:
        await asyncio.sleep(0.5)
        dead = [p.returncode for p in procs if p.poll() is not None]
        if dead:
            print(f"a worker exited with {dead[0]}; stopping", file=sys.stderr)
            work.cancel()
            return


async def run_stack(
    redis_url: str, n_users: int, n_workers: int, flood_limits: bool
) -> dict[str, Any]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    redis = aioredis.Redis.from_url(redis_url)
    timings = Timings()
    async with FakeTelegram() as fake:
        settings = load_settings(
            {
                **telegram_env(fake),
                "REDIS_URL": redis_url,
                "AVATARBOT_KEY_PREFIX": prefix,
                "AVATARBOT_DAILY_QUOTA": str(QUOTA),
                "AVATARBOT_QUEUE_CAP": str(4 * n_users),
            }
        )

        def limiter() -> AIORateLimiter:
            if flood_limits:
                return AIORateLimiter(max_retries=3)  # Telegram's limits: 30/s, 20/min/group
            return AIORateLimiter(overall_max_rate=0, group_max_rate=0, max_retries=3)

        with workers(redis_url, prefix, n_workers) as procs:
            async with TelegramHarness(
                fake, settings, redis, rate_limiter_factory=limiter, tracker_interval_s=1.0
            ) as harness:
                side = await harness.start_bot()
                users = list(range(10_000, 10_000 + n_users))
                within = 300.0
                start = time.perf_counter()
                gathered = asyncio.gather(
                    *(one_user(fake, uid, timings, within) for uid in users),
                    return_exceptions=True,
                )
                watchdog = asyncio.create_task(_watch(procs, gathered))
                results = await gathered
                watchdog.cancel()
                wall = time.perf_counter() - start
                timings.errors = [repr(r) for r in results if isinstance(r, BaseException)]
                problems = check_answers(fake, users)
                handler_errors = side.adapter.handler_errors + len(side.errors)
        keys = [k async for k in redis.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
        requests = 4 * n_users
        return {
            "users": n_users,
            "workers": n_workers,
            "flood_limits": flood_limits,
            "wall_s": wall,
            "requests": requests,
            "throughput_rps": requests / wall,
            "avatars_per_s": len(timings.avatar) / wall,
            "api_calls": len(fake.calls),
            "by_method": Counter(c.method for c in fake.calls),
            "chat_calls": sum(1 for c in fake.calls if c.chat_id is not None),
            "timings": timings,
            "problems": problems,
            "violations": fake.violations,
            "handler_errors": handler_errors,
        }


async def run_baseline(n_users: int) -> dict[str, Any]:
    """A bare PTB app answering each photo with one message: the transport ceiling."""
    latencies: list[float] = []
    async with FakeTelegram() as fake:
        app = (
            ApplicationBuilder()
            .token(fake.token)
            .base_url(fake.base_url)
            .base_file_url(fake.base_file_url)
            .rate_limiter(AIORateLimiter(overall_max_rate=0, group_max_rate=0))
            .concurrent_updates(64)
            .build()
        )

        async def answer(update: Update, context: Any) -> None:
            if update.effective_chat is not None:
                await context.bot.send_message(update.effective_chat.id, "got it")

        app.add_handler(MessageHandler(filters.PHOTO, answer))
        async with app:
            await app.start()
            assert app.updater is not None
            await app.updater.start_polling(timeout=5)

            async def user(uid: int) -> None:
                u = fake.user(uid)
                chat = fake.private_chat(u)
                t0 = time.perf_counter()
                fake.send_photo(chat, u, FACE, caption="/avatar")
                await fake.wait_for("sendMessage", chat_id=chat["id"], within=120)
                latencies.append(time.perf_counter() - t0)

            start = time.perf_counter()
            await asyncio.gather(*(user(10_000 + i) for i in range(n_users)))
            wall = time.perf_counter() - start
            await app.updater.stop()
            await app.stop()
    return {"wall_s": wall, "rps": n_users / wall, "latencies": latencies}


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def markdown(base: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    lines = [
        "## Telegram load (200 users)",
        "",
        "`bench/telegram_load.py`: 200 simulated users at once through the fake Bot API "
        "(tests/fake_telegram.py, every request checked against the official spec), "
        "python-telegram-bot 22.8 over HTTP, the Telegram adapter, conversation, queue, "
        "delivery pump and status tracker in one process, CPU-engine workers "
        f"(`{STYLE}`, 512 px, batch 4) as separate processes, a private Redis. Each user: "
        "selfie with /avatar -> picker; style -> avatar; more like this -> avatar; "
        f"more again -> daily-quota refusal (quota {QUOTA}). 4 requests per user.",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; the machine is shared with other processes. "
        f"Measured {time.strftime('%Y-%m-%d')}.",
        "",
        "| run | wall | requests/s | avatars/s | intake p50 / p99 | avatar p50 / p99 "
        "| refusal p50 / p99 | answers | spec violations |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
        f"| baseline: bare PTB echo (photo -> 1 text) | {ms(base['wall_s'])} | "
        f"{base['rps']:.0f} | - | {ms(pct(base['latencies'], 50))} / "
        f"{ms(pct(base['latencies'], 99))} | - | - | 1 per request | 0 |",
    ]
    for r in runs:
        t: Timings = r["timings"]
        ok = not r["problems"] and not t.errors and not r["handler_errors"]
        label = f"avatarbot, {r['workers']} worker(s), " + (
            "Telegram flood limits (30 msg/s)" if r["flood_limits"] else "no flood limits"
        )
        lines.append(
            f"| {label} | {ms(r['wall_s'])} | {r['throughput_rps']:.1f} | "
            f"{r['avatars_per_s']:.1f} | {ms(pct(t.intake, 50))} / {ms(pct(t.intake, 99))} | "
            f"{ms(pct(t.avatar, 50))} / {ms(pct(t.avatar, 99))} | "
            f"{ms(pct(t.refusal, 50))} / {ms(pct(t.refusal, 99))} | "
            f"{'exactly 1 per request' if ok else 'PROBLEMS'} | {len(r['violations'])} |"
        )
    lines += ["", "Bot API calls per run (all users):", ""]
    methods = sorted({m for r in runs for m in r["by_method"]})
    lines.append("| run | " + " | ".join(methods) + " | total | per second | to chats per second |")
    lines.append("|---|" + "---:|" * (len(methods) + 3))
    for r in runs:
        counts = r["by_method"]
        label = "flood limits" if r["flood_limits"] else "no flood limits"
        lines.append(
            f"| {label} | "
            + " | ".join(str(counts.get(m, 0)) for m in methods)
            + f" | {r['api_calls']} | {r['api_calls'] / r['wall_s']:.0f} | "
            f"{r['chat_calls'] / r['wall_s']:.0f} |"
        )
    free = next((r for r in runs if not r["flood_limits"]), runs[0])
    limited = next((r for r in runs if r["flood_limits"]), None)
    lines += [
        "",
        "Latencies are per request, from the user's action to the answer arriving at the "
        "fake server, which runs in the bot's process and event loop (so its own work "
        "is in every number, the baseline's too). Avatar latency includes waiting behind "
        f"the other users' jobs: one CPU worker made {free['avatars_per_s']:.1f} avatars/s "
        "here, the bottleneck without flood limits. Intake (dlib face detection, one at a "
        "time per bot process) explains the intake latency under a burst of 200 selfies.",
    ]
    if limited is not None:
        rate = limited["chat_calls"] / limited["wall_s"]
        rate_free = free["chat_calls"] / free["wall_s"]
        edits = limited["by_method"].get("editMessageText", 0)
        lines.append(
            f"With Telegram's limits on (AIORateLimiter), calls to chats ran at {rate:.0f}/s "
            f"against the 30 messages/s cap; without them the same work ran at "
            f"{rate_free:.0f}/s, and the cap cost {limited['wall_s'] - free['wall_s']:.1f} s "
            f"of wall time. Queue-position edits ({edits}) are held to 10/s across chats by "
            "the adapter, so results and answers keep most of the budget."
        )
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--flood-limits", action="store_true", help="also run with Telegram's send limits on"
    )
    parser.add_argument("--markdown", action="store_true", help="print the docs section")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    url = os.environ.get("AVATARBOT_BENCH_REDIS_URL")
    with tempfile.TemporaryDirectory() as tmp:
        server = None if url else RedisServer(Path(tmp) / "redis").start()
        redis_url = url or (server.url if server else "")
        try:
            base = asyncio.run(run_baseline(args.users))
            print(f"baseline: {base['rps']:.0f} req/s, p50 {ms(pct(base['latencies'], 50))}")
            runs = [asyncio.run(run_stack(redis_url, args.users, args.workers, False))]
            if args.flood_limits:
                runs.append(asyncio.run(run_stack(redis_url, args.users, args.workers, True)))
        finally:
            if server is not None:
                server.stop()
    failed = False
    for r in runs:
        t: Timings = r["timings"]
        print(
            f"{'flood limits' if r['flood_limits'] else 'no limits'}: {r['wall_s']:.1f} s, "
            f"{r['throughput_rps']:.1f} req/s, {r['avatars_per_s']:.1f} avatars/s, "
            f"intake p50 {ms(pct(t.intake, 50))} p99 {ms(pct(t.intake, 99))}, "
            f"avatar p50 {ms(pct(t.avatar, 50))} p99 {ms(pct(t.avatar, 99))}, "
            f"refusal p50 {ms(pct(t.refusal, 50))}, {r['api_calls']} API calls"
        )
        for problem in (r["problems"] + t.errors + r["violations"])[:20]:
            print("  PROBLEM:", problem)
            failed = True
        if r["handler_errors"]:
            print("  PROBLEM: handler errors:", r["handler_errors"])
            failed = True
        mean = statistics.fmean(t.avatar) if t.avatar else float("nan")
        print(f"  mean avatar latency {ms(mean)}")
    if args.markdown:
        print()
        print(markdown(base, runs))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
