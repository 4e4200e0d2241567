"""Selfie intake speed: face detector alone and the whole intake, per photo size.

Run from the repository root: `.venv/bin/python -m bench.intake_bench`.
Each figure is the median (and min) of several runs after a warm-up, on this machine;
the baseline is a naive full decode (`Image.open(...).convert("RGB")`) of the same file.
Rows marked P3 or ICC carry an embedded colour profile (built by tests/icc.py), which
intake converts to sRGB and the naive decode ignores. The orientation table times the
face search on decoded pixels: upright only (the baseline) and with the other three
orientations tried when none is found upright (what intake does).
"""

from __future__ import annotations

import io
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
from PIL import Image

from bot.faces import DlibHogDetector
from bot.intake.orientation import find_faces
from bot.selfie import SelfieIntake
from tests import icc
from tests.hostile import (
    astronaut,
    heic,
    heic_display_p3,
    no_face_gradient,
    no_face_texture,
    small_photo_128,
)


def timing(fn: Callable[[], object], runs: int = 9) -> str:
    """'median (min) ms' over `runs` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return f"{statistics.median(times):6.1f} ({min(times):5.1f}) ms"


def photo(width: int, height: int) -> Image.Image:
    """A phone-like photo: the portrait enlarged to `width`, cropped to `height`."""
    big = astronaut().resize((width, width), Image.Resampling.BICUBIC)
    top = (width - height) // 4
    return big.crop((0, top, width, top + height))


def jpeg(image: Image.Image, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, **params)
    return out.getvalue()


def naive_decode(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as image:
        image.convert("RGB")


def main() -> None:
    detector = DlibHogDetector()
    intake = SelfieIntake(detector)
    print(f"{platform.machine()} {platform.python_version()}, {platform.processor() or ''}")
    print("\nDetector alone (RGB array in), median (min):")
    for label, image in (
        ("512 x 512", astronaut()),
        ("3000 x 3000", astronaut().resize((3000, 3000), Image.Resampling.BICUBIC)),
        ("4000 x 3000", photo(4000, 3000)),
    ):
        rgb = np.asarray(image)
        print(f"  {label:>12}: {timing(lambda rgb=rgb: detector.detect(rgb))}")

    print("\nIntake (bytes in, Selfie out) vs naive full decode:")
    phone = photo(4000, 3000)
    cases = {
        "512 JPEG": jpeg(astronaut()),
        "3000x2250 JPEG": jpeg(photo(3000, 2250)),
        "4000x3000 JPEG": jpeg(phone),
        "4000x3000 JPEG P3": jpeg(phone, icc_profile=icc.display_p3()),
        "4000x3000 CMYK+ICC": jpeg(phone.convert("CMYK"), icc_profile=icc.cmyk_profile()),
        "512 HEIC": heic(),
        "512 HEIC P3": heic_display_p3(),
    }
    for label, data in cases.items():
        selfie = intake.process(data)
        t_intake = timing(lambda data=data: intake.process(data))
        t_naive = timing(lambda data=data: naive_decode(data))
        print(
            f"  {label:>18}: intake {t_intake}   naive decode {t_naive}   "
            f"-> {selfie.width}px, {len(selfie.jpeg) // 1024} KB"
        )


def decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def orientation_table(detector: DlibHogDetector) -> None:
    """The cost of trying the other orientations, on decoded pixels, same run."""
    print("\nFace search, upright only (baseline) vs with the other orientations, median (min):")
    top = astronaut().crop((0, 0, 512, 384))
    phone = photo(3000, 2250)
    cases = {
        "512x384 upright": np.asarray(top),
        "512x384 turned 90": np.asarray(top.transpose(Image.Transpose.ROTATE_90)),
        "512x384 turned 270": np.asarray(top.transpose(Image.Transpose.ROTATE_270)),
        "512x384 turned 180": np.asarray(top.transpose(Image.Transpose.ROTATE_180)),
        "3000x2250 turned 90": np.asarray(phone.transpose(Image.Transpose.ROTATE_90)),
        "800x600 no face": decoded(no_face_gradient()),
        "768x318 no face": decoded(no_face_texture()),
        "3000x2250 no face": decoded(
            jpeg(Image.open(io.BytesIO(no_face_texture())).resize((3000, 2250)))
        ),
        "128x128 small": decoded(small_photo_128()),
    }
    for label, rgb in cases.items():
        found = find_faces(detector, rgb)
        turn = "upright" if found.turn is None else found.turn.name
        where = f"{len(found.faces)} face(s) {turn}" if found.faces else "no face"
        base = timing(lambda rgb=rgb: detector.detect(rgb), runs=7)
        after = timing(lambda rgb=rgb: find_faces(detector, rgb), runs=7)
        print(f"  {label:>20}: upright only {base}   all orientations {after}   ({where})")


if __name__ == "__main__":
    main()
    orientation_table(DlibHogDetector())
