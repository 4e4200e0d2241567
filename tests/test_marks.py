"""The mark registry on a real Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import redis.asyncio as aioredis

from provenance.marks import MarkIdCollisionError, MarkRegistry

CREATED = datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)


async def test_record_then_lookup(redis_client: aioredis.Redis, key_prefix: str) -> None:
    registry = MarkRegistry(redis_client, key_prefix)
    local = CREATED.astimezone(timezone(timedelta(hours=2)))
    await registry.record("0123456789ab", "pop-art", local)
    record = await registry.lookup("0123456789ab")
    assert record is not None
    assert (record.mark_id, record.style_id, record.created_at) == (
        "0123456789ab",
        "pop-art",
        CREATED,
    )
    assert await registry.lookup("ba9876543210") is None


async def test_records_expire_and_stay_under_the_prefix(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    registry = MarkRegistry(redis_client, key_prefix, ttl_s=3600)
    await registry.record("00000000abcd", "sketch", CREATED)
    keys = [key async for key in redis_client.scan_iter(match=f"{key_prefix}:*")]
    assert keys == [f"{key_prefix}:mark:00000000abcd".encode()]
    assert 3500 < await redis_client.ttl(keys[0]) <= 3600
    stored = await redis_client.get(keys[0])
    assert stored == b"2026-05-04T03:02:01+00:00|sketch"  # a time and a style, nothing else


async def test_a_taken_mark_id_is_a_collision(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    registry = MarkRegistry(redis_client, key_prefix)
    await registry.record("feedfacecafe", "oil", CREATED)
    with pytest.raises(MarkIdCollisionError) as caught:
        await registry.record("feedfacecafe", "cartoon", CREATED)
    assert caught.value.mark_id == "feedfacecafe"
    record = await registry.lookup("feedfacecafe")
    assert record is not None
    assert record.style_id == "oil"


async def test_bad_input_is_rejected(redis_client: aioredis.Redis, key_prefix: str) -> None:
    registry = MarkRegistry(redis_client, key_prefix)
    with pytest.raises(ValueError, match="hex"):
        await registry.lookup("not-a-mark")
    with pytest.raises(ValueError, match="timezone"):
        await registry.record("0123456789ab", "oil", datetime(2026, 1, 1))
