"""What each `avatarbot` subcommand does. The parser and exit codes live in `avatarbot.cli`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from avatarbot.admin_command import admit_submit, cmd_admin
from avatarbot.embedded_redis import EmbeddedRedis
from bot.config import Settings
from bot.errors import AvatarbotError
from bot.jobs import JobRequest, JobStatus, Owner, ResultImage, Route, new_seed, variant_seeds
from bot.styles import StyleCatalog, UnknownStyleError

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from bot.queue import DeliveryQueue, QueueAdmin
    from provenance.labelling import Verification

log = logging.getLogger("avatarbot")


#: How long a one-shot command (queue, submit, verify, admin...) waits for Redis to answer
#: (it may be restarting) before it says it cannot reach it. Services wait a minute.
REDIS_WAIT_S = 2.0


class InputError(AvatarbotError):
    """A file or argument the user gave is unusable (exit code 2)."""

    exit_code = 2


def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    commands: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
        "styles": cmd_styles,
        "generate": cmd_generate,
        "worker": cmd_worker,
        "bot": cmd_bot,
        "run": cmd_run,
        "submit": cmd_submit,
        "queue": cmd_queue,
        "dead-letters": cmd_dead_letters,
        "previews": cmd_previews,
        "verify": cmd_verify,
        "admin": cmd_admin,
        "likeness": cmd_likeness,
    }
    return commands[args.command](args, settings)


# --- helpers -----------------------------------------------------------------


def _catalog(settings: Settings) -> StyleCatalog:
    return StyleCatalog.load(settings.styles_file)


def _style(catalog: StyleCatalog, style_id: str) -> None:
    if style_id not in catalog:
        raise UnknownStyleError(
            f"unknown style {style_id!r}",
            user_message=f"unknown style {style_id!r}; choose one of: {', '.join(catalog.ids)}",
        )


def _read_input(path: Path, limit: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > limit:
            raise InputError(
                f"{path} is {size} bytes",
                user_message=f"{path} is too large: {size:,} bytes, over the "
                f"{limit / 2**20:g} MB limit",
            )
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(str(path), user_message=f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(str(path), user_message=f"{path} is a directory, not an image") from None
    except PermissionError:
        raise InputError(str(path), user_message=f"{path}: permission denied") from None


def _output_paths(output: Path, count: int) -> list[Path]:
    if output.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise InputError(
            str(output), user_message=f"{output}: the output must end in .png, .jpg or .jpeg"
        )
    if count == 1:
        return [output]
    return [output.with_name(f"{output.stem}-{i}{output.suffix}") for i in range(1, count + 1)]


def _write_outputs(paths: list[Path], blobs: list[bytes]) -> None:
    for path, blob in zip(paths, blobs, strict=True):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(blob)
        except OSError as exc:
            raise InputError(
                str(path), user_message=f"cannot write {path}: {exc.strerror}"
            ) from None
        print(path)


@contextlib.contextmanager
def redis_url_for(settings: Settings) -> Iterator[str]:
    """REDIS_URL when set; otherwise the embedded Redis (started or attached) in the data dir."""
    if settings.redis_url:
        yield settings.redis_url
        return
    with EmbeddedRedis(settings.data_dir, maxmemory_mb=settings.redis_maxmemory_mb) as server:
        yield server.url


# --- commands ------------------------------------------------------------------


def cmd_styles(args: argparse.Namespace, settings: Settings) -> int:
    for style in _catalog(settings):
        print(f"{style.id:<12} {style.emoji}  {style.title:<16} {style.description}")
    return 0


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    from avatarbot.wiring import build_intake  # noqa: PLC0415

    catalog = _catalog(settings)
    _style(catalog, args.style)
    paths = _output_paths(args.output, args.variants)
    data = _read_input(args.selfie, settings.max_upload_bytes)
    selfie = build_intake(settings, preload=False).process(data)
    # Imported once the input is known good: bad input is refused without loading them.
    from bot.selfie import load_selfie  # noqa: PLC0415
    from generation.backends import backend_from_settings  # noqa: PLC0415
    from generation.backends.base import GenerationError, GenerationRequest  # noqa: PLC0415
    from provenance.labelling import ResultEncoder, load_labeller  # noqa: PLC0415

    backend = backend_from_settings(settings, catalog)
    seed = args.seed if args.seed is not None else new_seed()
    request = GenerationRequest(
        key="cli",
        selfie=load_selfie(selfie.jpeg),
        style=catalog.get(args.style),
        seeds=tuple(variant_seeds(seed, args.variants)),
        size=settings.output_size,
    )
    (output,) = backend.generate([request])
    if isinstance(output, GenerationError):
        raise output
    encoder = ResultEncoder(
        load_labeller(settings), fmt="png" if paths[0].suffix.lower() == ".png" else "jpeg"
    )
    blobs = [encoder.encode(img.image, args.style, img.seed).data for img in output.images]
    _write_outputs(paths, blobs)
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from avatarbot.worker_process import run_worker  # noqa: PLC0415

    if args.parent_pid is not None:
        from avatarbot.parent_watch import exit_with_parent  # noqa: PLC0415

        exit_with_parent(args.parent_pid)

    with redis_url_for(settings) as url:
        return run_worker(settings.model_copy(update={"redis_url": url}))


def cmd_bot(args: argparse.Namespace, settings: Settings) -> int:
    from avatarbot.bot_process import run_bot  # noqa: PLC0415

    with redis_url_for(settings) as url:
        return asyncio.run(run_bot(settings.model_copy(update={"redis_url": url})))


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Everything on one machine: Redis (embedded if needed), workers, the chat adapters."""
    from avatarbot.bot_process import run_bot  # noqa: PLC0415

    with (
        redis_url_for(settings) as url,
        _worker_processes(url, settings.workers, settings.worker_health_port),
    ):
        return asyncio.run(run_bot(settings.model_copy(update={"redis_url": url})))


@contextlib.contextmanager
def _worker_processes(
    redis_url: str, count: int, health_port: int = 0
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`count` worker processes; with a health port, worker i serves it on port + i.

    Each is told this process's pid: it ends when this process is gone, killed or not
    (`avatarbot.parent_watch`). Started from the calling thread, which must outlive them.
    """
    argv = [sys.executable, "-m", "avatarbot.cli", "worker", "--parent-pid", str(os.getpid())]
    procs = []
    for i in range(count):
        env = dict(os.environ, REDIS_URL=redis_url)
        if health_port:
            env["AVATARBOT_WORKER_HEALTH_PORT"] = str(health_port + i)
        procs.append(
            subprocess.Popen(  # noqa: S603  # our own interpreter and module
                argv,
                env=env,
                start_new_session=True,  # Ctrl-C reaches us; we stop the workers in order
            )
        )
    try:
        yield procs
    finally:
        _stop_workers(procs)


def _stop_workers(procs: list[subprocess.Popen[bytes]], timeout_s: float = 30) -> None:
    """SIGTERM (finish the batch in hand, then exit); SIGKILL what outlasts `timeout_s`."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def cmd_submit(args: argparse.Namespace, settings: Settings) -> int:
    from avatarbot.wiring import build_intake  # noqa: PLC0415

    catalog = _catalog(settings)
    _style(catalog, args.style)
    paths = _output_paths(args.output, args.variants) if args.output else []
    if args.output and not args.wait:
        raise InputError("-o without --wait", user_message="-o/--output needs --wait")
    data = _read_input(args.selfie, settings.max_upload_bytes)
    selfie = build_intake(settings, preload=False).process(data)
    request = JobRequest(
        owner=Owner(platform="cli", user_id=getpass.getuser(), chat_id="cli"),
        route=Route(bot=f"cli-{secrets.token_hex(6)}"),
        style_id=args.style,
        variants=args.variants,
        seed=args.seed,
    )
    with redis_url_for(settings) as url:
        return asyncio.run(
            _submit(
                settings,
                url,
                request,
                selfie.jpeg,
                wait=args.wait,
                wait_s=args.timeout,
                paths=paths,
            )
        )


@contextlib.asynccontextmanager
async def redis_session(url: str) -> AsyncIterator[aioredis.Redis]:
    """A client of the Redis at `url` for one command. Out of reach, at first or midway,
    it is a `RedisUnavailableError` naming the URL (password hidden) and why; the retries
    while waiting for it are logged at INFO only (the terminal shows the one error line)."""
    from redis.exceptions import ConnectionError as RedisConnectionError  # noqa: PLC0415
    from redis.exceptions import TimeoutError as RedisTimeoutError  # noqa: PLC0415

    from bot.redis_connection import (  # noqa: PLC0415
        CONNECTION_ERRORS,
        RedisUnavailableError,
        connect,
        connection_problem,
    )

    redis = await connect(url, wait_s=REDIS_WAIT_S, retry_log_level=logging.INFO)
    try:
        yield redis
    except (RedisConnectionError, RedisTimeoutError) as exc:  # lost midway
        raise RedisUnavailableError(url, connection_problem(exc)) from exc
    finally:
        with contextlib.suppress(*CONNECTION_ERRORS):
            await redis.aclose()


async def _submit(
    settings: Settings,
    url: str,
    request: JobRequest,
    selfie_jpeg: bytes,
    *,
    wait: bool,
    wait_s: float,
    paths: list[Path],
) -> int:
    from avatarbot.wiring import build_queue  # noqa: PLC0415
    from bot.queue import DeliveryQueue, JobProducer  # noqa: PLC0415

    async with redis_session(url) as redis:
        queue = build_queue(settings, redis, JobProducer)
        await queue.ensure_groups()
        outcomes = DeliveryQueue.sharing(queue)
        quota = await admit_submit(redis, settings, request.owner, request.variants)  # as a chat
        receipt = await queue.enqueue(request, selfie_jpeg, quota=quota)
        print(f"job {receipt.job.id} queued: position {receipt.position}, ETA {receipt.eta_s:.0f}s")
        if not wait:
            return 0
        try:
            images = await _await_result(outcomes, request, receipt.job.id, wait_s)
        finally:
            await outcomes.drop_results_stream(request.route.bot)
        if paths:
            _write_outputs(paths, [im.data for im in images])
        else:
            print(f"job {receipt.job.id} done: {len(images)} image(s)")
        return 0


async def _await_result(
    outcomes: DeliveryQueue, request: JobRequest, job_id: str, wait_s: float
) -> tuple[ResultImage, ...]:
    """The images of job `job_id`, read from the route's results within `wait_s`."""
    from avatarbot.wiring import consumer_name  # noqa: PLC0415

    consumer = consumer_name("cli")
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        for delivery in await outcomes.read_outcomes(request.route.bot, consumer, 10, 1000):
            if delivery.outcome.job_id != job_id:
                continue
            await outcomes.mark_delivered(request.route.bot, delivery)
            if delivery.outcome.status is not JobStatus.DONE or delivery.result is None:
                reason = delivery.outcome.failure
                raise AvatarbotError(
                    f"job failed: {reason}",
                    user_message=f"job {job_id} {delivery.outcome.status.value}"
                    + (f" ({reason.value})" if reason else ""),
                )
            return delivery.result.images
    raise AvatarbotError("timeout", user_message=f"no result within {wait_s:.0f}s (job {job_id})")


def _with_queue(settings: Settings, action: Callable[[QueueAdmin], Awaitable[None]]) -> int:
    """Run an operator's `action` against the queue (REDIS_URL, or the embedded Redis)."""
    from avatarbot.wiring import build_queue  # noqa: PLC0415
    from bot.queue import QueueAdmin  # noqa: PLC0415

    async def run(url: str) -> int:
        async with redis_session(url) as redis:
            queue = build_queue(settings, redis, QueueAdmin)
            await queue.ensure_groups()
            await action(queue)
        return 0

    with redis_url_for(settings) as url:
        return asyncio.run(run(url))


def cmd_queue(args: argparse.Namespace, settings: Settings) -> int:
    async def show(queue: QueueAdmin) -> None:
        print((await queue.stats()).render())

    return _with_queue(settings, show)


def cmd_dead_letters(args: argparse.Namespace, settings: Settings) -> int:
    async def act(queue: QueueAdmin) -> None:
        if args.action == "list":
            letters = await queue.dead_letters(100)
            for letter in letters:
                print(letter.render())
            print(f"{len(letters)} dead letter(s)")
        elif args.action == "retry":
            print(f"requeued {await queue.retry_dead(args.entry)} job(s)")
        else:
            print(f"purged {await queue.purge_dead()} dead letter(s)")

    return _with_queue(settings, act)


def cmd_previews(args: argparse.Namespace, settings: Settings) -> int:
    from importlib import resources  # noqa: PLC0415

    from PIL import Image  # noqa: PLC0415

    from generation.backends import load_backend  # noqa: PLC0415
    from generation.previews import render_previews  # noqa: PLC0415

    catalog = _catalog(settings)
    sample_path = Path(str(resources.files("bot").joinpath("data/sample_face.jpg")))
    out_dir = Path(str(resources.files("bot").joinpath("data/previews")))
    with Image.open(sample_path) as sample:
        written = render_previews(catalog, load_backend("cpu"), sample.convert("RGB"), out_dir)
    for path in written:
        print(path)
    return 0


#: `avatarbot verify`'s exit codes (2, bad input, is every command's; see cli.VERIFY_EPILOG).
VERIFY_INTACT = 0
VERIFY_NOT_OURS = 1
VERIFY_ALTERED = 3


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0: ours and intact; 1: not ours; 2: bad input; 3: ours, but altered or
    re-encoded since (manifest gone or broken, watermark found)."""
    data = _read_input(args.image, settings.max_upload_bytes)
    verification = asyncio.run(_verify(settings, data))
    print(verification.describe())
    if verification.intact:
        return VERIFY_INTACT
    return VERIFY_ALTERED if verification.ours else VERIFY_NOT_OURS


async def _verify(settings: Settings, data: bytes) -> Verification:
    from avatarbot.wiring import load_verifier  # noqa: PLC0415
    from bot.redis_connection import RedisUnavailableError, connect  # noqa: PLC0415

    url = settings.redis_url
    if url is None:  # look in the embedded Redis only if it is running; never start one
        embedded = EmbeddedRedis(settings.data_dir)
        url = embedded.url if embedded.is_running() else None
    redis = None
    if url is not None:
        try:
            redis = await connect(url, wait_s=REDIS_WAIT_S, retry_log_level=logging.INFO)
        except RedisUnavailableError as exc:
            log.warning(
                "%s: checking the file alone, without the mark registry", exc.operator_message
            )
    try:
        verifier = await load_verifier(settings, redis)
        return await asyncio.to_thread(verifier, data)
    finally:
        if redis is not None:
            await redis.aclose()


def cmd_likeness(args: argparse.Namespace, settings: Settings) -> int:
    """Print how much IMAGE looks like the person in SELFIE (exit 2: unusable input).

    The selfie goes through the bot's intake (one face, square crop), as a user's would;
    the image is decoded as safely and scored as the worker scores an avatar."""
    import numpy as np  # noqa: PLC0415

    from bot.faces import DlibHogDetector  # noqa: PLC0415
    from bot.selfie import (  # noqa: PLC0415
        IntakeError,
        IntakeLimits,
        SelfieIntake,
        decode_image,
        load_selfie,
    )

    limits = IntakeLimits(max_bytes=settings.max_upload_bytes)
    selfie_data = _read_input(args.selfie, settings.max_upload_bytes)
    image_data = _read_input(args.image, settings.max_upload_bytes)
    intake = SelfieIntake(DlibHogDetector(preload=False), limits)
    try:
        selfie = load_selfie(intake.process(selfie_data).jpeg)
    except IntakeError as exc:
        raise InputError(str(exc), user_message=f"{args.selfie}: {exc.user_message}") from None
    try:
        image = decode_image(image_data, limits).convert("RGB")
    except IntakeError as exc:
        raise InputError(str(exc), user_message=f"{args.image}: {exc.user_message}") from None
    # Once both inputs are known good: bad input is refused without loading the models.
    from generation.face_identity import DlibFaceIdentity  # noqa: PLC0415  # loads dlib models

    identity = DlibFaceIdentity(max_parallel=1)
    reference = identity.identify(np.asarray(selfie))
    if reference is None:  # intake found one; the embedder's detector looks at a small copy
        raise InputError("no face", user_message=f"{args.selfie}: no face found to compare")
    likeness = identity.likeness(reference, np.asarray(image))
    if likeness.distance is None:
        print(f"no face found in {args.image}")
    else:
        verdict = "the same person" if likeness.same_person else "not the same person"
        print(f"likeness {likeness.percent} (distance {likeness.distance:.3f}): {verdict}")
    return 0
