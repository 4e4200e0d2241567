"""Provenance wiring: the worker's encoder records marks; verification tells the story."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from PIL import Image

from bot.config import Settings
from bot.jobs import Job, JobRequest, Owner, Route
from provenance.labelling import ImageVerifier, ResultEncoder, load_labeller
from provenance.marks import MarkRegistry
from tests.conftest import DATA

WHEN = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def avatar() -> Image.Image:
    with Image.open(DATA / "astronaut.jpg") as im:
        return im.convert("RGB").resize((512, 512))


def _job() -> Job:
    owner = Owner("web", "u1", "c1")
    return Job.from_request(JobRequest(owner, Route("main"), "oil", variants=1, seed=3))


async def test_encoder_labels_records_mark_and_verifier_tells_origin_after_resave(
    settings: Settings, redis_client: aioredis.Redis, key_prefix: str, avatar: Image.Image
) -> None:
    labeller = load_labeller(settings)
    loop = asyncio.get_running_loop()
    registry = MarkRegistry(redis_client, key_prefix, ttl_s=3600)
    encoder = ResultEncoder(labeller, registry=registry, loop=loop, clock=lambda: WHEN)

    result = await asyncio.to_thread(encoder, avatar, _job(), 3)
    assert result.mime == "image/png"
    assert (result.width, result.height, result.seed) == (512, 512, 3)
    marks = [k async for k in redis_client.scan_iter(match=f"{key_prefix}:mark:*")]
    assert len(marks) == 1
    assert 0 < await redis_client.ttl(marks[0]) <= 3600

    verifier = ImageVerifier(labeller, registry=registry, loop=loop)
    intact = await asyncio.to_thread(verifier, result.data)
    assert intact.intact
    assert intact.summary() == "ours and intact"
    assert intact.origin() == "made by this avatarbot instance on 2026-11-23 in style oil"

    # A chat app re-encodes it: the manifest is gone, the watermark and registry remain.
    with Image.open(io.BytesIO(result.data)) as im:
        buffer = io.BytesIO()
        im.convert("RGB").save(buffer, "JPEG", quality=85)
    resaved = await asyncio.to_thread(verifier, buffer.getvalue())
    assert resaved.ours
    assert not resaved.intact
    assert resaved.record is not None
    assert resaved.origin() == "made by this avatarbot instance on 2026-11-23 in style oil"
    assert any(line.startswith("C2PA manifest: absent") for line in resaved.lines())


def test_identity_and_key_are_created_once_and_reused(
    settings: Settings, avatar: Image.Image
) -> None:
    first = ResultEncoder(load_labeller(settings), fmt="jpeg").encode(avatar, "sketch", 1)
    assert first.mime == "image/jpeg"
    again = ImageVerifier(load_labeller(settings))(first.data)
    assert again.intact  # a second load signs and checks with the same identity


def test_another_instance_does_not_claim_our_image(
    settings: Settings, tmp_path: Path, avatar: Image.Image
) -> None:
    ours = ResultEncoder(load_labeller(settings)).encode(avatar, "sketch", 1)
    other_settings = settings.model_copy(update={"data_dir": tmp_path / "other"})
    verdict = ImageVerifier(load_labeller(other_settings))(ours.data)
    assert not verdict.ours
    assert verdict.summary() == "not made by this avatarbot instance"


async def test_verify_through_the_conversation_tells_origin(
    settings: Settings, redis_client: aioredis.Redis, key_prefix: str, avatar: Image.Image
) -> None:
    from tests.chat_stack import chat_stack, owner  # noqa: PLC0415

    labeller = load_labeller(settings)
    loop = asyncio.get_running_loop()
    registry = MarkRegistry(redis_client, key_prefix, ttl_s=3600)
    made = await asyncio.to_thread(
        ResultEncoder(labeller, registry=registry, loop=loop, clock=lambda: WHEN), avatar, _job(), 1
    )
    verifier = ImageVerifier(labeller, registry=registry, loop=loop)
    alice = owner("alice")
    async with chat_stack(settings, redis_client, verifier=verifier) as stack:
        await stack.conversation.text(alice, "/verify")
        (reply,) = await stack.conversation.image(alice, made.data)
        text = getattr(reply, "text", "")
        assert text.startswith("✅ I made this image")
        assert "It was made here on 2026-11-23, in the style 🖼️ Oil painting." in text

        await stack.conversation.text(alice, "/verify")
        with Image.open(DATA / "astronaut.jpg") as im:
            buffer = io.BytesIO()
            im.save(buffer, "PNG")
        (reply,) = await stack.conversation.image(alice, buffer.getvalue())
        assert getattr(reply, "text", "").startswith("❌ I didn't make this image")
