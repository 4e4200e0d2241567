"""A pixel-bomb flood against a real `avatarbot bot` process: what it costs the process.

Run from the repository root: `.venv/bin/python -m bench.pixel_bomb_bench` (a Redis on
127.0.0.1:6379, or REDIS_URL). Starts the bot with the web chat on a free port, then
`--clients` clients sharing one cookie post a plain-colour 7000 x 7000 PNG (~157 KB, 147 MB
of pixels) to /api/selfie as fast as they are answered, for `--seconds`. Reports the
answers by status and the bot process's memory from /proc: the peak resident set
(VmHWM), and the resident set once the flood is over.

Scenarios: the shipped defaults (the per-identity upload limit answers most posts 429
before their body is read), and the rate limits lifted, which leaves the decode budget
alone between the flood and the process's memory (AVATARBOT_INTAKE_MEMORY_MB, 1024).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

from tests.bombs import plain_png
from tests.bot_process import BotProcess, process_env, start_bot, stop, stopped_at_exit

LIFTED = {
    "AVATARBOT_WEB_UPLOADS_PER_MINUTE": "100000",
    "AVATARBOT_WEB_UPLOADS_PER_IP_MINUTE": "100000",
}
DEFAULTS = {  # process_env lifts them for tests; put the shipped values back
    "AVATARBOT_WEB_UPLOADS_PER_MINUTE": "6",
    "AVATARBOT_WEB_UPLOADS_PER_IP_MINUTE": "30",
    "AVATARBOT_WEB_IDENTITIES_PER_IP_DAY": "20",
}


async def healthy(bot: BotProcess) -> None:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(bot.url + "/") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if bot.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the bot did not start:\n" + bot.log())
            await asyncio.sleep(0.2)


async def flood(
    bot: BotProcess, clients: int, seconds: float, bomb: bytes
) -> collections.Counter[int]:
    answers: collections.Counter[int] = collections.Counter()
    jar = aiohttp.CookieJar(unsafe=True)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(cookie_jar=jar, timeout=timeout) as http:
        async with http.get(bot.url + "/") as page:  # one cookie for every client
            assert page.status == 200
        end = time.monotonic() + seconds

        async def client() -> None:
            while time.monotonic() < end:
                try:
                    async with http.post(
                        bot.url + "/api/selfie", data=bomb, headers={"Content-Type": "image/png"}
                    ) as response:
                        await response.read()
                        answers[response.status] += 1
                except aiohttp.ClientError:
                    answers[0] += 1

        await asyncio.gather(*(client() for _ in range(clients)))
    return answers


async def scenario(name: str, env: dict[str, str], clients: int, seconds: float) -> str:
    bomb = plain_png(7000)
    with tempfile.TemporaryDirectory(prefix="avatarbot-bomb-") as tmp:
        bot = start_bot(
            env | {"AVATARBOT_DATA_DIR": str(Path(tmp) / "data")}, Path(tmp) / "bot.log"
        )
        with stopped_at_exit(bot.proc):
            await healthy(bot)
            before = bot.memory_kb()["VmRSS"] / 1024
            started = time.monotonic()
            answers = await flood(bot, clients, seconds, bomb)
            wall = time.monotonic() - started
            await asyncio.sleep(2)
            memory = bot.memory_kb()
            await asyncio.to_thread(stop, bot.proc)
    counts = " ".join(f"{status or 'err'}:{n}" for status, n in sorted(answers.items()))
    return (
        f"| {name} | {clients} | {wall:.0f} s | {counts} | {before:.0f} | "
        f"{memory['VmHWM'] / 1024:.0f} | {memory['VmRSS'] / 1024:.0f} |"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=25)
    args = parser.parse_args()
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    base = process_env(redis_url, f"bench-bomb-{uuid.uuid4().hex[:8]}", Path("unused"))
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    size = len(plain_png(7000))
    print(f"{args.clients} clients on one cookie, a 7000 x 7000 plain PNG of {size} bytes")
    print(
        "\n| Scenario | Clients | Flood | Answers (status:count) | RSS before (MB) | "
        "Peak RSS (MB) | RSS after (MB) |"
    )
    print("|---|---:|---:|---|---:|---:|---:|")
    print(await scenario("shipped defaults", base | DEFAULTS, args.clients, args.seconds))
    print(await scenario("rate limits lifted", base | LIFTED, args.clients, args.seconds))


if __name__ == "__main__":
    asyncio.run(main())
