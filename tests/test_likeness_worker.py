"""The likeness check through the real worker and queue (real Redis): fake backends that
return the selfie's own face, another person's face or no face, the real dlib embedder.

Every delivered image carries its likeness in the job result, the worker's metrics and
its log; a backend that `rerolls` (as diffusion does) generates a low-likeness image
again with new seeds, within the tries and the time budget, and the best image is kept."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from PIL import Image

from bot.faces import RGBArray
from bot.jobs import JobResult, JobStatus
from bot.queue import Delivery, QueueConfig
from bot.styles import StyleCatalog
from generation.backends.base import GenerationRequest
from generation.face_identity import DlibFaceIdentity, FaceIdentity, Identity, Region
from generation.likeness_check import LikenessCheck, RerollPolicy, reroll_seed
from generation.worker import Worker
from tests.fake_backends import FaceBackend
from tests.people import selfie, selfie_image
from tests.queue_helpers import BOT, JobQueue, collect, request

SIZE = 256  # faces at this size are found at the embedder's first (fast) look
USER = "obama"
STRANGER = "hopper"


@pytest.fixture(scope="module")
def identity() -> DlibFaceIdentity:
    return DlibFaceIdentity(max_parallel=1)


@pytest.fixture(scope="module")
def catalog() -> StyleCatalog:
    return StyleCatalog.load()


@pytest.fixture
async def queue(redis_client: aioredis.Redis, key_prefix: str) -> JobQueue:
    q = JobQueue(redis_client, QueueConfig(prefix=key_prefix))
    await q.ensure_groups(BOT)
    return q


def stranger(_request: GenerationRequest, _seed: int) -> Image.Image:
    return selfie_image(STRANGER)


def own_face(request: GenerationRequest, _seed: int) -> Image.Image:
    return request.selfie


def no_face(_request: GenerationRequest, _seed: int) -> None:
    return None


async def one_delivery(queue: JobQueue, worker: Worker) -> Delivery:
    """Run `worker` until the one job queued is delivered; stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        [delivery] = await collect(queue, 1, timeout_s=60)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    return delivery


async def run_jobs(
    queue: JobQueue,
    catalog: StyleCatalog,
    backend: FaceBackend,
    identity: DlibFaceIdentity,
    policy: RerollPolicy,
    *,
    variants: int = 1,
    style: str = "sketch",
) -> tuple[Worker, list[JobResult]]:
    """One job of `USER`'s selfie through a running worker; its result."""
    receipt = await queue.enqueue(request(1, style=style, variants=variants), selfie(USER).jpeg)
    worker = Worker(
        queue, backend, catalog, output_size=SIZE, block_ms=100, reclaim_interval_s=0.5,
        likeness=LikenessCheck(identity, policy),
    )  # fmt: skip
    delivery = await one_delivery(queue, worker)
    assert delivery.outcome.job_id == receipt.job.id
    assert delivery.outcome.status is JobStatus.DONE, delivery.outcome
    stored = await queue.get_result(receipt.job.id)
    assert stored is not None
    assert delivery.result == stored
    return worker, [stored]


def metric(worker: Worker, prefix: str) -> float:
    [line] = [line for line in worker.metrics.render() if line.startswith(prefix)]
    return float(line.rsplit(" ", 1)[1])


async def test_own_face_is_scored_recorded_counted_and_logged(
    queue: JobQueue,
    catalog: StyleCatalog,
    identity: DlibFaceIdentity,
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = FaceBackend(own_face)
    with caplog.at_level(logging.INFO, logger="generation.likeness_check"):
        worker, [result] = await run_jobs(
            queue, catalog, backend, identity, RerollPolicy(), variants=2
        )
    assert len(backend.calls) == 1  # good enough at once: no re-roll
    for image in result.images:
        assert image.likeness is not None
        assert image.likeness.same_person, image.likeness
        assert image.tries == 1
    assert metric(worker, 'avatarbot_worker_likeness_score_count{style="sketch"}') == 2
    assert metric(worker, 'avatarbot_worker_likeness_score_bucket{style="sketch",le="0.5"}') == 0
    assert metric(worker, 'avatarbot_worker_likeness_tries_sum{style="sketch"}') == 2
    [line] = [r for r in caplog.records if "likeness" in r.getMessage()]
    assert line.getMessage().startswith(f"job {result.job_id} likeness ")
    assert getattr(line, "job_id", None) == result.job_id
    assert "tries 1, 1" in line.getMessage()


async def test_another_persons_face_is_rerolled_to_the_limit_and_the_best_kept(
    queue: JobQueue, catalog: StyleCatalog, identity: DlibFaceIdentity
) -> None:
    backend = FaceBackend(stranger)
    worker, [result] = await run_jobs(
        queue, catalog, backend, identity, RerollPolicy(max_tries=3, budget_s=60)
    )
    [image] = result.images
    assert image.likeness is not None
    assert image.likeness.score is not None
    assert not image.likeness.same_person  # the best of three strangers is still one
    assert image.tries == 3
    first = image.seed
    seeds = [call[0][1] for call in backend.calls]
    assert seeds == [(first,), (reroll_seed(first, 1),), (reroll_seed(first, 2),)]
    assert metric(worker, 'avatarbot_worker_likeness_tries_sum{style="sketch"}') == 3


async def test_a_reroll_that_finds_the_person_is_kept(
    queue: JobQueue, catalog: StyleCatalog, identity: DlibFaceIdentity
) -> None:
    firsts: set[int] = set()

    def first_a_stranger(r: GenerationRequest, seed: int) -> Image.Image:
        if not firsts:
            firsts.update(r.seeds)  # the job's own variant seeds
        return selfie_image(STRANGER) if seed in firsts and seed == max(firsts) else r.selfie

    backend = FaceBackend(first_a_stranger)
    _worker, [result] = await run_jobs(
        queue, catalog, backend, identity, RerollPolicy(max_tries=4, budget_s=60), variants=2
    )
    good, rerolled = sorted(result.images, key=lambda im: im.tries)
    assert (good.tries, rerolled.tries) == (1, 2)  # one re-roll sufficed; only the bad one
    assert good.seed == min(firsts)
    assert rerolled.seed == reroll_seed(max(firsts), 1)  # the re-rolled image was kept
    assert rerolled.likeness is not None
    assert rerolled.likeness.same_person
    assert [len(call[0][1]) for call in backend.calls] == [2, 1]


async def test_no_face_is_no_face_and_rerolled(
    queue: JobQueue, catalog: StyleCatalog, identity: DlibFaceIdentity
) -> None:
    backend = FaceBackend(no_face)
    worker, [result] = await run_jobs(
        queue, catalog, backend, identity, RerollPolicy(max_tries=2, budget_s=60)
    )
    [image] = result.images
    assert image.likeness is not None
    assert (image.likeness.distance, image.likeness.score) == (None, None)
    assert image.tries == 2
    assert metric(worker, 'avatarbot_worker_likeness_no_face_total{style="sketch"}') == 1
    scored = [x for x in worker.metrics.render() if "likeness_score_count" in x]
    assert scored == []  # no number was made up for it


async def test_deterministic_backend_only_reports(
    queue: JobQueue, catalog: StyleCatalog, identity: DlibFaceIdentity
) -> None:
    backend = FaceBackend(stranger, rerolls=False)  # like the CPU style engine
    _worker, [result] = await run_jobs(queue, catalog, backend, identity, RerollPolicy())
    [image] = result.images
    assert image.likeness is not None
    assert not image.likeness.same_person
    assert image.tries == 1
    assert len(backend.calls) == 1


async def test_time_budget_and_style_minimum_bound_the_rerolls(
    queue: JobQueue, catalog: StyleCatalog, identity: DlibFaceIdentity, tmp_path: Path
) -> None:
    spent = FaceBackend(stranger)
    _worker, [result] = await run_jobs(
        queue, catalog, spent, identity, RerollPolicy(max_tries=5, budget_s=0.0)
    )
    assert len(spent.calls) == 1  # no budget: no re-roll
    assert result.images[0].tries == 1

    lenient = tmp_path / "styles.toml"
    lenient.write_text(
        'min_likeness = 0.0\n[[style]]\nid = "sketch"\ntitle = "Sketch"\n'
        '[style.cpu]\neffect = "pencil_sketch"\n[style.diffusion]\nprompt = "a sketch"\n'
    )
    relaxed = StyleCatalog.load(lenient)
    content = FaceBackend(stranger)
    _worker, [result] = await run_jobs(
        queue, relaxed, content, identity, RerollPolicy(max_tries=5, budget_s=60)
    )
    assert len(content.calls) == 1  # any likeness satisfies a minimum of 0
    assert result.images[0].tries == 1


class BrokenIdentity(FaceIdentity):
    """An embedder that fails (a corrupt model file, a dlib error)."""

    def identify(self, rgb: RGBArray, *, near: Region | None = None) -> Identity | None:
        raise RuntimeError("embedder broke")


async def test_a_failing_embedder_never_costs_the_avatar(
    queue: JobQueue, catalog: StyleCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    backend = FaceBackend(own_face)
    receipt = await queue.enqueue(request(2), selfie(USER).jpeg)
    worker = Worker(
        queue, backend, catalog, output_size=SIZE, block_ms=100,
        likeness=LikenessCheck(BrokenIdentity()),
    )  # fmt: skip
    delivery = await one_delivery(queue, worker)
    assert delivery.outcome.job_id == receipt.job.id
    assert delivery.outcome.status is JobStatus.DONE
    assert delivery.result is not None
    assert [im.likeness for im in delivery.result.images] == [None]  # not measured
    assert any("likeness check failed" in r.getMessage() for r in caplog.records)
