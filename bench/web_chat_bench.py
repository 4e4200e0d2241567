"""Web chat, upload -> avatar shown: what a person trying `make run` waits for.

Run from the repository root: `.venv/bin/python -m bench.web_chat_bench [--runs N] [--write]`.
`--write` replaces the "Web chat: upload → avatar" section of docs/benchmarks.md.

Real headless Chromium (Debian's /usr/bin/chromium through playwright) drives the real web
chat: it uploads tests/data/astronaut.jpg through the file input, clicks a style as soon
as the picker appears, and waits until the avatar image is decoded in the page. Behind it:
Redis (REDIS_URL, else an embedded one in a temporary directory), the queue, intake, the
conversation, the delivery pump and status tracker, and one CPU worker in the same
process and event loop (`make run` starts the worker as a separate process). Timings are
taken in Python around the browser actions (playwright's waits add a few ms). The
baseline row, measured in the same run, is a `fetch('/api/history')` round trip from the
page (HTTP + Redis, no image work).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import redis.asyncio as aioredis
from playwright.async_api import FilePayload, Page, async_playwright

from avatarbot.embedded_redis import EmbeddedRedis
from bench.report import write_section
from bot.config import load_settings
from tests.web_chat_server import CHROMIUM, CHROMIUM_ARGS, running_web_chat

ROOT = Path(__file__).resolve().parent.parent

SECTION = "## Web chat: upload → avatar"
UPLOAD = ROOT / "tests" / "data" / "astronaut.jpg"
STYLES = ("sketch", "cartoon")


def p50_p90(times: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(times, n=10, method="inclusive")
    return statistics.median(times), q[8]


async def one_avatar(page: Page, style: str, upload: bytes) -> tuple[float, float, str]:
    """(upload -> picker ms, upload -> avatar ms, job id) for one avatar."""
    pickers = await page.locator("[data-testid=msg-bot-picker]").count()
    avatars = await page.locator("[data-testid=avatar-image]").count()
    start = time.perf_counter()
    payload: FilePayload = {"name": "me.jpg", "mimeType": "image/jpeg", "buffer": upload}
    await page.set_input_files("[data-testid=file]", files=[payload])
    await page.locator("[data-testid=msg-bot-picker]").nth(pickers).wait_for()
    picker = time.perf_counter()
    await page.locator(f"[data-testid=style-{style}]").last.click()
    image = page.locator("[data-testid=avatar-image]").nth(avatars)
    await image.wait_for()
    await image.evaluate("i => i.decode()")
    shown = time.perf_counter()
    src = str(await image.get_attribute("src"))
    return (picker - start) * 1000, (shown - start) * 1000, src.split("/")[2]


async def measure(redis_url: str, runs: int) -> list[str]:
    settings = load_settings(
        {
            "REDIS_URL": redis_url,
            "AVATARBOT_KEY_PREFIX": f"bench-web-{uuid.uuid4().hex[:8]}",
            "AVATARBOT_WEB_PORT": "0",
            "AVATARBOT_DAILY_QUOTA": "100000",
            "AVATARBOT_WEB_UPLOADS_PER_MINUTE": "100000",
            "AVATARBOT_DATA_DIR": tempfile.mkdtemp(prefix="avatarbot-bench-"),
        }
    )
    upload = UPLOAD.read_bytes()
    redis = aioredis.Redis.from_url(redis_url)
    rows: list[str] = []
    try:
        async with (
            running_web_chat(settings, redis) as chat,
            async_playwright() as playwright,
        ):
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = await browser.new_context(base_url=chat.url)
            page = await context.new_page()
            await page.goto("/")
            await page.locator("[data-testid=presence].online").wait_for()
            baseline = []
            for _ in range(runs + 1):
                ms = await page.evaluate(
                    "async () => { const t = performance.now(); "
                    "await (await fetch('/api/history')).json(); return performance.now() - t; }"
                )
                baseline.append(float(ms))
            base_p50, base_p90 = p50_p90(baseline[1:])
            rows.append(
                f"| baseline: fetch /api/history from the page | {base_p50:.1f} ms "
                f"| {base_p90:.1f} ms | - | 1x |"
            )
            all_pickers: list[float] = []
            avatar_rows: list[str] = []
            for style in STYLES:
                await one_avatar(page, style, upload)  # warm-up
                to_avatar, generation = [], []
                for _ in range(runs):
                    picked, shown, job_id = await one_avatar(page, style, upload)
                    all_pickers.append(picked)
                    to_avatar.append(shown)
                    result = await chat.stack.queue.get_result(job_id)
                    if result is not None:
                        generation.append(result.elapsed_s * 1000)
                show50, show90 = p50_p90(to_avatar)
                gen50 = statistics.median(generation) if generation else float("nan")
                avatar_rows.append(
                    f"| **upload → {style} avatar shown** | **{show50:.0f} ms** "
                    f"| {show90:.0f} ms | {gen50:.0f} ms | {show50 / base_p50:.0f}x |"
                )
            pick50, pick90 = p50_p90(all_pickers)
            rows.append(
                f"| upload → style picker shown (intake; all {len(all_pickers)} runs) "
                f"| {pick50:.0f} ms | {pick90:.0f} ms | - | {pick50 / base_p50:.0f}x |"
            )
            rows += avatar_rows
            await browser.close()
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{settings.key_prefix}:*", count=1000)]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    url = os.environ.get("REDIS_URL")
    if url:
        rows = asyncio.run(measure(url, args.runs))
    else:
        with EmbeddedRedis(Path(tempfile.mkdtemp(prefix="avatarbot-bench-redis-"))) as server:
            rows = asyncio.run(measure(server.url, args.runs))
    version = subprocess.run(
        [CHROMIUM, "--version"], capture_output=True, text=True, check=False
    ).stdout.split()
    chromium = " ".join(version[:2]) or "Chromium"
    section = "\n".join(
        [
            SECTION,
            "",
            "`bench/web_chat_bench.py`: in real headless Chromium, upload "
            "tests/data/astronaut.jpg, click a style as soon as the picker appears, wait until "
            f"the avatar (512 px PNG) is decoded in the page; p50/p90 of {args.runs} runs per "
            "style after one warm-up. CPU backend, one worker in the same process as the web "
            "chat, Redis on localhost. The generation column is the worker's own time for the "
            "job (`JobResult.elapsed_s`); the rest is intake, the queue, delivery, the "
            "websocket push and the image download.",
            f"Machine: {os.cpu_count()}-core {platform.machine()}, Python "
            f"{platform.python_version()}, {chromium}; load average "
            f"{os.getloadavg()[0]:.1f} at the end (the machine is shared). "
            f"Measured {datetime.now(UTC):%Y-%m-%d}.",
            "",
            "| step | p50 | p90 | generation (p50) | ratio to baseline (p50) |",
            "|---|---:|---:|---:|---:|",
            *rows,
            "",
        ]
    )
    print(section)
    if args.write:
        write_section(section)


if __name__ == "__main__":
    main()
