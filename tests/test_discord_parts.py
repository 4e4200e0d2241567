"""The Discord adapter's small parts on their own: fitting uploads, route data, log
scrubbing, rendering replies into messages."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
from PIL import Image

from adapters.discord.buttons import JobButton, make_view
from adapters.discord.outgoing import to_outgoing
from adapters.discord.redaction import REDACTED, TokenScrubbing, scrub
from adapters.discord.route import DiscordRoute, RouteDataError
from adapters.discord.uploads import FRAMING_BYTES, JPEG_QUALITIES, fit_images, to_jpeg
from bot.replies import (
    Action,
    AvatarImage,
    Button,
    Failure,
    OriginalFile,
    Queued,
    Reply,
    Text,
)


def noisy_png(seed: int, side: int = 512) -> AvatarImage:
    """A PNG that compresses badly (noise), like a detailed avatar only more so."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return AvatarImage(out.getvalue(), "image/png", side, side, seed)


@pytest.fixture(scope="module")
def four() -> list[AvatarImage]:
    return [noisy_png(i) for i in range(4)]


def test_images_that_fit_are_sent_untouched(four: list[AvatarImage]) -> None:
    total = sum(len(i.data) for i in four)
    fitted = fit_images(four, total + FRAMING_BYTES, "avatar-sketch-abc")
    assert [u.data for u in fitted.uploads] == [i.data for i in four]
    assert [u.filename for u in fitted.uploads] == [
        f"avatar-sketch-abc-{n}.png" for n in (1, 2, 3, 4)
    ]
    assert (fitted.dropped, fitted.reencoded) == (0, False)


def test_too_big_becomes_jpeg_then_fewer_variants(four: list[AvatarImage]) -> None:
    one_png = len(four[0].data)
    fitted = fit_images(four, one_png + FRAMING_BYTES, "a")  # room for one PNG's bytes
    assert fitted.reencoded
    assert fitted.dropped == 0
    assert sum(len(u.data) for u in fitted.uploads) <= one_png
    for upload in fitted.uploads:
        with Image.open(io.BytesIO(upload.data)) as image:
            assert (image.format, image.size) == ("JPEG", (512, 512))

    two_smallest = sum(len(to_jpeg(im.data, JPEG_QUALITIES[-1])) for im in four[:2])
    few = fit_images(four, two_smallest + FRAMING_BYTES, "a")
    assert (len(few.uploads), few.dropped) == (2, 2)  # the first two, at the lowest quality
    kept = fit_images(four, len(four[0].data) + FRAMING_BYTES, "a", reencode=False)
    assert [u.data for u in kept.uploads] == [four[0].data]  # originals: bytes untouched
    assert (kept.dropped, kept.reencoded) == (3, False)
    nothing = fit_images(four, FRAMING_BYTES + 100, "a")
    assert (len(nothing.uploads), nothing.dropped) == (0, 4)


def test_route_data_roundtrip_and_expiry() -> None:
    route = DiscordRoute(
        application_id=1,
        interaction_id=2,
        token="secret-interaction-token",  # noqa: S106  # a test value
        created_at=1000.0,
        user_id=3,
        channel_id=4,
        guild_id=None,
        upload_limit=8_000_000,
    )
    assert DiscordRoute.from_data(route.to_data()) == route
    assert route.in_dm
    assert "secret" not in repr(route)
    assert route.token_alive(1000.0 + 13 * 60)
    assert not route.token_alive(1000.0 + 14 * 60 + 1)  # a minute of margin
    with pytest.raises(RouteDataError) as bad:
        DiscordRoute.from_data({"interaction_token": "secret-interaction-token"})
    assert "secret" not in str(bad.value)


def test_interaction_tokens_are_scrubbed_from_library_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = "aW50ZXJhY3Rpb24Abc-_.123"  # noqa: S105  # a test value
    assert scrub(f"POST https://discord.com/api/v10/webhooks/42/{token}?wait=1") == (
        f"POST https://discord.com/api/v10/webhooks/42/{REDACTED}?wait=1"
    )
    assert token not in scrub(f"/interactions/7/{token}/callback")
    assert token not in scrub(f"Event: {{'token': '{token}', 'id': '1'}}")
    scrubbing = TokenScrubbing()
    scrubbing.install()
    try:
        with caplog.at_level(logging.DEBUG, logger="discord.http"):
            logging.getLogger("discord.http").debug("PATCH %s done", f"/webhooks/1/{token}")
    finally:
        scrubbing.remove()
    assert caplog.records
    assert token not in caplog.text
    assert REDACTED in caplog.text


def test_replies_become_messages_with_buttons(four: list[AvatarImage]) -> None:
    originals = [
        OriginalFile("job1", i, f"f{i}.png", image, caption="orig" if i == 0 else "")
        for i, image in enumerate(four[:2])
    ]
    replies: list[Reply] = [
        Text("note"),
        Queued(
            "job1",
            "✏️ Sketch",
            2,
            30.0,
            text="queued",
            buttons=(Button("x", Action.CANCEL, "job1"),),
        ),
        *originals,
        Failure("nope", ephemeral=True),
    ]
    out = to_outgoing(replies)
    assert [m.content for m in out] == ["note", "queued", "orig", "nope"]
    assert len(out[2].images) == 2  # consecutive originals share one message
    assert out[2].originals
    assert not any(m.public for m in out)  # only avatars are public
    view = make_view(out[1].buttons)
    assert view is not None
    assert view.timeout is None  # persistent
    [item] = view.children
    assert isinstance(item, JobButton)
    assert item.item.custom_id == "v1:cancel:job1"
    assert make_view(()) is None
