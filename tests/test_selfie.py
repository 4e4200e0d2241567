"""Selfie intake on real files: every hostile upload gets its own typed error, every
awkward-but-valid selfie comes out as a square upright RGB JPEG around the face."""

from __future__ import annotations

import asyncio
import io
import logging
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from bot.decode_budget import DecodesBusy
from bot.errors import AvatarbotError
from bot.faces import DlibHogDetector, FaceBox, FaceDetector
from bot.selfie import (
    CorruptImage,
    FaceTooSmall,
    FaceTooSmallToFind,
    FileTooLarge,
    ImageTooLarge,
    ImageTooSmall,
    IntakeError,
    IntakeLimits,
    MultipleFaces,
    NoFaceFound,
    Selfie,
    SelfieIntake,
    UnsupportedFormat,
    decode_image,
    load_selfie,
)
from tests import hostile, icc

ROOT = Path(__file__).parent.parent


class FixedDetector(FaceDetector):
    """A fake detector that reports the boxes it was given (for the face-choice rules)."""

    def __init__(self, *boxes: FaceBox) -> None:
        self.boxes = list(boxes)

    def detect(self, rgb: np.ndarray[tuple[int, int, int], np.dtype[np.uint8]]) -> list[FaceBox]:
        return sorted(self.boxes, key=lambda box: box.score, reverse=True)


def open_output(selfie: Selfie) -> Image.Image:
    image = Image.open(io.BytesIO(selfie.jpeg))
    assert image.format == "JPEG"
    image.load()
    return image


def assert_normalised(selfie: Selfie) -> Image.Image:
    """The contract every accepted selfie meets."""
    image = open_output(selfie)
    assert image.mode == "RGB"
    assert image.size == (selfie.width, selfie.height)
    assert selfie.width == selfie.height <= IntakeLimits().output_max
    face = selfie.face
    assert 0 <= face.left < face.right <= selfie.width
    assert 0 <= face.top < face.bottom <= selfie.height
    cx, cy = face.center
    assert abs(cx / selfie.width - 0.5) < 0.1, "face centred horizontally"
    assert 0.35 < cy / selfie.height < 0.55, "face a little above the middle (portrait)"
    assert face.size / selfie.width > 0.3, "the crop is around the face, not the whole photo"
    return image


# --------------------------------------------------------------------------- bad files


@pytest.mark.parametrize("name", list(hostile.BAD_FILES))
def test_bad_file_raises_its_error(intake: SelfieIntake, name: str) -> None:
    case = hostile.BAD_FILES[name]
    with pytest.raises(IntakeError) as caught:
        intake.process(case.make())
    assert type(caught.value) is case.error
    assert isinstance(caught.value, AvatarbotError)
    message = caught.value.user_message
    assert message.strip() == message
    assert "\n" not in message
    assert 20 < len(message) < 200


def test_bad_files_cover_every_error_and_twenty_cases() -> None:
    def subclasses(cls: type[IntakeError]) -> set[type[IntakeError]]:
        direct = set(cls.__subclasses__())
        return direct.union(*(subclasses(sub) for sub in direct))

    errors = {case.error for case in hostile.BAD_FILES.values()}
    # DecodesBusy says the process is busy, not that the file is bad.
    assert errors == subclasses(IntakeError) - {DecodesBusy}
    assert len(hostile.BAD_FILES) >= 20


@pytest.mark.parametrize(
    ("name", "format_name"),
    [
        ("svg_named_jpg", "SVG"),
        ("eps", "EPS"),
        ("ico_named_jpg", "ICO"),
        ("tga_named_jpg", "TGA"),
        ("tiff", "TIFF"),
        ("bmp", "BMP"),
    ],
)
def test_unsupported_format_is_named(name: str, format_name: str) -> None:
    with pytest.raises(UnsupportedFormat) as caught:
        decode_image(hostile.BAD_FILES[name].make())
    assert caught.value.format_name == format_name
    assert format_name in caught.value.user_message


def test_limits_appear_in_messages() -> None:
    with pytest.raises(FileTooLarge) as too_big:
        decode_image(hostile.oversize())
    assert "20 MB" in too_big.value.user_message
    assert too_big.value.limit == 20 * 1024 * 1024

    with pytest.raises(ImageTooSmall) as too_small:
        decode_image(hostile.one_pixel())
    assert "128" in too_small.value.user_message
    assert (too_small.value.width, too_small.value.height) == (1, 1)

    small_limit = IntakeLimits(max_bytes=1024 * 1024)
    with pytest.raises(FileTooLarge) as custom:
        decode_image(hostile.oversize(1024 * 1024), small_limit)
    assert "1 MB" in custom.value.user_message


def test_byte_limit_is_checked_before_parsing() -> None:
    """A valid photo one byte over the limit is refused without being looked at."""
    data = hostile.ASTRONAUT.read_bytes()
    with pytest.raises(FileTooLarge):
        decode_image(data, IntakeLimits(max_bytes=len(data) - 1))
    assert decode_image(data, IntakeLimits(max_bytes=len(data))).size == (512, 512)


def test_bomb_is_refused_from_its_header() -> None:
    """64 Mpx: over our limit, under Pillow's own; refused with the header's size."""
    with pytest.raises(ImageTooLarge) as caught:
        decode_image(hostile.png_bomb(8000))
    assert (caught.value.width, caught.value.height) == (8000, 8000)


def test_bomb_decoding_uses_bounded_memory() -> None:
    """In a fresh process (Pillow warnings on default settings), the 12000² PNG bomb is
    refused with its size while peak memory stays far below the 144 MB it would decode to."""
    script = textwrap.dedent(
        """
        import resource, warnings
        from bot.selfie import ImageTooLarge, decode_image
        from tests.hostile import png_bomb
        data = png_bomb(12000)
        warnings.simplefilter("ignore")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            decode_image(data)
        except ImageTooLarge as exc:
            print(exc.width, exc.height)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) // 1024)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    size_line, growth_mb = result.stdout.split("\n")[:2]
    assert size_line == "12000 12000"
    assert int(growth_mb) < 20


# --------------------------------------------------------------------------- good files


@pytest.mark.parametrize("name", list(hostile.GOOD_FILES))
def test_good_file_is_normalised(intake: SelfieIntake, name: str) -> None:
    selfie = intake.process(hostile.GOOD_FILES[name]())
    image = assert_normalised(selfie)
    assert not image.getexif(), "no metadata (EXIF, GPS) survives intake"
    assert "icc_profile" not in image.info


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_rotation_gives_the_upright_picture(intake: SelfieIntake, orientation: int) -> None:
    upright = intake.process(hostile.upright_landscape())
    rotated = intake.process(hostile.exif_rotated(orientation))
    assert rotated.width == upright.width
    for got, want in zip(
        (rotated.face.left, rotated.face.top, rotated.face.size),
        (upright.face.left, upright.face.top, upright.face.size),
        strict=True,
    ):
        assert abs(got - want) <= 3
    a = np.asarray(open_output(upright).convert("L"), dtype=np.float64).ravel()
    b = np.asarray(open_output(rotated).convert("L"), dtype=np.float64).ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.95


@pytest.mark.parametrize(
    "turn",
    [Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270],
    ids=["90", "180", "270"],
)
def test_rotated_pixels_without_exif_give_the_upright_picture(
    intake: SelfieIntake, turn: Image.Transpose
) -> None:
    """Pixels stored turned, no EXIF tag: the face is found in the orientation that shows
    it upright, and the crop is taken from that orientation."""
    upright = intake.process(hostile.upright_landscape())
    turned = intake.process(hostile.rotated_pixels(turn))
    assert turned.width == upright.width
    for got, want in zip(
        (turned.face.left, turned.face.top, turned.face.size),
        (upright.face.left, upright.face.top, upright.face.size),
        strict=True,
    ):
        assert abs(got - want) <= 3
    a = np.asarray(open_output(upright).convert("L"), dtype=np.float64).ravel()
    b = np.asarray(open_output(turned).convert("L"), dtype=np.float64).ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.95


def test_other_orientations_are_searched_only_when_none_shows_a_face() -> None:
    """An upright face and an upside-down one: the upright one is the selfie (the turned
    photo is never searched, so the second face is not counted)."""
    face = hostile.astronaut()
    alone = Image.new("RGB", (1024, 512))
    alone.paste(face, (0, 0))
    both = alone.copy()
    both.paste(face.transpose(Image.Transpose.ROTATE_180), (512, 0))
    intake = SelfieIntake(DlibHogDetector())
    selfie = intake.process(hostile.encode(both, "JPEG", quality=92))
    reference = intake.process(hostile.encode(alone, "JPEG", quality=92))
    assert_normalised(selfie)
    assert selfie.face == reference.face


def test_no_face_in_any_orientation_is_still_refused(intake: SelfieIntake) -> None:
    with pytest.raises(NoFaceFound) as caught:
        intake.process(hostile.no_face_texture())
    assert type(caught.value) is NoFaceFound


def test_small_photo_without_a_face_found_says_what_size_works(intake: SelfieIntake) -> None:
    with pytest.raises(FaceTooSmallToFind) as caught:
        intake.process(hostile.small_photo_128())
    assert (caught.value.width, caught.value.height, caught.value.side) == (128, 128, 256)
    message = caught.value.user_message
    assert "128 × 128" in message
    assert "too small or too far" in message
    assert "256 × 256" in message
    assert isinstance(caught.value, NoFaceFound)  # callers that handle "no face" still do


def test_the_size_the_small_photo_answer_asks_for_works(intake: SelfieIntake) -> None:
    """A head-and-shoulders photo of `small_photo_side` with the face filling a third of
    it (what the answer asks for) is accepted."""
    left, top, side = 179 + 44 - 132, 83 + 44 - 105, 264  # around the 88 px face box
    framed = hostile.astronaut().crop((left, top, left + side, top + side))
    small = framed.resize((256, 256), Image.Resampling.LANCZOS)
    assert_normalised(intake.process(hostile.encode(small, "JPEG", quality=90)))


def test_exif_rotation_swaps_the_decoded_size() -> None:
    stored = hostile.exif_rotated(6)
    with Image.open(io.BytesIO(stored)) as raw:
        assert raw.size == (384, 512)  # portrait as stored
    assert decode_image(stored).size == (512, 384)  # landscape as taken
    assert decode_image(hostile.upright_landscape()).size == (512, 384)


def test_sixteen_bit_grey_keeps_its_tones(intake: SelfieIntake) -> None:
    decoded = decode_image(hostile.png_grey16())
    assert decoded.mode == "RGB"
    grey = np.asarray(decoded)[..., 0].astype(np.float64)
    reference = np.asarray(hostile.astronaut().convert("L"), dtype=np.float64)
    assert len(np.unique(grey)) > 200
    assert abs(grey.mean() - reference.mean()) < 2
    assert np.corrcoef(grey.ravel(), reference.ravel())[0, 1] > 0.99

    output = np.asarray(open_output(intake.process(hostile.png_grey16())).convert("L"))
    assert len(np.unique(output)) > 2 * 50


def test_alpha_is_flattened_on_white() -> None:
    decoded = decode_image(hostile.png_alpha())
    assert decoded.mode == "RGB"
    assert decoded.getpixel((0, 0)) == (255, 255, 255)
    assert decoded.getpixel((256, 220)) == hostile.astronaut().getpixel((256, 220))


def test_cmyk_comes_out_in_true_colour() -> None:
    decoded = np.asarray(decode_image(hostile.cmyk_jpeg()), dtype=np.float64)
    original = np.asarray(hostile.astronaut(), dtype=np.float64)
    assert np.abs(decoded - original).mean() < 10


def test_big_jpeg_is_drafted_but_not_below_the_output_size() -> None:
    decoded = decode_image(hostile.large_4000())
    assert decoded.size == (2000, 2000)  # decoded at 1/2 scale by draft()


def test_polyglot_payload_is_dropped(intake: SelfieIntake) -> None:
    selfie = intake.process(hostile.polyglot_jpeg_zip())
    assert b"PK\x03\x04" not in selfie.jpeg


def test_repr_never_shows_bytes(intake: SelfieIntake) -> None:
    selfie = intake.process(hostile.ASTRONAUT.read_bytes())
    assert "\\x" not in repr(selfie)
    assert repr(selfie).startswith(f"Selfie({selfie.width}x{selfie.height}, ")


# --------------------------------------------------------------------------- colour profiles

# Linear RGB -> linear sRGB, both D65, as published (not derived from tests/icc.py).
P3_TO_SRGB = np.array(
    [
        [1.2249401, -0.2249404, 0.0],
        [-0.0420569, 1.0420571, 0.0],
        [-0.0196376, -0.0786361, 1.0982735],
    ]
)
ADOBE_RGB_TO_SRGB = np.array(
    [[1.3983557, -0.3983557, 0.0], [0.0, 1.0, 0.0], [0.0, -0.0429290, 1.0429290]]
)
PATCH = 128
RGB_PATCHES = [
    (255, 0, 0),  # primaries: out of sRGB's gamut, clipped
    (0, 255, 0),
    (200, 60, 50),  # saturated red
    (40, 200, 80),  # saturated green
    (230, 180, 150),  # skin
    (128, 128, 128),
    (20, 40, 160),
]


def patches(colours: list[tuple[int, ...]], mode: str) -> Image.Image:
    """One PATCH-sized square per colour, side by side."""
    image = Image.new(mode, (PATCH * len(colours), PATCH))
    for i, colour in enumerate(colours):
        image.paste(
            colour if len(colour) > 1 else colour[0], (i * PATCH, 0, (i + 1) * PATCH, PATCH)
        )
    return image


def patch_centres(image: Image.Image, count: int) -> icc.Floats:
    pixels = np.asarray(image, dtype=np.float64)
    return np.stack([pixels[PATCH // 2, i * PATCH + PATCH // 2] for i in range(count)])


def gamma_rgb_to_srgb(rgb: icc.Floats, gamma: float, matrix: icc.Floats) -> icc.Floats:
    """8-bit values of a pure-gamma RGB space -> 8-bit sRGB (floats), gamut clipped."""
    linear = (np.asarray(rgb, dtype=np.float64) / 255) ** gamma
    return icc.srgb_encode(linear @ matrix.T)


@pytest.mark.parametrize(
    ("profile", "gamma", "matrix"),
    [
        pytest.param(icc.display_p3, 2.2, P3_TO_SRGB, id="display_p3"),
        pytest.param(icc.adobe_rgb, 563 / 256, ADOBE_RGB_TO_SRGB, id="adobe_rgb"),
    ],
)
def test_wide_gamut_patches_come_out_in_srgb(
    profile: Callable[[], bytes],
    gamma: float,
    matrix: icc.Floats,
) -> None:
    tagged = hostile.encode(patches(RGB_PATCHES, "RGB"), "PNG", icc_profile=profile())
    decoded = decode_image(tagged)
    assert decoded.mode == "RGB"
    assert "icc_profile" not in decoded.info
    got = patch_centres(decoded, len(RGB_PATCHES))
    want = gamma_rgb_to_srgb(np.array(RGB_PATCHES), gamma, matrix)
    assert np.abs(got - want).max() <= 1.5
    # Taken as sRGB, the saturated patches would be visibly washed out.
    assert np.abs(got - np.array(RGB_PATCHES)).max() > 15


def test_srgb_profile_leaves_the_pixels_alone() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    decoded = decode_image(hostile.encode(hostile.astronaut(), "PNG", icc_profile=srgb))
    assert np.array_equal(np.asarray(decoded), np.asarray(hostile.astronaut()))
    assert "icc_profile" not in decoded.info


def test_gamma_profile_is_not_mistaken_for_srgb() -> None:
    """sRGB primaries with a pure 2.2 curve differ from sRGB only in the shadows (a few
    levels): intake still converts, the identity shortcut must not swallow that."""
    greys = [(v, v, v) for v in (5, 10, 20, 30, 60, 128, 250)]
    tagged = hostile.encode(patches(greys, "RGB"), "PNG", icc_profile=icc.srgb_like(2.2))
    got = patch_centres(decode_image(tagged), len(greys))
    want = gamma_rgb_to_srgb(np.array(greys), 2.2, np.eye(3))
    assert np.abs(got - want).max() <= 1.5
    assert np.abs(got - np.array(greys)).max() >= 5


def test_cmyk_converts_through_its_profile() -> None:
    inks = [
        (0, 0, 0, 0),
        (255, 0, 0, 0),
        (128, 0, 0, 0),
        (0, 128, 64, 0),
        (0, 0, 0, 128),
        (50, 100, 150, 30),
        (20, 60, 80, 0),
        (255, 255, 255, 255),
    ]
    image = patches(inks, "CMYK")
    with_profile = decode_image(
        hostile.encode(image, "JPEG", quality=95, icc_profile=icc.cmyk_profile())
    )
    got = patch_centres(with_profile, len(inks))
    want = np.array([icc.cmyk_model_srgb(ink) for ink in inks])
    assert np.abs(got - want).max() <= 3
    # Without the profile Pillow's plain conversion gives much darker mid-tones.
    plain = patch_centres(decode_image(hostile.encode(image, "JPEG", quality=95)), len(inks))
    assert np.abs(plain - want).max() > 40


def test_grey_profile_is_applied() -> None:
    levels = [(0,), (16,), (64,), (128,), (200,), (255,)]
    tagged = hostile.encode(patches(levels, "L"), "PNG", icc_profile=icc.grey_profile(1.0))
    decoded = decode_image(tagged)
    assert decoded.mode == "RGB"
    got = patch_centres(decoded, len(levels))
    linear = np.array(levels, dtype=np.float64) / 255  # the profile says: linear light
    want = np.repeat(icc.srgb_encode(linear), 3, axis=1)
    assert np.abs(got - want).max() <= 1.5


UNUSABLE_PROFILES: dict[str, Callable[[], bytes]] = {
    "garbage": lambda: hostile.GARBAGE_PROFILE,
    "truncated": lambda: icc.display_p3()[:200],
    "no_colorant_tags": icc.rgb_profile_without_colorants,
    "cmyk_profile_on_rgb": icc.cmyk_profile,
    "lab_profile": lambda: ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes(),
}


@pytest.mark.parametrize("name", list(UNUSABLE_PROFILES))
def test_unusable_profile_leaves_the_pixels_as_srgb(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    profile = UNUSABLE_PROFILES[name]()
    caplog.set_level(logging.DEBUG, logger="bot.intake.colour")
    decoded = decode_image(hostile.encode(hostile.astronaut(), "PNG", icc_profile=profile))
    assert np.array_equal(np.asarray(decoded), np.asarray(hostile.astronaut()))
    assert "icc_profile" not in decoded.info
    [record] = [r for r in caplog.records if r.name == "bot.intake.colour"]
    message = record.getMessage()
    assert record.levelno == logging.DEBUG
    assert f"({len(profile)} bytes) ignored" in message
    assert "definitely" not in message
    assert "Test" not in message  # profile descriptions come from the upload too


def test_display_p3_selfie_is_converted_and_framed_the_same(intake: SelfieIntake) -> None:
    plain = intake.process(hostile.encode(hostile.astronaut(), "JPEG", quality=92))
    tagged = intake.process(hostile.jpeg_display_p3())
    assert (tagged.width, tagged.face) == (plain.width, plain.face)
    plain_pixels = np.asarray(open_output(plain), dtype=np.float64)
    tagged_pixels = np.asarray(open_output(tagged), dtype=np.float64)
    want = gamma_rgb_to_srgb(plain_pixels, 2.2, P3_TO_SRGB)
    assert np.abs(tagged_pixels - want).mean() < 2

    def chroma(pixels: icc.Floats) -> float:
        return float((pixels.max(axis=-1) - pixels.min(axis=-1)).mean())

    # Taken as sRGB (before), a P3 photo's colours come out washed out.
    assert chroma(tagged_pixels) > chroma(plain_pixels) + 3


def test_display_p3_heic_is_converted() -> None:
    """An iPhone-style HEIC: the same pixels as `heic()`, tagged Display P3."""
    plain = np.asarray(decode_image(hostile.heic()), dtype=np.float64)
    tagged = np.asarray(decode_image(hostile.heic_display_p3()), dtype=np.float64)
    assert np.abs(tagged - gamma_rgb_to_srgb(plain, 2.2, P3_TO_SRGB)).max() <= 2


@pytest.mark.parametrize(
    "make", [hostile.cmyk_jpeg_with_profile, hostile.png_grey16_with_profile], ids=["cmyk", "grey"]
)
def test_profiled_cmyk_and_grey_photos_can_be_padded(make: Callable[[], bytes]) -> None:
    """Their pixels stay CMYK or grey until the output square is converted; padding
    happens before that, in their own mode, and the photo's colours still convert."""
    data = make()
    selfie = SelfieIntake(FixedDetector(face(-20, -30, 400))).process(data)
    assert selfie.width == round(1.6 * 400)
    output = np.asarray(load_selfie(selfie.jpeg), dtype=np.float64)
    assert output[:100, :100].std(axis=(0, 1)).max() < 4, "padding is one flat colour"
    # The square starts at (-140, -118) in the photo (see the plain padding test).
    photo = np.asarray(decode_image(data), dtype=np.float64)
    assert np.abs(output[168:368, 190:390] - photo[50:250, 50:250]).mean() < 3


async def test_profiled_intake_from_threads(intake: SelfieIntake) -> None:
    """Transforms are cached and shared by threads; every result is the same."""
    data = hostile.jpeg_display_p3()
    results = await asyncio.gather(*(asyncio.to_thread(intake.process, data) for _ in range(4)))
    assert len({r.jpeg for r in results}) == 1


# --------------------------------------------------------------------------- face rules


def face(left: int, top: int, size: int, score: float = 1.0) -> FaceBox:
    return FaceBox(left, top, size, size, score)


def test_background_face_does_not_reject_the_selfie() -> None:
    main = face(179, 83, 88, score=1.5)
    background = face(400, 40, 40, score=2.0)  # a stronger but much smaller face
    selfie = SelfieIntake(FixedDetector(main, background)).process(hostile.ASTRONAUT.read_bytes())
    assert selfie.face.score == main.score


def test_two_comparable_faces_are_refused() -> None:
    detector = FixedDetector(face(179, 83, 88), face(300, 200, 60, score=0.5))
    with pytest.raises(MultipleFaces) as caught:
        SelfieIntake(detector).process(hostile.ASTRONAUT.read_bytes())
    assert caught.value.count == 2


def test_weak_false_hit_does_not_reject_a_good_selfie(intake: SelfieIntake) -> None:
    """dlib scores a suit patch ~0.1 as a face of the same size; intake must accept."""
    raw = DlibHogDetector(threshold=0.0).detect(np.asarray(hostile.astronaut()))
    assert len(raw) == 2
    assert intake.process(hostile.ASTRONAUT.read_bytes()).face.score > 1.0


def test_face_size_rules() -> None:
    data = hostile.ASTRONAUT.read_bytes()
    with pytest.raises(NoFaceFound):
        SelfieIntake(FixedDetector()).process(data)
    with pytest.raises(FaceTooSmall) as caught:
        SelfieIntake(FixedDetector(face(200, 100, 60))).process(data)
    assert (caught.value.face_px, caught.value.min_face_px) == (60, 80)
    relaxed = IntakeLimits(min_face_px=40)
    assert SelfieIntake(FixedDetector(face(200, 100, 60)), relaxed).process(data).width == 144


def test_face_near_the_edge_shifts_the_crop_inside() -> None:
    """Room for a 1.6x margin inside the photo: the crop moves, nothing is padded."""
    detector = FixedDetector(face(-20, -30, 300))
    selfie = SelfieIntake(detector).process(hostile.ASTRONAUT.read_bytes())
    assert selfie.width == 512  # the whole photo, as the 2.4x square would not fit
    assert (selfie.face.left, selfie.face.top) == (0, 0)  # clipped to the image


def test_face_filling_the_photo_is_padded_not_cut() -> None:
    """A face too big for a 1.6x margin inside the photo: the square is padded."""
    detector = FixedDetector(face(-20, -30, 400))
    selfie = SelfieIntake(detector).process(hostile.ASTRONAUT.read_bytes())
    assert selfie.width == round(1.6 * 400)
    assert (selfie.face.left, selfie.face.top, selfie.face.size) == (120, 88, 400)
    padded = np.asarray(load_selfie(selfie.jpeg), dtype=np.float64)[:100, :100]
    assert padded.std(axis=(0, 1)).max() < 4, "padding is one flat colour"


def test_large_photo_gives_a_bounded_output(intake: SelfieIntake) -> None:
    selfie = intake.process(hostile.large_4000())
    assert_normalised(selfie)
    assert 600 < selfie.width <= 1024
    small = SelfieIntake(DlibHogDetector(), IntakeLimits(output_max=256)).process(
        hostile.large_4000()
    )
    assert small.width <= 256
    assert_normalised(small)


# --------------------------------------------------------------------------- worker side


def test_load_selfie_round_trip(intake: SelfieIntake) -> None:
    selfie = intake.process(hostile.heic())
    loaded = load_selfie(selfie.jpeg)
    assert loaded.mode == "RGB"
    assert loaded.size == (selfie.width, selfie.height)


def test_load_selfie_refuses_anything_else() -> None:
    with pytest.raises(CorruptImage):
        load_selfie(b"definitely not a jpeg")
    with pytest.raises(CorruptImage):
        load_selfie(hostile.webp())


async def test_intake_from_threads(intake: SelfieIntake) -> None:
    data = hostile.ASTRONAUT.read_bytes()
    results = await asyncio.gather(*(asyncio.to_thread(intake.process, data) for _ in range(3)))
    assert len({r.jpeg for r in results}) == 1


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="min_side"):
        IntakeLimits(min_side=500, max_side=400)
    with pytest.raises(ValueError, match="jpeg_quality"):
        IntakeLimits(jpeg_quality=100)
