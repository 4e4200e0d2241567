"""Preview images for the style picker: one small JPEG per style, made by a backend.

`avatarbot previews` calls `render_previews` with the shipped sample face
(`bot/data/sample_face.jpg`, a public-domain NASA portrait) to refresh
`bot/data/previews/`; operators with their own catalog run it into their own folder.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from PIL import Image

from bot.styles import StyleCatalog
from generation.backends.base import (
    Backend,
    GenerationError,
    GenerationOutput,
    GenerationRequest,
)

PREVIEW_SEED = 7
"""One fixed seed, so re-running the command reproduces the committed previews."""
PREVIEW_QUALITY = 85


def sample_face_path() -> Path:
    """The shipped sample face (a square portrait crop, 512 px)."""
    return Path(str(resources.files("bot").joinpath("data/sample_face.jpg")))


def render_previews(
    catalog: StyleCatalog,
    backend: Backend,
    sample: Image.Image,
    out_dir: Path,
    size: int = 256,
) -> list[Path]:
    """Write `<style_id>.jpg` (size x size, JPEG q85) for every style; return the paths.

    All styles go to the backend as one batch. Raises the first style's GenerationError
    if any style fails: a catalog with a broken style should not ship half its previews.
    """
    rgb = sample.convert("RGB") if sample.mode != "RGB" else sample
    requests = [
        GenerationRequest(key=style.id, selfie=rgb, style=style, seeds=(PREVIEW_SEED,), size=size)
        for style in catalog
    ]
    outputs: list[GenerationOutput] = []
    for result in backend.generate(requests):
        if isinstance(result, GenerationError):
            raise result
        outputs.append(result)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for result in outputs:
        path = out_dir / f"{result.key}.jpg"
        tmp = path.with_suffix(".jpg.tmp")
        result.images[0].image.save(tmp, "JPEG", quality=PREVIEW_QUALITY, optimize=True)
        tmp.replace(path)
        paths.append(path)
    return paths
