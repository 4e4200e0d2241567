"""Photos of four different people (public domain; see tests/data/README.md), for the
likeness tests and bench/likeness_bench.py. Each goes through the bot's real intake, so
tests and the bench see the square face crop a worker gets."""

from __future__ import annotations

import functools
from pathlib import Path

from PIL import Image

from bot.faces import DlibHogDetector
from bot.selfie import Selfie, SelfieIntake, load_selfie

DATA = Path(__file__).parent / "data"

PEOPLE: dict[str, Path] = {
    "collins": DATA / "astronaut.jpg",
    "hopper": DATA / "faces" / "hopper.jpg",
    "obama": DATA / "faces" / "obama.jpg",
    "biden": DATA / "faces" / "biden.jpg",
}


@functools.cache
def selfie(name: str) -> Selfie:
    """`name`'s photo after intake (a square crop around the face, as a JPEG)."""
    return SelfieIntake(DlibHogDetector(max_parallel=1)).process(PEOPLE[name].read_bytes())


def selfie_image(name: str) -> Image.Image:
    """`selfie(name)` decoded, as the worker decodes a job's selfie."""
    return load_selfie(selfie(name).jpeg)
