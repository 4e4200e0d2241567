"""The behaviour every generation backend must show, as one reusable test class.

Subclass `BackendContract` in a test module and provide a `backend` fixture:

    class TestMyBackendContract(BackendContract):
        @pytest.fixture
        def backend(self) -> Backend:
            return MyBackend(...)

The base class asks nothing style-specific of a backend: it renders the first two
styles of the shipped catalog (`good_styles`) and expects one deliberately broken style
(`broken_style`: an unknown CPU effect and a LoRA file that does not exist) to fail.
A backend whose notion of "broken" differs overrides those fixtures; a slow backend
(tiny random-weight diffusion models) may override `output_sizes`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from bot.jobs import FailureReason
from bot.styles import CpuRecipe, Style, StyleCatalog
from generation.backends.base import (
    Backend,
    GenerationError,
    GenerationOutput,
    GenerationRequest,
)
from generation.previews import sample_face_path

#: Mean absolute per-channel difference (0-255) that counts as "visibly different".
VISIBLY_DIFFERENT = 2.0

#: What a backend promises for a seed (docs/diffusers.md, "Seeds and batches"): the same
#: request in the same batch on the same machine gives identical pixels; in a batch of
#: another size, or on another machine, the same picture, visually identical but not
#: always bit for bit (kernels chosen per batch shape and per CPU, AVX2 or AVX-512, or
#: per GPU round differently). "Visually identical" is at least this PSNR (dB) ...
SAME_PICTURE_MIN_PSNR_DB = 40.0
#: ... and no channel value further apart than this (of 255). Measured: at most 2 levels
#: and over 80 dB across batch sizes and CPU kernel sets; two seeds give ~14 dB.
SAME_PICTURE_MAX_DIFF = 32.0


def pixels(image: Image.Image) -> npt.NDArray[np.float32]:
    return np.asarray(image.convert("RGB"), np.float32)


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    if a.size != b.size:
        b = b.resize(a.size, Image.Resampling.LANCZOS)
    return float(np.abs(pixels(a) - pixels(b)).mean())


def psnr(a: Image.Image, b: Image.Image) -> float:
    """Peak signal-to-noise ratio in dB (inf for identical pixels)."""
    mse = float(np.mean((pixels(a) - pixels(b)) ** 2))
    return float("inf") if mse == 0 else 10 * float(np.log10(255**2 / mse))


def assert_same_picture(a: Image.Image, b: Image.Image) -> None:
    """`a` and `b` are one seed's picture, made in batches of different sizes or on
    different machines: visually identical (see SAME_PICTURE_MIN_PSNR_DB)."""
    assert a.size == b.size
    quality = psnr(a, b)
    worst = float(np.abs(pixels(a) - pixels(b)).max())
    assert quality >= SAME_PICTURE_MIN_PSNR_DB, f"{quality:.1f} dB"
    assert worst <= SAME_PICTURE_MAX_DIFF, f"a channel value {worst:.0f} levels apart"


def outputs(results: Sequence[GenerationOutput | GenerationError]) -> list[GenerationOutput]:
    """All results as outputs; fails the test with the error if any request failed."""
    out: list[GenerationOutput] = []
    for result in results:
        if isinstance(result, GenerationError):
            pytest.fail(f"request failed: {result!r} (reason {result.reason})")
        out.append(result)
    return out


class BackendContract:
    """Contract tests; subclasses provide the `backend` fixture."""

    output_sizes: tuple[int, ...] = (256, 512, 768)
    """Square output sides the backend must honour."""
    size: int = 256
    """Side used by the other tests (small, to keep them quick)."""

    @pytest.fixture
    def backend(self) -> Backend:
        raise NotImplementedError("subclasses of BackendContract provide a `backend` fixture")

    @pytest.fixture
    def selfie(self) -> Image.Image:
        with Image.open(sample_face_path()) as image:
            return image.convert("RGB")

    @pytest.fixture
    def good_styles(self) -> tuple[Style, Style]:
        catalog = list(StyleCatalog.load())
        return catalog[0], catalog[1]

    @pytest.fixture
    def broken_style(self, good_styles: tuple[Style, Style]) -> Style:
        style = good_styles[0]
        return replace(
            style,
            id="broken",
            cpu=CpuRecipe(effect="no_such_effect"),
            diffusion=replace(style.diffusion, lora="/nonexistent/avatarbot-missing-lora"),
        )

    def request(
        self,
        key: str,
        selfie: Image.Image,
        style: Style,
        seeds: tuple[int, ...] = (1,),
        size: int | None = None,
    ) -> GenerationRequest:
        return GenerationRequest(
            key=key, selfie=selfie, style=style, seeds=seeds, size=size or self.size
        )

    # ------------------------------------------------------------------ tests

    def test_backend_names_itself(self, backend: Backend) -> None:
        assert backend.name
        assert backend.name != "abstract"
        assert backend.device
        assert backend.name in backend.describe()

    def test_empty_batch_gives_empty_list(self, backend: Backend) -> None:
        assert backend.generate([]) == []

    def test_mixed_styles_come_back_one_per_request_in_order(
        self, backend: Backend, selfie: Image.Image, good_styles: tuple[Style, Style]
    ) -> None:
        a, b = good_styles
        batch = [
            self.request("job-a1", selfie, a),
            self.request("job-b", selfie, b),
            self.request("job-a2", selfie, a, seeds=(2,)),
        ]
        results = outputs(backend.generate(batch))
        assert [r.key for r in results] == ["job-a1", "job-b", "job-a2"]
        assert all(len(r.images) == 1 for r in results)
        # Different styles with the same seed are different pictures.
        assert mean_abs_diff(results[0].images[0].image, results[1].images[0].image) > (
            VISIBLY_DIFFERENT
        )

    def test_variants_come_back_with_their_seeds(
        self, backend: Backend, selfie: Image.Image, good_styles: tuple[Style, Style]
    ) -> None:
        seeds = (11, 4_000_000_000, 0)
        (result,) = outputs(
            backend.generate([self.request("job", selfie, good_styles[0], seeds=seeds)])
        )
        assert tuple(image.seed for image in result.images) == seeds
        first, second, third = (image.image for image in result.images)
        assert mean_abs_diff(first, second) > VISIBLY_DIFFERENT
        assert mean_abs_diff(second, third) > VISIBLY_DIFFERENT

    def test_same_request_gives_identical_pixels(
        self, backend: Backend, selfie: Image.Image, good_styles: tuple[Style, Style]
    ) -> None:
        style = good_styles[0]
        (once,) = outputs(backend.generate([self.request("a", selfie, style, seeds=(42, 43))]))
        (again,) = outputs(backend.generate([self.request("a", selfie, style, seeds=(42, 43))]))
        for first, second in zip(once.images, again.images, strict=True):
            assert np.array_equal(pixels(first.image), pixels(second.image))

    def test_same_seed_in_another_batch_gives_the_same_picture(
        self, backend: Backend, selfie: Image.Image, good_styles: tuple[Style, Style]
    ) -> None:
        style = good_styles[0]
        (pair,) = outputs(backend.generate([self.request("a", selfie, style, seeds=(42, 43))]))
        (alone,) = outputs(backend.generate([self.request("b", selfie, style, seeds=(42,))]))
        assert_same_picture(pair.images[0].image, alone.images[0].image)
        assert mean_abs_diff(pair.images[0].image, pair.images[1].image) > VISIBLY_DIFFERENT
        assert psnr(pair.images[0].image, pair.images[1].image) < SAME_PICTURE_MIN_PSNR_DB

    def test_output_is_rgb_at_the_requested_size(
        self, backend: Backend, selfie: Image.Image, good_styles: tuple[Style, Style]
    ) -> None:
        batch = [
            self.request(f"s{size}", selfie, good_styles[i % 2], size=size)
            for i, size in enumerate(self.output_sizes)
        ]
        results = outputs(backend.generate(batch))
        for size, result in zip(self.output_sizes, results, strict=True):
            image = result.images[0].image
            assert image.mode == "RGB"
            assert image.size == (size, size)

    def test_a_failing_request_fails_alone(
        self,
        backend: Backend,
        selfie: Image.Image,
        good_styles: tuple[Style, Style],
        broken_style: Style,
    ) -> None:
        batch = [
            self.request("ok-1", selfie, good_styles[0]),
            self.request("bad", selfie, broken_style),
            self.request("ok-2", selfie, good_styles[1]),
        ]
        first, bad, last = backend.generate(batch)
        assert isinstance(bad, GenerationError)
        assert bad.reason in {FailureReason.UNKNOWN_STYLE, FailureReason.GENERATION_FAILED}
        assert bad.user_message  # something a user can be told
        assert isinstance(first, GenerationOutput)
        assert first.key == "ok-1"
        assert isinstance(last, GenerationOutput)
        assert last.key == "ok-2"

    def test_progress_reaches_one_for_every_request(
        self, backend: Backend, selfie: Image.Image, good_styles: tuple[Style, Style]
    ) -> None:
        seen: dict[str, list[float]] = {}
        lock = threading.Lock()

        def progress(key: str, fraction: float) -> None:
            with lock:
                seen.setdefault(key, []).append(fraction)

        batch = [
            self.request("one", selfie, good_styles[0]),
            self.request("three", selfie, good_styles[1], seeds=(1, 2, 3)),
        ]
        outputs(backend.generate(batch, progress))
        assert set(seen) == {"one", "three"}
        for fractions in seen.values():
            assert all(0.0 <= f <= 1.0 for f in fractions)
            assert fractions == sorted(fractions)
            assert fractions[-1] == pytest.approx(1.0)

    def test_output_is_not_the_input(
        self, backend: Backend, selfie: Image.Image, good_styles: tuple[Style, Style]
    ) -> None:
        results = outputs(backend.generate([self.request(s.id, selfie, s) for s in good_styles]))
        for result in results:
            assert mean_abs_diff(result.images[0].image, selfie) > 10.0
