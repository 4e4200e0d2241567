"""A varied set of images that carry no watermark, for false-positive checks (tests, bench)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

ASTRONAUT = Path(__file__).parent / "data" / "astronaut.jpg"


def _gradients(rng: np.random.Generator, count: int) -> Iterator[Image.Image]:
    for i in range(count):
        size = (512, 512) if i % 2 else (768, 640)
        x = np.linspace(0, 1, size[0])[None, :]
        y = np.linspace(0, 1, size[1])[:, None]
        if i % 3 == 0:
            field = np.hypot(x - 0.5, y - 0.5) * 1.4
        else:
            field = (x * rng.random() + y * rng.random()) / 2
        colours = rng.integers(0, 256, (2, 3))
        rgb = colours[0] + (colours[1] - colours[0]) * field[:, :, None]
        yield Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def _noise(rng: np.random.Generator, count: int) -> Iterator[Image.Image]:
    for i in range(count):
        raw = rng.normal(128, 10 + 15 * i, (512, 512, 3))
        image = Image.fromarray(np.clip(raw, 0, 255).astype(np.uint8))
        yield image.filter(ImageFilter.GaussianBlur(i % 4)) if i % 2 else image


def _shapes(rng: np.random.Generator, count: int) -> Iterator[Image.Image]:
    for _ in range(count):
        background = tuple(int(v) for v in rng.integers(0, 256, 3))
        image = Image.new("RGB", (512, 512), background)
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(3, 12))):
            box = sorted(rng.integers(0, 512, 2).tolist()), sorted(rng.integers(0, 512, 2).tolist())
            xy = (box[0][0], box[1][0], box[0][1] + 1, box[1][1] + 1)
            fill = tuple(int(v) for v in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(xy, fill=fill)
        yield image


def _astronaut_variants(count: int) -> Iterator[Image.Image]:
    base = Image.open(ASTRONAUT).convert("RGB")
    makers: list[Callable[[Image.Image], Image.Image]] = [
        lambda im: im,
        ImageOps.mirror,
        ImageOps.flip,
        lambda im: im.rotate(90),
        lambda im: ImageOps.grayscale(im).convert("RGB"),
        lambda im: ImageOps.posterize(im, 3),
        lambda im: ImageOps.autocontrast(im, cutoff=5),
        ImageOps.invert,
        lambda im: im.filter(ImageFilter.GaussianBlur(2)),
        lambda im: im.filter(ImageFilter.EDGE_ENHANCE_MORE),
        lambda im: im.filter(ImageFilter.CONTOUR),
        lambda im: im.quantize(8).convert("RGB"),
        lambda im: im.resize((1024, 1024), Image.Resampling.LANCZOS),
        lambda im: im.resize((768, 768), Image.Resampling.BICUBIC),
        lambda im: im.resize((384, 384), Image.Resampling.LANCZOS),
        lambda im: im.resize((1280, 1280), Image.Resampling.LANCZOS),
        lambda im: im.crop((0, 0, 256, 256)).resize((512, 512)),
        lambda im: im.crop((100, 50, 420, 370)),
        lambda im: im.crop((64, 64, 448, 448)).resize((1024, 1024)),
        lambda im: im.crop((0, 100, 512, 400)),
        lambda im: im.crop((200, 0, 512, 512)),
        lambda im: ImageOps.solarize(im, 128),
        ImageOps.equalize,
        lambda im: im.convert("P", palette=Image.Palette.ADAPTIVE, colors=16).convert("RGB"),
    ]
    for i in range(count):
        yield makers[i % len(makers)](base)


def unmarked_images(count: int = 60, seed: int = 7) -> list[tuple[str, Image.Image]]:
    """`count` unmarked RGB images: gradients, noise, shapes and astronaut variants/crops."""
    rng = np.random.default_rng(seed)
    quarter = max(count // 6, 1)
    groups = [
        ("gradient", list(_gradients(rng, quarter))),
        ("noise", list(_noise(rng, quarter))),
        ("shapes", list(_shapes(rng, quarter))),
    ]
    rest = count - sum(len(images) for _, images in groups)
    groups.append(("astronaut", list(_astronaut_variants(rest))))
    return [(f"{name}-{i}", image) for name, images in groups for i, image in enumerate(images)]
