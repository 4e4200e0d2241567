"""DlibHogDetector on real images: where it finds faces, what it ignores, how it scales."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from PIL import Image

from bot.faces import DlibHogDetector, FaceBox
from tests.hostile import astronaut

# Where dlib's HOG detector puts the astronaut's face in the 512 px original.
FACE_512 = FaceBox(left=179, top=83, width=88, height=88, score=0.0)


@pytest.fixture(scope="module")
def detector() -> DlibHogDetector:
    return DlibHogDetector()


def rgb(image: Image.Image) -> np.ndarray[tuple[int, int, int], np.dtype[np.uint8]]:
    return np.asarray(image.convert("RGB"))


def assert_near(box: FaceBox, expected: FaceBox, tolerance: float) -> None:
    for got, want in zip(
        (box.left, box.top, box.width, box.height),
        (expected.left, expected.top, expected.width, expected.height),
        strict=True,
    ):
        assert abs(got - want) <= tolerance, (box, expected)


def test_facebox_geometry() -> None:
    box = FaceBox(left=10, top=20, width=30, height=40, score=1.5)
    assert (box.right, box.bottom, box.size) == (40, 60, 40)
    assert box.center == (25.0, 40.0)
    assert box.scaled(2) == FaceBox(20, 40, 60, 80, 1.5)
    assert box.translated(-15, 5) == FaceBox(-5, 25, 30, 40, 1.5)
    assert FaceBox(-5, -5, 20, 20, 1.0).clipped(12, 100) == FaceBox(0, 0, 12, 15, 1.0)


def test_finds_the_astronaut(detector: DlibHogDetector) -> None:
    faces = detector.detect(rgb(astronaut()))
    assert len(faces) == 1
    assert_near(faces[0], FACE_512, tolerance=4)
    assert faces[0].score > 1.0


def test_threshold_drops_the_textured_patch() -> None:
    """At threshold 0 dlib also reports a ~0.1 'face' on the suit; the default drops it."""
    image = rgb(astronaut())
    permissive = DlibHogDetector(threshold=0.0).detect(image)
    assert len(permissive) == 2
    assert permissive[0].score > permissive[1].score  # best first
    assert permissive[1].score < 0.2
    assert permissive[1].top > 300  # the patch is on the suit, below the face
    assert len(DlibHogDetector().detect(image)) == 1


def test_large_photo_boxes_map_back(detector: DlibHogDetector) -> None:
    """A 3000 px photo is searched downscaled; the box comes back in full-size pixels."""
    faces = detector.detect(rgb(astronaut().resize((3000, 3000), Image.Resampling.BILINEAR)))
    assert len(faces) == 1
    # dlib's pyramid quantises box size, so compare the centre and the size loosely.
    expected = FACE_512.scaled(3000 / 512)
    (x, y), (ex, ey) = faces[0].center, expected.center
    assert abs(x - ex) < 0.03 * 3000
    assert abs(y - ey) < 0.03 * 3000
    assert 0.8 < faces[0].size / expected.size < 1.25


def test_small_image_is_upsampled(detector: DlibHogDetector) -> None:
    """At 256 px the face is ~44 px, under the 80 px HOG window: found by upsampling."""
    faces = detector.detect(rgb(astronaut().resize((256, 256), Image.Resampling.LANCZOS)))
    assert len(faces) == 1
    assert_near(faces[0], FACE_512.scaled(0.5), tolerance=4)


def test_far_face_found_by_second_pass(detector: DlibHogDetector) -> None:
    """A ~65 px face on a 1200 px canvas is invisible at 640 px, found by the thorough pass."""
    canvas = Image.new("RGB", (1200, 1200), (128, 128, 128))
    canvas.paste(astronaut().resize((380, 380), Image.Resampling.LANCZOS), (410, 300))
    faces = detector.detect(rgb(canvas))
    assert len(faces) == 1
    expected = FACE_512.scaled(380 / 512).translated(410, 300)
    assert_near(faces[0], expected, tolerance=8)


@pytest.mark.parametrize("kind", ["noise", "gradient"])
def test_no_face_in_noise_or_gradient(detector: DlibHogDetector, kind: str) -> None:
    if kind == "noise":
        image = np.random.default_rng(3).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    else:
        ramp = np.linspace(0, 255, 640, dtype=np.float32)
        image = np.broadcast_to(ramp[None, :, None], (480, 640, 3)).astype(np.uint8)
    assert detector.detect(image) == []


def test_rejects_non_rgb_arrays(detector: DlibHogDetector) -> None:
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        detector.detect(np.zeros((64, 64), dtype=np.uint8))
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        detector.detect(np.zeros((64, 64, 3), dtype=np.float32))


def test_rejects_inconsistent_sizes() -> None:
    with pytest.raises(ValueError, match="fast_side"):
        DlibHogDetector(fast_side=800, thorough_side=400)


async def test_concurrent_calls_from_threads(detector: DlibHogDetector) -> None:
    """The bot calls detect through asyncio.to_thread; concurrent calls agree."""
    image = rgb(astronaut())
    results = await asyncio.gather(*(asyncio.to_thread(detector.detect, image) for _ in range(4)))
    assert all(faces == results[0] for faces in results)
    assert len(results[0]) == 1


def test_concurrent_detection_uses_a_bounded_pool_and_agrees_with_sequential() -> None:
    """A burst of selfies is detected on several threads at once (dlib releases the GIL):
    each call borrows its own detector, at most `max_parallel` exist, results are the same."""
    import concurrent.futures  # noqa: PLC0415

    detector = DlibHogDetector(max_parallel=2)
    photo = rgb(astronaut())
    expected = detector.detect(photo)
    first, second = detector._borrow(), detector._borrow()  # both busy: a second is made
    assert first is not second
    assert detector.detectors == 2
    detector._idle.put(first)
    detector._idle.put(second)
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: detector.detect(photo), range(12)))
    assert all(r == expected for r in results)
    assert detector.detectors == 2  # never more than max_parallel


@pytest.mark.parametrize("side", [256, 512, 3000], ids=["upsampled", "as-is", "shrunk"])
@pytest.mark.parametrize("quarter_turns", [1, 2, 3])
def test_quick_look_at_a_turned_photo_gives_boxes_in_the_turned_pixels(
    detector: DlibHogDetector, side: int, quarter_turns: int
) -> None:
    """Looking at a photo turned by k quarter turns finds the face a photo stored that way
    shows upright, in the turned image's coordinates (the turn is made on the small copy)."""
    upright = astronaut().resize((side, side), Image.Resampling.BILINEAR)
    stored = np.ascontiguousarray(np.rot90(rgb(upright), -quarter_turns))  # turned back
    assert detector.detect_quick(stored) == []  # on its side: no frontal face
    [face] = detector.detect_quick(stored, quarter_turns)
    [expected] = detector.detect_quick(rgb(upright))
    assert_near(face, expected, tolerance=max(3, side / 100))
