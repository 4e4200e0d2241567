"""The CPU style engine: the backend contract, every shipped style, previews, the factory."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.faces import DlibHogDetector
from bot.jobs import FailureReason
from bot.styles import CpuRecipe, Style, StyleCatalog, preview_path
from generation.backends import load_backend
from generation.backends.base import (
    Backend,
    BackendUnavailableError,
    GenerationError,
    GenerationRequest,
)
from generation.backends.cpu_engine import EFFECTS, CpuStyleEngine
from generation.previews import render_previews, sample_face_path
from tests.backend_contract import VISIBLY_DIFFERENT, BackendContract, mean_abs_diff

CATALOG = StyleCatalog.load()
ROOT = Path(__file__).resolve().parent.parent


class TestCpuEngineContract(BackendContract):
    @pytest.fixture
    def backend(self) -> Backend:
        return CpuStyleEngine()


@pytest.fixture(scope="module")
def engine() -> CpuStyleEngine:
    return CpuStyleEngine()


@pytest.fixture(scope="module")
def face() -> Image.Image:
    with Image.open(sample_face_path()) as image:
        return image.convert("RGB")


@pytest.fixture(scope="module")
def detector() -> DlibHogDetector:
    return DlibHogDetector()


def with_cpu(style: Style, effect: str, **params: float | int | str | bool) -> Style:
    return replace(style, cpu=CpuRecipe(effect=effect, params=params))


def test_catalog_uses_every_effect_and_only_known_ones() -> None:
    assert {style.cpu.effect for style in CATALOG} == set(EFFECTS)


@pytest.mark.parametrize("style_id", CATALOG.ids)
def test_every_style_keeps_exactly_the_face(
    style_id: str, engine: CpuStyleEngine, face: Image.Image, detector: DlibHogDetector
) -> None:
    style = CATALOG.get(style_id)
    image = engine.render(face, style.cpu.effect, style.cpu.params, seed=3, size=512)
    assert image.size == (512, 512)
    assert image.mode == "RGB"
    assert mean_abs_diff(image, face) > 10.0
    faces = detector.detect(np.asarray(image))
    # The pop-art sheet shows the face once per panel; every other style keeps one face.
    expected = 4 if style.cpu.effect == "pop_art" else 1
    assert len(faces) == expected, [round(f.score, 2) for f in faces]


@pytest.mark.parametrize("effect", sorted(EFFECTS))
def test_each_effect_is_seeded(effect: str, engine: CpuStyleEngine, face: Image.Image) -> None:
    one = engine.render(face, effect, {}, seed=1, size=192)
    two = engine.render(face, effect, {}, seed=2, size=192)
    again = engine.render(face, effect, {}, seed=1, size=192)
    assert np.array_equal(np.asarray(one), np.asarray(again))
    assert mean_abs_diff(one, two) > VISIBLY_DIFFERENT


def test_unknown_effect_is_an_unknown_style(engine: CpuStyleEngine, face: Image.Image) -> None:
    with pytest.raises(GenerationError, match="no_such_effect") as caught:
        engine.render(face, "no_such_effect", {}, seed=1, size=128)
    assert caught.value.reason == FailureReason.UNKNOWN_STYLE


@pytest.mark.parametrize(
    ("effect", "params", "says"),
    [
        ("oil", {"radius": 99}, "radius=99 is outside"),
        ("oil", {"radius": 2.5}, "must be an integer"),
        ("cartoon", {"colours": 8}, "no param(s) colours"),
        ("pop_art", {"ink": "yes"}, "must be true or false"),
        ("watercolor", {"sigma_r": float("nan")}, "sigma_r=nan"),
        ("pencil_sketch", {"blur": True}, "must be an integer"),
    ],
)
def test_bad_params_fail_that_request_with_their_name(
    effect: str,
    params: dict[str, float | int | str | bool],
    says: str,
    engine: CpuStyleEngine,
    face: Image.Image,
) -> None:
    style = with_cpu(CATALOG.get("oil"), effect, **params)
    good = CATALOG.get("cartoon")
    results = engine.generate(
        [
            GenerationRequest(key="bad", selfie=face, style=style, seeds=(1,), size=128),
            GenerationRequest(key="good", selfie=face, style=good, seeds=(1,), size=128),
        ]
    )
    bad, ok = results
    assert isinstance(bad, GenerationError)
    assert bad.reason == FailureReason.GENERATION_FAILED
    assert says in str(bad)
    assert not isinstance(ok, GenerationError)


def test_request_without_seeds_fails_alone(engine: CpuStyleEngine, face: Image.Image) -> None:
    style = CATALOG.get("sketch")
    empty, ok = engine.generate(
        [
            GenerationRequest(key="none", selfie=face, style=style, seeds=(), size=128),
            GenerationRequest(key="one", selfie=face, style=style, seeds=(5,), size=128),
        ]
    )
    assert isinstance(empty, GenerationError)
    assert not isinstance(ok, GenerationError)


@pytest.mark.parametrize("size", [16, 4096])
def test_absurd_sizes_are_refused(size: int, engine: CpuStyleEngine, face: Image.Image) -> None:
    with pytest.raises(GenerationError, match="outside"):
        engine.render(face, "oil", {}, seed=1, size=size)


def test_non_square_greyscale_selfie_is_centre_cropped(
    engine: CpuStyleEngine, face: Image.Image
) -> None:
    wide = Image.new("L", (600, 300), 200)
    wide.paste(face.convert("L").resize((300, 300)), (150, 0))
    image = engine.render(wide, "cartoon", {}, seed=1, size=256)
    assert image.size == (256, 256)
    assert image.mode == "RGB"


def test_shipped_previews_exist_for_every_style() -> None:
    for style in CATALOG:
        path = preview_path(style.id)
        with Image.open(path, formats=["JPEG"]) as image:
            image.load()
            assert image.format == "JPEG"
            assert image.mode == "RGB"
            assert image.size == (256, 256)
        assert path.stat().st_size < 60_000


def test_sample_face_is_a_small_square_portrait(detector: DlibHogDetector) -> None:
    with Image.open(sample_face_path(), formats=["JPEG"]) as image:
        assert image.width == image.height <= 512
        assert len(detector.detect(np.asarray(image.convert("RGB")))) == 1


def test_render_previews_writes_one_jpeg_per_style(
    tmp_path: Path, engine: CpuStyleEngine, face: Image.Image
) -> None:
    out_dir = tmp_path / "previews"
    paths = render_previews(CATALOG, engine, face, out_dir, size=96)
    assert paths == [out_dir / f"{style_id}.jpg" for style_id in CATALOG.ids]
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(p.name for p in paths)
    for path in paths:
        with Image.open(path, formats=["JPEG"]) as image:
            assert image.size == (96, 96)


def test_render_previews_writes_nothing_when_a_style_fails(
    tmp_path: Path, engine: CpuStyleEngine, face: Image.Image
) -> None:
    broken = StyleCatalog([CATALOG.get("sketch"), with_cpu(CATALOG.get("oil"), "nope")])
    with pytest.raises(GenerationError, match="nope"):
        render_previews(broken, engine, face, tmp_path / "out", size=64)
    assert not (tmp_path / "out").exists()


def test_load_backend_cpu() -> None:
    backend = load_backend("cpu")
    assert isinstance(backend, CpuStyleEngine)
    assert backend.describe() == "cpu on cpu"


def test_load_backend_unknown_name() -> None:
    with pytest.raises(BackendUnavailableError, match="cpu, diffusers"):
        load_backend("tensorflow")


def test_load_backend_diffusers_without_torch_says_what_to_install() -> None:
    # A real interpreter in which torch and diffusers cannot be imported (a None entry in
    # sys.modules makes `import` raise ImportError), whatever this venv has installed.
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "sys.modules['diffusers'] = None\n"
        "from generation.backends import DiffusersOptions, load_backend\n"
        "from generation.backends.base import BackendUnavailableError\n"
        "try:\n"
        "    options = DiffusersOptions(model='stabilityai/sd-turbo', device='cpu')\n"
        "    load_backend('diffusers', options)\n"
        "except BackendUnavailableError as exc:\n"
        "    print(exc)\n"
        "    raise SystemExit(3)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr
    assert "avatarbot[diffusion]" in done.stdout
