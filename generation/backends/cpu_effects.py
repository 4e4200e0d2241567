"""The CPU style engine's effects (OpenCV + NumPy, no model weights).

An effect turns the square RGB face crop, resized to the requested side, into a stylised
image of the same size. The seed picks a variant: palette, paper texture, stroke angle
and small parameter jitter all come from a NumPy `Generator` seeded with it, so one seed
always gives the same pixels and different seeds give visibly different avatars. No
global state is touched (k-means is our own, seeded; OpenCV's RNG is never used).

Effects and their params (all optional; defaults in brackets):
- ``pencil_sketch``: graphite on tinted paper. ``blur`` [21] (odd, 3-101: softness of
  the dodge blend), ``hatching`` [0.5] (0-1), ``darkness`` [1.0] (0.3-3, gamma).
- ``watercolor``: soft washes with darker wet edges on textured paper.
  ``sigma_s`` [60] (1-200), ``sigma_r`` [0.45] (0.05-1), ``paper`` [0.5] (0-1).
- ``oil``: Kuwahara filter (box filters, O(1) per pixel in the radius) plus a canvas
  texture. ``radius`` [5] (1-15), ``saturation`` [1.25] (0-3), ``texture`` [0.5] (0-1).
- ``pop_art``: four posterised panels in bold screen-print colours.
  ``levels`` [3] (2-5), ``ink`` [true].
- ``cartoon``: bilateral smoothing, k-means colour quantisation, clean ink edges.
  ``colors`` [8] (2-24), ``line`` [1.0] (0-3: edge thickness/strength).
- ``comic_halftone``: flat colours, halftone dots in the shadows, bold ink lines.
  ``dot`` [6] (3-24: dot pitch at 512 px), ``colors`` [5] (2-12).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

RGB = npt.NDArray[np.uint8]
Float = npt.NDArray[np.float32]
ParamValue = float | int | str | bool

MIN_SIZE = 64
MAX_SIZE = 2048


class EffectParamsError(ValueError):
    """A recipe's params are wrong (unknown name, wrong type, out of range)."""


class Params:
    """Typed, range-checked access to one recipe's params; unknown names are an error."""

    def __init__(self, effect: str, raw: Mapping[str, ParamValue], known: frozenset[str]):
        unknown = sorted(set(raw) - known)
        if unknown:
            raise EffectParamsError(
                f"effect {effect!r} has no param(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known)) or 'none'}"
            )
        self.effect = effect
        self.raw = raw

    def number(self, name: str, default: float, lo: float, hi: float) -> float:
        value = self.raw.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise EffectParamsError(f"{self.effect}.{name} must be a number, got {value!r}")
        if not lo <= value <= hi or math.isnan(value):
            raise EffectParamsError(f"{self.effect}.{name}={value} is outside [{lo}, {hi}]")
        return float(value)

    def integer(self, name: str, default: int, lo: int, hi: int) -> int:
        value = self.raw.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise EffectParamsError(f"{self.effect}.{name} must be an integer, got {value!r}")
        if not lo <= value <= hi:
            raise EffectParamsError(f"{self.effect}.{name}={value} is outside [{lo}, {hi}]")
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw.get(name, default)
        if not isinstance(value, bool):
            raise EffectParamsError(f"{self.effect}.{name} must be true or false, got {value!r}")
        return value


EffectFn = Callable[[RGB, Params, np.random.Generator], RGB]


@dataclass(frozen=True)
class Effect:
    fn: EffectFn
    params: frozenset[str]


# ---------------------------------------------------------------------------- helpers


def _odd(n: float) -> int:
    k = max(1, round(n))
    return k if k % 2 else k + 1


def _smooth_noise(rng: np.random.Generator, size: int, cell: int) -> Float:
    """Low-frequency noise in [0, 1]: random values on a coarse grid, resized smoothly."""
    grid = max(2, size // max(1, cell))
    coarse = rng.random((grid, grid), dtype=np.float32)
    return np.asarray(cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC), np.float32)


def _paper(rng: np.random.Generator, size: int, amount: float) -> Float:
    """A paper texture around 1.0: blotches plus fine grain, `amount` scales both."""
    blotch = _smooth_noise(rng, size, 48) - 0.5
    grain = rng.standard_normal((size, size), dtype=np.float32)
    grain = np.asarray(cv2.GaussianBlur(grain, (3, 3), 0.8), np.float32)
    return np.float32(1.0) + np.float32(amount) * (0.06 * blotch + 0.035 * grain)


def _resize(image: RGB, side: int, interpolation: int) -> RGB:
    return np.asarray(cv2.resize(image, (side, side), interpolation=interpolation), np.uint8)


def _to_u8(x: npt.NDArray[np.floating]) -> RGB:
    out: RGB = np.clip(x + 0.5, 0, 255).astype(np.uint8)
    return out


def _saturate(rgb: RGB, factor: float, value: float = 1.0) -> RGB:
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 1] *= factor
    hsv[..., 2] *= value
    return np.asarray(cv2.cvtColor(_to_u8(hsv), cv2.COLOR_HSV2RGB), np.uint8)


def _ink_edges(gray: RGB, size: int, strength: float) -> Float:
    """Clean ink lines as a [0, 1] multiplier (0 = ink): adaptive threshold on a median."""
    smooth = cv2.medianBlur(gray, _odd(size / 100))
    block = _odd(size / 55)
    lines = cv2.adaptiveThreshold(
        smooth, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, max(3, block), 9
    )
    ink = 255 - lines
    # Drop speckles (isolated dots in skin texture) and thicken what is left a little.
    ink = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    if strength > 1.0:
        ink = cv2.dilate(ink, np.ones((2, 2), np.uint8), iterations=round(strength - 0.5))
    ink_f = np.asarray(cv2.GaussianBlur(ink, (3, 3), 0.7), np.float32) / 255.0
    out: Float = np.clip(1.0 - min(strength, 1.0) * ink_f, 0.0, 1.0).astype(np.float32)
    return out


def _kmeans_colors(
    rgb: RGB, k: int, rng: np.random.Generator, iterations: int = 8
) -> tuple[Float, RGB]:
    """Seeded k-means in Lab on a pixel sample; returns (palette Lab, labels image).

    Deterministic for a given generator (k-means++ style init from `rng`), and fast: the
    palette is fitted on ~6k sampled pixels, then every pixel takes its nearest colour.
    """
    lab_u8 = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB), np.uint8)
    flat = lab_u8.reshape(-1, 3)
    pick = rng.integers(0, flat.shape[0], size=6000)
    sample = flat[pick].astype(np.float32)
    centers = np.empty((k, 3), np.float32)
    centers[0] = sample[rng.integers(sample.shape[0])]
    d2 = ((sample - centers[0]) ** 2).sum(axis=1)
    for i in range(1, k):
        p = d2 / d2.sum() if d2.sum() > 0 else None
        centers[i] = sample[rng.choice(sample.shape[0], p=p)]
        d2 = np.minimum(d2, ((sample - centers[i]) ** 2).sum(axis=1))
    for _ in range(iterations):
        dist = ((sample[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
        labels = dist.argmin(axis=1)
        for i in range(k):
            members = sample[labels == i]
            if members.shape[0]:
                centers[i] = members.mean(axis=0)
    # Nearest centre for every pixel through a 32^3 lookup table over the Lab cube:
    # 32k distance computations instead of one per pixel.
    step = 8
    axis = np.arange(step // 2, 256, step, dtype=np.float32)
    cube = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    lut = ((cube[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
    q = lab_u8 >> 3
    index = (q[..., 0].astype(np.intp) << 10) | (q[..., 1].astype(np.intp) << 5) | q[..., 2]
    full: RGB = lut.astype(np.uint8)[index]
    return centers, full


def _lab_to_rgb(lab: Float) -> RGB:
    px = _to_u8(lab.reshape(1, -1, 3))
    return np.asarray(cv2.cvtColor(px, cv2.COLOR_LAB2RGB), np.uint8).reshape(-1, 3)


# ---------------------------------------------------------------------------- effects

_PAPER_TINTS = (
    (252, 250, 244),  # warm white
    (246, 240, 226),  # cream
    (240, 243, 246),  # cool grey-blue
    (247, 241, 233),  # ivory
    (236, 232, 224),  # recycled grey
)
_GRAPHITE = ((38, 38, 44), (52, 44, 40), (30, 36, 52), (60, 50, 44))


def pencil_sketch(rgb: RGB, params: Params, rng: np.random.Generator) -> RGB:
    """Colour dodge of the grey image by its blurred negative, hatching, tinted paper."""
    size = rgb.shape[0]
    blur = params.integer("blur", 21, 3, 101)
    hatching = params.number("hatching", 0.5, 0.0, 1.0)
    darkness = params.number("darkness", 1.0, 0.3, 3.0)
    scale = size / 512
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    k = _odd(blur * scale * rng.uniform(0.8, 1.25))
    blurred = cv2.GaussianBlur(255 - gray, (k, k), 0)
    sketch = cv2.divide(gray, 255 - blurred, scale=256).astype(np.float32) / 255.0
    sketch = np.clip(sketch, 0.0, 1.0) ** (1.6 * darkness * rng.uniform(0.9, 1.15))
    # Hatching: streaks of noise blurred along one angle, laid into the darker tones.
    if hatching > 0:
        angle = rng.uniform(25, 65) * rng.choice((-1, 1))
        length = _odd(9 * scale)
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle, 1.0)
        kernel = np.asarray(cv2.warpAffine(kernel, rot, (length, length)), np.float32)
        kernel /= max(float(kernel.sum()), 1e-6)
        # Drawn at half size and enlarged: strokes stay long, the filter costs a quarter.
        half = max(MIN_SIZE // 2, size // 2)
        noise = rng.random((half, half), dtype=np.float32)
        streaks = cv2.resize(cv2.filter2D(noise, -1, kernel), (size, size))
        streaks = (streaks - streaks.mean()) / (streaks.std() + 1e-6)
        tone = cv2.GaussianBlur(gray, (0, 0), 4 * scale).astype(np.float32) / 255.0
        shade = np.clip(0.85 - tone, 0.0, 1.0) ** 0.8
        sketch = sketch * (1.0 - hatching * 0.22 * shade * np.clip(streaks + 0.6, 0.0, 2.0))
    sketch = np.clip(sketch * _paper(rng, size, 1.0), 0.0, 1.0)
    paper = np.array(_PAPER_TINTS[rng.integers(len(_PAPER_TINTS))], np.float32)
    lead = np.array(_GRAPHITE[rng.integers(len(_GRAPHITE))], np.float32)
    out = lead + (paper - lead) * sketch[..., None]
    return _to_u8(out)


def watercolor(rgb: RGB, params: Params, rng: np.random.Generator) -> RGB:
    """Edge-preserving washes, transparent pigment with wet edges and granulation on
    textured paper, a faint pencil underdrawing, and soft borders fading into the paper."""
    size = rgb.shape[0]
    sigma_s = params.number("sigma_s", 60.0, 1.0, 200.0)
    sigma_r = params.number("sigma_r", 0.45, 0.05, 1.0)
    paper_amount = params.number("paper", 0.5, 0.0, 1.0)
    scale = size / 512
    half = max(MIN_SIZE // 2, size // 2)
    small = _resize(rgb, half, cv2.INTER_AREA)
    small = _saturate(small, rng.uniform(1.15, 1.4), 1.0)
    washed = cv2.edgePreservingFilter(
        small,
        flags=cv2.RECURS_FILTER,
        sigma_s=sigma_s * half / 512 * rng.uniform(0.85, 1.15),
        sigma_r=sigma_r,
    )
    washed = cv2.resize(washed, (size, size), interpolation=cv2.INTER_CUBIC)
    # Work in pigment density (0 = bare paper); watercolour is transparent, so thin it.
    pigment = (255.0 - washed.astype(np.float32)) * np.float32(rng.uniform(0.78, 0.9))
    gray = cv2.cvtColor(washed, cv2.COLOR_RGB2GRAY).astype(np.float32)
    # Wet edges: pigment pools at the rims of shapes (a difference of Gaussians).
    rim = cv2.GaussianBlur(gray, (0, 0), 5.0 * scale) - cv2.GaussianBlur(gray, (0, 0), 1.5 * scale)
    pigment *= (1.0 + np.clip(rim, 0.0, 30.0) / 30.0 * 0.45)[..., None]
    # Granulation (pigment settling in the paper's grain) and uneven flow of the wash.
    grain = _paper(rng, size, 1.5 + 2.0 * paper_amount)
    flow = 0.85 + 0.3 * _smooth_noise(rng, size, 80)
    pigment *= (grain * flow)[..., None]
    # A faint pencil underdrawing keeps eyes and mouth crisp.
    line_gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    k = _odd(9 * scale)
    dodge = cv2.divide(line_gray, 255 - cv2.GaussianBlur(255 - line_gray, (k, k), 0), scale=256)
    pencil = (1.0 - np.clip(dodge.astype(np.float32) / 255.0, 0.0, 1.0) ** 2.0) * 90.0
    pigment += pencil[..., None]
    paper_colour = np.array(_PAPER_TINTS[rng.integers(len(_PAPER_TINTS))], np.float32)
    img = paper_colour * (1.0 - np.clip(pigment, 0.0, 255.0) / 255.0)
    # Soft, ragged border: the painting fades into bare paper away from the face.
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    cy, cx = rng.uniform(-0.03, 0.03, 2)
    radius = np.sqrt((xx - cx) ** 2 / 0.85 + (yy - cy) ** 2)
    edge = 0.5 + rng.uniform(-0.02, 0.04) + 0.1 * (_smooth_noise(rng, size, 40) - 0.5)
    fade = np.clip((radius - (edge - 0.1)) / 0.12, 0.0, 1.0)[..., None]
    img = img * (1.0 - fade) + paper_colour * fade
    return _to_u8(img)


def _box_mean(x: Float, r: int, anchor: tuple[int, int]) -> Float:
    return np.asarray(
        cv2.boxFilter(x, -1, (r + 1, r + 1), anchor=anchor, borderType=cv2.BORDER_REFLECT),
        np.float32,
    )


def oil(rgb: RGB, params: Params, rng: np.random.Generator) -> RGB:
    """Kuwahara filter (four quadrant means/variances from box filters) plus canvas."""
    size = rgb.shape[0]
    radius = params.integer("radius", 5, 1, 15)
    saturation = params.number("saturation", 1.25, 0.0, 3.0)
    texture = params.number("texture", 0.5, 0.0, 1.0)
    r = max(1, round(radius * size / 512 * rng.uniform(0.85, 1.2)))
    base = _saturate(rgb, saturation * rng.uniform(0.92, 1.1))
    img = base.astype(np.float32)
    lum = cv2.cvtColor(base, cv2.COLOR_RGB2GRAY).astype(np.float32)
    lum2 = lum * lum
    # Quadrant windows of (r+1)^2 pixels with the pixel at one corner (the anchor). The
    # classic filter takes the quadrant of least variance, which leaves square blocks;
    # weighting each quadrant's mean by 1 / (1 + var^4) (Papari et al.) gives soft strokes.
    num = np.zeros_like(img)
    den = np.zeros(img.shape[:2], np.float32)
    for anchor in ((r, r), (0, r), (r, 0), (0, 0)):
        mean_l = _box_mean(lum, r, anchor)
        var = np.maximum(_box_mean(lum2, r, anchor) - mean_l * mean_l, 0.0)
        weight = 1.0 / (1.0 + (var * np.float32(1 / 64.0)) ** 4)
        num += _box_mean(img, r, anchor) * weight[..., None]
        den += weight
    out = num / den[..., None]
    # Canvas weave and brush texture: directional noise, embossed lightly.
    if texture > 0:
        noise = rng.random((size, size), dtype=np.float32)
        length = _odd(9 * size / 512)
        angle = rng.uniform(0, 180)
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0
        rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle, 1.0)
        kernel = np.asarray(cv2.warpAffine(kernel, rot, (length, length)), np.float32)
        kernel /= max(float(kernel.sum()), 1e-6)
        strokes = cv2.filter2D(noise, -1, kernel)
        relief = cv2.filter2D(strokes, -1, np.array([[-1, 0, 0], [0, 0, 0], [0, 0, 1]], np.float32))
        out *= (1.0 + texture * 0.6 * relief)[..., None]
        out *= _paper(rng, size, texture)[..., None]
    # A warm varnish or a cool evening tone, chosen by the seed.
    warm = rng.uniform(-1.0, 1.0)
    out += np.array([10 * warm, 2 * warm, -10 * warm], np.float32)
    return _to_u8(out)


_POP_PALETTES: tuple[tuple[tuple[int, int, int], ...], ...] = (
    ((20, 20, 90), (230, 40, 140), (255, 230, 60), (255, 250, 235)),
    ((10, 60, 40), (255, 120, 0), (120, 220, 255), (255, 255, 255)),
    ((60, 0, 90), (0, 200, 160), (255, 90, 90), (255, 245, 200)),
    ((0, 40, 120), (255, 60, 60), (255, 200, 0), (240, 255, 250)),
    ((40, 20, 20), (120, 80, 255), (255, 150, 200), (255, 255, 180)),
    ((0, 0, 0), (0, 150, 255), (255, 220, 0), (255, 255, 255)),
    ((80, 0, 40), (255, 80, 0), (80, 255, 120), (255, 250, 240)),
    ((10, 10, 60), (255, 0, 120), (0, 230, 255), (255, 255, 120)),
)


def pop_art(rgb: RGB, params: Params, rng: np.random.Generator) -> RGB:
    """Four panels, each the face posterised into `levels` tones of its own palette."""
    size = rgb.shape[0]
    levels = params.integer("levels", 3, 2, 5)
    ink = params.flag("ink", True)
    half = size // 2
    small = _resize(rgb, half, cv2.INTER_AREA)
    gray = np.asarray(
        cv2.bilateralFilter(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), 7, 40, 7), np.uint8
    )
    equal = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4)).apply(gray)
    # Tone bands from the panel's own quantiles, so every band holds part of the face.
    cuts = np.quantile(equal, np.linspace(0, 1, levels + 1)[1:-1])
    bands = np.digitize(equal, cuts).astype(np.intp)
    edges = _ink_edges(gray, half * 2, 0.9) if ink else None
    order = rng.permutation(len(_POP_PALETTES))[:4]
    canvas = np.empty((half * 2, half * 2, 3), np.uint8)
    for i, idx in enumerate(order):
        palette = np.array(_POP_PALETTES[idx], np.float32)
        # Pick `levels` colours dark-to-light from the 4-colour palette.
        picks = np.round(np.linspace(0, len(palette) - 1, levels)).astype(int)
        panel = palette[picks][bands]
        if edges is not None:
            panel *= edges[..., None]
        y, x = divmod(i, 2)
        canvas[y * half : (y + 1) * half, x * half : (x + 1) * half] = _to_u8(panel)
    # Thin white gutters between the panels, like a print sheet.
    gutter = max(1, size // 128)
    canvas[half - gutter : half + gutter, :] = 250
    canvas[:, half - gutter : half + gutter] = 250
    if canvas.shape[0] != size:
        canvas = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_NEAREST)
    return canvas


def cartoon(rgb: RGB, params: Params, rng: np.random.Generator) -> RGB:
    """Bilateral smoothing, seeded k-means colours, clean ink edges."""
    size = rgb.shape[0]
    colors = params.integer("colors", 8, 2, 24)
    line = params.number("line", 1.0, 0.0, 3.0)
    half = max(MIN_SIZE // 2, size // 2)
    small = _resize(rgb, half, cv2.INTER_AREA)
    for _ in range(3):
        small = np.asarray(cv2.bilateralFilter(small, 7, 40, 5), np.uint8)
    smooth = _resize(small, size, cv2.INTER_LINEAR)
    smooth = _saturate(smooth, rng.uniform(1.2, 1.5), rng.uniform(1.03, 1.1))
    centers, labels = _kmeans_colors(smooth, colors, rng)
    # Per-seed colour grade: nudge the palette's hue a little in Lab's a/b plane.
    shift = rng.uniform(-6, 6, 2).astype(np.float32)
    centers[:, 1:] += shift
    palette = _lab_to_rgb(centers)
    flat = palette[labels]
    flat = np.asarray(cv2.medianBlur(flat, _odd(size / 170)), np.uint8)
    if line > 0:
        gray = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), np.uint8)
        flat = _to_u8(flat.astype(np.float32) * _ink_edges(gray, size, line)[..., None])
    return flat


_COMIC_INKS = (
    (20, 20, 30),
    (30, 20, 60),
    (15, 35, 50),
)
_COMIC_DOTS = (
    (200, 30, 60),  # magenta-red
    (20, 70, 160),  # blue
    (30, 30, 40),  # black
    (120, 30, 130),  # purple
)


def comic_halftone(rgb: RGB, params: Params, rng: np.random.Generator) -> RGB:
    """Flat light colours, a rotated halftone screen in the shadows, bold ink lines."""
    size = rgb.shape[0]
    pitch = params.integer("dot", 6, 3, 24) * size / 512 * rng.uniform(0.9, 1.15)
    colors = params.integer("colors", 5, 2, 12)
    half = max(MIN_SIZE // 2, size // 2)
    small = _resize(rgb, half, cv2.INTER_AREA)
    small = np.asarray(cv2.bilateralFilter(small, 7, 50, 5), np.uint8)
    smooth = _resize(small, size, cv2.INTER_LINEAR)
    smooth = _saturate(smooth, rng.uniform(1.3, 1.6), 1.0)
    centers, labels = _kmeans_colors(smooth, colors, rng, iterations=6)
    centers[:, 0] = 35 + centers[:, 0] * 0.75  # lift the darks: shadows come from dots
    flat = _lab_to_rgb(centers)[labels].astype(np.float32)
    # Halftone: dot radius grows with local darkness, on a grid rotated by the seed.
    gray = cv2.cvtColor(smooth, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    dark = np.clip((0.78 - cv2.GaussianBlur(gray, (0, 0), pitch / 2)) / 0.78, 0.0, 1.0)
    theta = math.radians(rng.uniform(15, 75))
    xx = np.arange(size, dtype=np.float32)[None, :]
    yy = np.arange(size, dtype=np.float32)[:, None]
    u = (xx * np.float32(math.cos(theta) / pitch)) + (yy * np.float32(math.sin(theta) / pitch))
    v = (yy * np.float32(math.cos(theta) / pitch)) - (xx * np.float32(math.sin(theta) / pitch))
    du = u - np.floor(u) - 0.5
    dv = v - np.floor(v) - 0.5
    dist = np.sqrt(du * du + dv * dv) * pitch
    dot_r = pitch * 0.62 * np.sqrt(dark)
    cover = np.clip(dot_r - dist + 0.5, 0.0, 1.0)[..., None]
    dot_colour = np.array(_COMIC_DOTS[rng.integers(len(_COMIC_DOTS))], np.float32)
    img = flat * (1.0 - 0.75 * cover) + dot_colour * 0.75 * cover
    ink_colour = np.array(_COMIC_INKS[rng.integers(len(_COMIC_INKS))], np.float32)
    gray_u8 = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), np.uint8)
    lines = _ink_edges(gray_u8, size, 1.6)[..., None]
    img = ink_colour + (img - ink_colour) * lines
    return _to_u8(img)


EFFECTS: Mapping[str, Effect] = {
    "pencil_sketch": Effect(pencil_sketch, frozenset({"blur", "hatching", "darkness"})),
    "watercolor": Effect(watercolor, frozenset({"sigma_s", "sigma_r", "paper"})),
    "oil": Effect(oil, frozenset({"radius", "saturation", "texture"})),
    "pop_art": Effect(pop_art, frozenset({"levels", "ink"})),
    "cartoon": Effect(cartoon, frozenset({"colors", "line"})),
    "comic_halftone": Effect(comic_halftone, frozenset({"dot", "colors"})),
}
