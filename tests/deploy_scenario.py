"""What `make deploy-test` does with the deployment podman runs: drive it from outside.

deploy/podman/deploy-test.sh builds the image, plays deploy/podman with `podman kube
play` and runs this (`python -m tests.deploy_scenario WORKDIR`). Everything here talks
to the deployment the way an operator or a user would: the CLI (`avatarbot submit
--wait`) against the published Redis port, the web chat over HTTP and its websocket on
the published bot port, and `podman` for the cluster-level actions:

1. the probes of every container pass (`podman healthcheck run`); Redis runs with AOF;
2. jobs from the CLI and from web chat users are answered;
3. a burst of jobs, and the only worker is SIGKILLed while it holds some: the container
   restarts and the killed worker's jobs are taken over;
4. workers scaled from 1 to 3, another burst: all three workers generate;
5. a worker stopped with SIGTERM while it holds jobs finishes them and exits 0;
6. every job was answered exactly once: one avatar message (history) and one websocket
   push per web job, one result per CLI job, nothing left queued, pending or dead.

Exits 0 when every check passed; otherwise prints each failed check and exits 1.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
import yaml

from bot.jobs import JobStatus
from bot.queue import JobProducer, QueueConfig

BOT_URL = "http://127.0.0.1:18080"
REDIS_URL = "redis://127.0.0.1:16379/0"
NETWORK = "avatarbot-deploy-test"
PREFIX = "avatarbot"
BOT_NAME = "main"
SELFIE = Path(__file__).parent / "data" / "astronaut.jpg"
STYLES = ("cartoon", "watercolor", "oil", "comic", "sketch", "popart")
BURST = 18
"""Web chat users per burst (one job each): a few seconds of work for one CPU worker."""
WAIT_S = 180.0
STOP_GRACE_S = 60


class CheckFailed(AssertionError):
    """One check of the scenario failed; the message says which and why."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def say(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", flush=True)


STARTED = time.monotonic()


# --- podman ----------------------------------------------------------------------------


def podman(*args: str, check_rc: bool = True) -> str:
    done = subprocess.run(
        ["podman", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if check_rc and done.returncode != 0:
        raise CheckFailed(f"podman {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return done.stdout.strip()


def containers(prefix: str) -> list[str]:
    names = podman("ps", "--format", "{{.Names}}").split()
    return sorted(n for n in names if n.startswith(prefix) and not n.endswith("-infra"))


def worker_containers() -> list[str]:
    return [c for c in containers("worker") if c.endswith("-worker")]


def is_consumer_of(consumer: str, hostname: str) -> bool:
    """Whether a worker's consumer name (`[<kind>-]<host>-<pid>-<tag>`) is this pod's."""
    return re.search(rf"(^|-){re.escape(hostname)}-[0-9]+-[0-9a-f]+$", consumer) is not None


def healthy(container: str) -> bool:
    """The container's liveness probe, as podman converted it, passes right now."""
    done = subprocess.run(
        ["podman", "healthcheck", "run", container],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


METRICS_CMD = (
    "python3",
    "-c",
    "import urllib.request as u; print(u.urlopen('http://127.0.0.1:9100/metrics').read().decode())",
)
"""A worker's /metrics, read inside its pod (the worker's port is not published)."""


def worker_jobs_done(container: str) -> int:
    """The worker's own count of finished jobs (avatarbot_worker_jobs_done_total)."""
    lines = podman("exec", container, *METRICS_CMD).splitlines()
    prefix = "avatarbot_worker_jobs_done_total{"
    return int(sum(float(line.split()[-1]) for line in lines if line.startswith(prefix)))


# --- users -----------------------------------------------------------------------------


@dataclass
class WebUser:
    """One browser: its own cookie, websocket and job."""

    session: aiohttp.ClientSession
    ws: aiohttp.ClientWebSocketResponse
    job_id: str = ""
    avatar_pushes: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    listener: asyncio.Task[None] | None = None

    async def listen(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            message = json.loads(msg.data)["message"]
            if message["kind"] == "avatar":
                self.avatar_pushes[message["job_id"]] += 1
            elif message["kind"] == "failure":
                self.failures.append(message["text"])

    async def close(self) -> None:
        await self.ws.close()
        if self.listener is not None:
            await self.listener
        await self.session.close()


async def web_user(style: str) -> WebUser:
    """Open the web chat, send the selfie, pick a style: the job is queued."""
    session = aiohttp.ClientSession(
        BOT_URL, cookie_jar=aiohttp.CookieJar(unsafe=True)
    )  # unsafe: accept cookies from an IP address
    async with session.get("/api/history") as response:
        check(response.status == 200, f"GET /api/history: HTTP {response.status}")
    user = WebUser(session, await session.ws_connect("/api/ws"))
    user.listener = asyncio.create_task(user.listen())
    headers = {"Content-Type": "image/jpeg", "X-Filename": "selfie.jpg"}
    async with session.post("/api/selfie", data=SELFIE.read_bytes(), headers=headers) as r:
        kinds = [m["kind"] for m in (await r.json())["messages"]]
        check(r.status == 200 and "picker" in kinds, f"selfie upload: {r.status} {kinds}")
    async with session.post("/api/choose", json={"style_id": style, "variants": 1}) as r:
        queued = [m for m in (await r.json())["messages"] if m["kind"] == "queued"]
        check(r.status == 200 and len(queued) == 1, f"choose {style}: HTTP {r.status}")
    user.job_id = queued[0]["job_id"]
    return user


async def web_users(count: int, offset: int = 0) -> list[WebUser]:
    styles = [STYLES[(offset + i) % len(STYLES)] for i in range(count)]
    return list(await asyncio.gather(*(web_user(s) for s in styles)))


@dataclass
class CliJob:
    process: asyncio.subprocess.Process
    output: Path


async def cli_submit(work: Path, n: int, style: str) -> CliJob:
    """`avatarbot submit --wait` from this machine, as operator `deploy-test-<n>`."""
    output = work / f"cli-{n}.png"
    env = dict(
        os.environ,
        REDIS_URL=REDIS_URL,
        USER=f"deploy-test-{n}",  # one active job per user: a user per submit
        AVATARBOT_DATA_DIR=str(work / "cli-data"),
    )
    process = await asyncio.create_subprocess_exec(
        Path(sys.executable).parent / "avatarbot",
        *("submit", str(SELFIE), "--style", style, "--wait", "--timeout", str(WAIT_S)),
        *("-o", str(output)),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return CliJob(process, output)


async def cli_done(job: CliJob) -> str:
    stdout, stderr = await job.process.communicate()
    check(
        job.process.returncode == 0 and job.output.is_file(),
        f"avatarbot submit exit {job.process.returncode}: {stderr.decode().strip()[-300:]}",
    )
    check(job.output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{job.output} is not a PNG")
    return stdout.decode().split()[1]  # "job <id> queued: ..."


# --- waiting ---------------------------------------------------------------------------


async def eventually(
    what: str, probe: Callable[[], Awaitable[bool]], timeout_s: float = WAIT_S
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await probe():
            return
        await asyncio.sleep(0.5)
    raise CheckFailed(f"timed out after {timeout_s:.0f}s waiting for {what}")


async def bot_health() -> dict[str, Any]:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{BOT_URL}/healthz") as response,
        ):
            body: dict[str, Any] = await response.json()
            body["http"] = response.status
            return body
    except aiohttp.ClientError:
        return {"http": 0}


async def answered(users: list[WebUser]) -> None:
    async def all_pushed() -> bool:
        return all(u.avatar_pushes[u.job_id] >= 1 or u.failures for u in users)

    await eventually(f"{len(users)} web chat avatars", all_pushed)
    failed = [f for u in users for f in u.failures]
    check(not failed, f"web chat failures: {failed[:3]}")


# --- the scenario ----------------------------------------------------------------------


@dataclass
class Run:
    work: Path
    redis: aioredis.Redis
    queue: JobProducer
    web: list[WebUser] = field(default_factory=list)
    cli_jobs: list[str] = field(default_factory=list)
    cli_count: int = 0

    async def submit_cli(self, count: int) -> list[CliJob]:
        jobs = []
        for _ in range(count):
            self.cli_count += 1
            style = STYLES[self.cli_count % len(STYLES)]
            jobs.append(await cli_submit(self.work, self.cli_count, style))
        return jobs

    async def finish_cli(self, jobs: list[CliJob]) -> None:
        self.cli_jobs += await asyncio.gather(*(cli_done(j) for j in jobs))

    async def pending_by_consumer(self) -> dict[str, int]:
        summary = await self.redis.xpending(f"{PREFIX}:jobs", "workers")
        return {_text(c["name"]): int(c["pending"]) for c in summary.get("consumers") or []}


async def probes_pass(run: Run) -> None:
    await eventually("the bot's /healthz to be 200", _bot_ready, 120)
    for container in [*containers("redis"), *containers("bot"), *worker_containers()]:
        check(healthy(container), f"{container}: its liveness probe fails")
    aof = await run.redis.config_get("appendonly")
    check(aof.get("appendonly") == "yes", f"Redis runs without AOF: {aof}")
    async with aiohttp.ClientSession() as session, session.get(f"{BOT_URL}/metrics") as r:
        bot_metrics = await r.text()
    worker_metrics = podman("exec", worker_containers()[0], *METRICS_CMD)
    for series in ('avatarbot_jobs{state="queued"}', 'avatarbot_jobs{state="running"}'):
        check(series in bot_metrics and series in worker_metrics, f"no {series} on /metrics")
    say("probes pass in redis, bot and worker; Redis has AOF on; /metrics has the queue depth")


async def _bot_ready() -> bool:
    return bool((await bot_health())["http"] == 200)


async def first_jobs(run: Run) -> None:
    cli = await run.submit_cli(2)
    users = await web_users(3)
    run.web += users
    await run.finish_cli(cli)
    await answered(users)
    say("2 CLI jobs (submit --wait) and 3 web chat jobs answered")


async def kill_mid_run(run: Run) -> None:
    (worker,) = worker_containers()
    cli = await run.submit_cli(2)
    users = await web_users(BURST, offset=1)
    run.web += users
    host = podman("inspect", worker, "--format", "{{.Config.Hostname}}")

    async def holds_jobs() -> bool:
        pending = await run.pending_by_consumer()
        return any(is_consumer_of(name, host) and n for name, n in pending.items())

    await eventually(f"{worker} to hold jobs", holds_jobs, 60)
    pid = podman("inspect", worker, "--format", "{{.State.Pid}}")
    os.kill(int(pid), 9)
    say(f"SIGKILLed {worker} (pid {pid}) while it held jobs")

    async def restarted() -> bool:
        state = podman("inspect", worker, "--format", "{{.RestartCount}} {{.State.Status}}")
        return state.split()[0] != "0" and state.endswith("running") and healthy(worker)

    await eventually(f"{worker} to restart", restarted, 90)
    await run.finish_cli(cli)
    await answered(users)
    say(f"{worker} restarted; the burst of {BURST} web + 2 CLI jobs answered")


async def scale_to_three(run: Run) -> None:
    scaled = scaled_manifest(run.work)
    podman("kube", "play", "--network", NETWORK, str(scaled))

    async def three() -> bool:
        workers = worker_containers()
        return len(workers) == 3 and all(healthy(w) for w in workers)

    await eventually("3 healthy workers", three, 120)
    await eventually("3 live workers in /healthz", _three_live, 60)
    before = {w: worker_jobs_done(w) for w in worker_containers()}
    sampler = DepthSampler(run.redis)
    sampling = asyncio.create_task(sampler.run())
    cli = await run.submit_cli(2)
    users = await web_users(BURST * 2, offset=2)
    run.web += users
    await run.finish_cli(cli)
    await answered(users)
    sampling.cancel()
    say(sampler.summary())
    done = {w: worker_jobs_done(w) - before[w] for w in before}
    check(all(n > 0 for n in done.values()), f"not every worker generated: {done}")
    say(f"scaled to 3 workers; {BURST * 2} web + 2 CLI jobs answered; jobs per worker {done}")


@dataclass
class DepthSampler:
    """What the autoscaler could read, sampled while 3 workers drain a burst: the stream's
    length (queued + running) against the `workers` group's lag (XINFO GROUPS), which
    Redis reports as NULL when it cannot compute it."""

    redis: aioredis.Redis
    samples: list[tuple[int, int, int | None]] = field(default_factory=list)

    async def run(self) -> None:
        while True:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xlen(f"{PREFIX}:jobs")
                pipe.xinfo_groups(f"{PREFIX}:jobs")
                length, groups = await pipe.execute()
            group = next(g for g in groups if g["name"] == b"workers")
            self.samples.append((int(length), int(group["pending"]), group["lag"]))
            await asyncio.sleep(0.05)

    def summary(self) -> str:
        waiting = [(n, p, lag) for n, p, lag in self.samples if n > p]
        null = sum(lag is None for _, _, lag in waiting)
        under = sum(lag is not None and lag < n - p for n, p, lag in waiting)
        return (
            f"queue depth sampled {len(self.samples)}x: jobs waiting in {len(waiting)} samples;"
            f" there the group's lag was NULL {null}x and below the waiting jobs {under}x;"
            f" peak stream length {max((n for n, _, _ in self.samples), default=0)}"
        )


async def _three_live() -> bool:
    return bool((await bot_health()).get("workers") == 3)


def scaled_manifest(work: Path) -> Path:
    """Two more pods of the worker Deployment. `podman kube play` has no `scale`: the same
    template is played again as Deployment `worker-scaled` with 2 replicas."""
    documents = list(yaml.safe_load_all((work / "deploy.yaml").read_text()))
    worker = next(d for d in documents if _is(d, "Deployment", "worker"))
    config = next(d for d in documents if _is(d, "ConfigMap", "avatarbot-config"))
    worker["metadata"]["name"] = "worker-scaled"
    worker["spec"]["replicas"] = 2
    path = work / "scaled.yaml"
    path.write_text(yaml.safe_dump_all([config, worker], sort_keys=False))
    return path


def _is(document: dict[str, Any], kind: str, name: str) -> bool:
    return bool(document["kind"] == kind and document["metadata"]["name"] == name)


async def sigterm_mid_batch(run: Run) -> None:
    users = await web_users(BURST, offset=3)
    run.web += users
    hosts = {
        podman("inspect", w, "--format", "{{.Config.Hostname}}"): w for w in worker_containers()
    }
    held: dict[str, int] = {}

    async def someone_holds() -> bool:
        held.clear()
        held.update(await run.pending_by_consumer())
        return any(n for n in held.values())

    await eventually("a worker to hold jobs", someone_holds, 60)
    consumer = next(name for name, n in held.items() if n)
    container = next(c for h, c in hosts.items() if is_consumer_of(consumer, h))
    in_hand = await run.redis.xpending_range(f"{PREFIX}:jobs", "workers", "-", "+", 100, consumer)
    job_ids = [await _entry_job_id(run, _text(e["message_id"])) for e in in_hand]
    podman("stop", "-t", str(STOP_GRACE_S), container)
    code = podman("inspect", container, "--format", "{{.State.ExitCode}}")
    check(code == "0", f"{container} exited {code} on SIGTERM")
    await answered(users)
    for job_id in job_ids:
        job = await run.queue.get_job(job_id)
        check(job is not None and job.attempts == 1, f"SIGTERM: job {job_id} was generated again")
    say(f"SIGTERM: {container} finished its {len(job_ids)} job(s) in hand and exited 0")


async def _entry_job_id(run: Run, entry_id: str) -> str:
    entries: Any = await run.redis.xrange(f"{PREFIX}:jobs", entry_id, entry_id)
    ((_, fields),) = entries
    return _text(fields[b"job_id"])


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def exactly_once(run: Run) -> None:
    await asyncio.sleep(3)  # time for a duplicate delivery to show up, were there one
    for user in run.web:
        check(
            dict(user.avatar_pushes) == {user.job_id: 1},
            f"web job {user.job_id} pushes: {dict(user.avatar_pushes)}",
        )
        async with user.session.get("/api/history") as response:
            messages = (await response.json())["messages"]
        avatars = [m for m in messages if m["kind"] == "avatar"]
        check(len(avatars) == 1, f"web job {user.job_id}: {len(avatars)} avatar messages")
        async with user.session.get(avatars[0]["images"][0]["url"]) as response:
            body = await response.read()
            check(
                response.status == 200
                and body[:4] in (b"\x89PNG", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xe1"),
                f"web job {user.job_id}: image {response.status}",
            )
    attempts = []
    for job_id in [u.job_id for u in run.web] + run.cli_jobs:
        job = await run.queue.get_job(job_id)
        check(
            job is not None and job.status is JobStatus.DONE and job.delivered,
            f"job {job_id}: {job}",
        )
        attempts.append(job.attempts if job else 0)
    check(max(attempts) >= 2, "no job was taken over from the killed worker")
    await _queue_empty(run)
    say(
        f"exactly once: {len(run.web)} web + {len(run.cli_jobs)} CLI jobs, one answer each; "
        f"{sum(a > 1 for a in attempts)} generated again after the kill; queue empty"
    )


async def _queue_empty(run: Run) -> None:
    jobs = await run.redis.xlen(f"{PREFIX}:jobs")
    pending = (await run.redis.xpending(f"{PREFIX}:jobs", "workers"))["pending"]
    dead = await run.redis.xlen(f"{PREFIX}:dead")
    results = await run.redis.xlen(f"{PREFIX}:results:{BOT_NAME}")
    check(
        (jobs, pending, dead, results) == (0, 0, 0, 0),
        f"left in Redis: jobs {jobs}, pending {pending}, dead {dead}, results {results}",
    )


async def scenario(work: Path) -> None:
    redis = aioredis.Redis.from_url(REDIS_URL)
    run = Run(work, redis, JobProducer(redis, QueueConfig(prefix=PREFIX)))
    try:
        for step in (
            probes_pass,
            first_jobs,
            kill_mid_run,
            scale_to_three,
            sigterm_mid_batch,
            exactly_once,
        ):
            await step(run)
    finally:
        for user in run.web:
            await user.close()
        await redis.aclose()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.deploy_scenario WORKDIR", file=sys.stderr)
        return 2
    try:
        asyncio.run(scenario(Path(argv[0])))
    except CheckFailed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    say("all checks passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
