"""The diffusers backend on tiny random-weight SD and SDXL models, offline, on the CPU.

The models are built from config in a session fixture (tests/tiny_diffusion.py), saved,
and loaded through the backend's real `load()` with `local_files_only=True`. They render
at 64 px (a test-only size bucket), so each pipeline call takes milliseconds.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aioredis
import torch
from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline
from PIL import Image, ImageOps

from bot.config import load_settings
from bot.jobs import FailureReason, JobStatus
from bot.queue import QueueConfig
from bot.styles import CpuRecipe, DiffusionRecipe, Style, StyleCatalog
from generation.backends import backend_from_settings, load_backend
from generation.backends.base import (
    Backend,
    BackendUnavailableError,
    GenerationError,
    GenerationOutput,
    GenerationRequest,
)
from generation.backends.diffusers_backend import DiffusersBackend, load, scheduler_steps
from generation.backends.diffusers_options import DiffusersOptions
from generation.backends.diffusers_safety import SafetyChecker
from generation.backends.face_embedders import FaceEmbedder
from generation.worker import Worker
from tests import tiny_diffusion
from tests.backend_contract import BackendContract, assert_same_picture
from tests.queue_helpers import BOT, JobQueue, collect
from tests.queue_helpers import request as queue_request
from tests.tiny_diffusion import TinyModels

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)

BUCKET = 64

pytestmark = pytest.mark.filterwarnings(
    # torch 2.13's Tensor.__array__ lacks numpy 2's `copy` keyword; diffusers' schedulers
    # call np.array(tensor) in set_timesteps. Harmless, and not ours to fix.
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


def make_style(style_id: str, prompt: str, **recipe: Any) -> Style:
    return Style(
        id=style_id,
        title=style_id.title(),
        emoji="🎨",
        description="",
        cpu=CpuRecipe(effect="pencil_sketch"),
        diffusion=DiffusionRecipe(prompt=prompt, **{"strength": 0.5, "steps": 2, **recipe}),
    )


SKETCH = make_style("sketch", "pencil sketch portrait of a person")
OIL = make_style("oil", "oil painting portrait of a person, thick brush strokes", strength=0.75)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return tiny_diffusion.build(tmp_path_factory.mktemp("tiny-diffusion"))


def load_tiny(model: Path, models: TinyModels, **options: Any) -> DiffusersBackend:
    settings: dict[str, Any] = {
        "local_files_only": True,
        "ip_adapter": str(models.ip_adapter),
        "size_buckets": (BUCKET,),
    }
    settings.update(options)
    return load(DiffusersOptions(model=str(model), device="cpu", **settings))


@pytest.fixture(scope="session")
def sd_backend(tiny_models: TinyModels) -> DiffusersBackend:
    return load_tiny(tiny_models.sd, tiny_models)


@pytest.fixture(scope="session")
def sdxl_backend(tiny_models: TinyModels) -> DiffusersBackend:
    return load_tiny(tiny_models.sdxl, tiny_models)


@pytest.fixture(params=["sd", "sdxl"])
def any_backend(request: pytest.FixtureRequest) -> DiffusersBackend:
    backend: DiffusersBackend = request.getfixturevalue(f"{request.param}_backend")
    return backend


@pytest.fixture(scope="session")
def face(face_jpeg: bytes) -> Image.Image:
    """The intake's output: a square RGB crop around the face."""
    image = Image.open(io.BytesIO(face_jpeg)).convert("RGB")
    return ImageOps.fit(image, (160, 160), centering=(0.5, 0.3))


@pytest.fixture(scope="session")
def other_face(face: Image.Image) -> Image.Image:
    return ImageOps.mirror(face).rotate(20)


def request_for(
    face: Image.Image,
    style: Style = SKETCH,
    seeds: tuple[int, ...] = (7,),
    key: str = "job",
    size: int = BUCKET,
) -> GenerationRequest:
    return GenerationRequest(key=key, selfie=face, style=style, seeds=seeds, size=size)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def output(result: GenerationOutput | GenerationError) -> GenerationOutput:
    assert isinstance(result, GenerationOutput), f"expected an output, got {result!r}"
    return result


def generate_one(backend: DiffusersBackend, request: GenerationRequest) -> GenerationOutput:
    [result] = backend.generate([request])
    return output(result)


# --- loading -----------------------------------------------------------------------


def test_loads_each_family_from_its_config(
    sd_backend: DiffusersBackend, sdxl_backend: DiffusersBackend
) -> None:
    assert sd_backend.family == "sd"
    assert isinstance(sd_backend.pipeline, StableDiffusionImg2ImgPipeline)
    assert sdxl_backend.family == "sdxl"
    assert isinstance(sdxl_backend.pipeline, StableDiffusionXLImg2ImgPipeline)
    for backend in (sd_backend, sdxl_backend):
        assert backend.name == "diffusers"
        assert backend.device == "cpu"
        assert backend.dtype == torch.float32
        assert backend.ip_adapter
        assert "ip-adapter" in backend.describe()
        assert backend.describe().startswith("diffusers on cpu")
        scheduler = backend.pipeline.scheduler
        assert type(scheduler).__name__ == "EulerDiscreteScheduler"
        assert scheduler.config.timestep_spacing == "trailing"


def test_unknown_model_family_and_missing_model_are_unavailable(
    tmp_path: Path, tiny_models: TinyModels
) -> None:
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    with pytest.raises(BackendUnavailableError, match="FluxPipeline"):
        load(DiffusersOptions(model=str(tmp_path), device="cpu", local_files_only=True))
    with pytest.raises(BackendUnavailableError, match="cannot read model"):
        load(DiffusersOptions(model=str(tmp_path / "absent"), device="cpu", local_files_only=True))
    with pytest.raises(BackendUnavailableError, match="IP-Adapter"):
        load_tiny(tiny_models.sd, tiny_models, ip_adapter=str(tmp_path / "no-adapter"))


def test_scheduler_steps_leave_exactly_the_recipe_steps() -> None:
    for steps in range(1, 9):
        for strength in (0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 1.0):
            total = scheduler_steps(steps, strength)
            assert int(total * strength) == steps, (steps, strength, total)
    with pytest.raises(GenerationError):
        scheduler_steps(0, 0.5)


# --- outputs -------------------------------------------------------------------------


def test_output_size_mode_and_recorded_seeds(
    any_backend: DiffusersBackend, face: Image.Image
) -> None:
    small = request_for(face, seeds=(11, 12), key="small")
    large = request_for(face, seeds=(13,), key="large", size=96)  # rendered at 64, resized
    results = any_backend.generate([small, large])
    first, second = output(results[0]), output(results[1])
    assert first.key == "small"
    assert [g.seed for g in first.images] == [11, 12]
    assert all(g.image.size == (64, 64) and g.image.mode == "RGB" for g in first.images)
    assert second.key == "large"
    assert [(g.seed, g.image.size, g.image.mode) for g in second.images] == [(13, (96, 96), "RGB")]


def test_variants_from_distinct_seeds_differ(
    any_backend: DiffusersBackend, face: Image.Image
) -> None:
    result = generate_one(any_backend, request_for(face, seeds=(1, 2, 3)))
    images = [pixels(g.image) for g in result.images]
    assert len(images) == 3
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(images[i] - images[j]).mean() > 1.0


def test_same_seed_same_pixels_alone_or_in_a_batch(
    any_backend: DiffusersBackend, face: Image.Image, other_face: Image.Image
) -> None:
    alone = generate_one(any_backend, request_for(face, seeds=(42,), key="a"))
    again = generate_one(any_backend, request_for(face, seeds=(42,), key="a"))
    assert np.array_equal(pixels(alone.images[0].image), pixels(again.images[0].image))

    batch = any_backend.generate(
        [
            request_for(other_face, seeds=(5, 6), key="b"),
            request_for(face, seeds=(42,), key="a"),
            request_for(other_face, seeds=(9,), key="c"),
        ]
    )
    in_batch = output(batch[1]).images[0]
    assert in_batch.seed == 42
    assert_same_picture(in_batch.image, alone.images[0].image)


#: Kernels another machine may run: MKL's matrix products pinned to its AVX-512 code path
#: (what an Intel Xeon runs). On an AMD EPYC this moves a few pixels of tiny SDXL at 64 px
#: by one level (89 dB); a CPU or build where it changes nothing still checks the promise.
OTHER_CPU_KERNELS = {"MKL_CBWR": "AVX512"}

_RENDER_ELSEWHERE = """
import sys
from pathlib import Path

from PIL import Image

from generation.backends.diffusers_backend import load
from generation.backends.diffusers_options import DiffusersOptions
from tests.test_diffusers_backend import BUCKET, SKETCH, request_for

face_png, out_dir, ip_adapter, *models = sys.argv[1:]
face = Image.open(face_png).convert("RGB")
for model in models:
    backend = load(DiffusersOptions(model=model, device="cpu", local_files_only=True,
                                    ip_adapter=ip_adapter, size_buckets=(BUCKET,)))
    [result] = backend.generate([request_for(face, SKETCH, seeds=(42, 43))])
    result.images[0].image.save(Path(out_dir) / (Path(model).name + ".png"))
"""


def test_a_seed_gives_the_same_picture_with_another_machines_kernels(
    tiny_models: TinyModels,
    sd_backend: DiffusersBackend,
    sdxl_backend: DiffusersBackend,
    face: Image.Image,
    tmp_path: Path,
) -> None:
    """The promise across machines: seed 42 alone here, and in a batch of two in a process
    that runs other CPU kernels (as another machine would), is the same picture."""
    face.save(tmp_path / "face.png")
    models = [tiny_models.sd, tiny_models.sdxl]
    env = dict(os.environ, **OTHER_CPU_KERNELS, OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-c", _RENDER_ELSEWHERE, str(tmp_path / "face.png"), str(tmp_path),
         str(tiny_models.ip_adapter), *map(str, models)],
        env=env, cwd=Path(__file__).parent.parent, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    for model, backend in zip(models, (sd_backend, sdxl_backend), strict=True):
        here = generate_one(backend, request_for(face, SKETCH, seeds=(42,))).images[0].image
        with Image.open(tmp_path / f"{model.name}.png") as elsewhere:
            assert_same_picture(here, elsewhere.convert("RGB"))


def test_mixed_styles_batch_one_call_per_style(
    sd_backend: DiffusersBackend, face: Image.Image, other_face: Image.Image
) -> None:
    batch = [
        request_for(face, SKETCH, (1,), "s1"),
        request_for(other_face, OIL, (2, 3), "o1"),
        request_for(other_face, SKETCH, (4,), "s2"),
        request_for(face, OIL, (5,), "o2"),
    ]
    calls = sd_backend.pipeline_calls
    results = sd_backend.generate(batch)
    assert sd_backend.pipeline_calls - calls == 2
    assert [output(r).key for r in results] == ["s1", "o1", "s2", "o2"]
    assert [len(output(r).images) for r in results] == [1, 2, 1, 1]
    alone = generate_one(sd_backend, batch[1])
    assert_same_picture(output(results[1]).images[1].image, alone.images[1].image)
    # Same seed and selfie, different style: different picture.
    sketch = generate_one(sd_backend, request_for(face, SKETCH, (5,)))
    assert (
        np.abs(pixels(sketch.images[0].image) - pixels(output(results[3]).images[0].image)).mean()
        > 1
    )


def test_batches_are_capped_by_max_batch_images(tiny_models: TinyModels, face: Image.Image) -> None:
    backend = load_tiny(tiny_models.sd, tiny_models, max_batch_images=2, ip_adapter=None)
    results = backend.generate(
        [request_for(face, seeds=(i, i + 100), key=str(i)) for i in range(3)]
    )
    assert backend.pipeline_calls == 3
    assert [len(output(r).images) for r in results] == [2, 2, 2]


def test_a_failing_request_fails_alone(sd_backend: DiffusersBackend, face: Image.Image) -> None:
    broken_selfie = Image.new("RGB", (1, 1))
    missing_lora = make_style("ghost", "ghost portrait", lora="/nonexistent/lora.safetensors")
    batch = [
        request_for(face, seeds=(1,), key="ok1"),
        request_for(broken_selfie, seeds=(2,), key="bad-selfie"),
        request_for(face, missing_lora, seeds=(3,), key="bad-lora"),
        request_for(face, seeds=(4,), key="ok2"),
    ]
    results = sd_backend.generate(batch)
    assert isinstance(results[1], GenerationError)
    assert results[1].reason is FailureReason.GENERATION_FAILED
    assert isinstance(results[2], GenerationError)
    assert "LoRA" in str(results[2])
    ok1, ok2 = output(results[0]), output(results[3])
    assert [g.seed for g in ok1.images] == [1]
    assert [g.seed for g in ok2.images] == [4]
    alone = generate_one(sd_backend, batch[3])
    assert_same_picture(ok2.images[0].image, alone.images[0].image)


def test_progress_reaches_one_for_every_request(
    sd_backend: DiffusersBackend, face: Image.Image
) -> None:
    seen: dict[str, list[float]] = {}
    sd_backend.generate(
        [request_for(face, key="p1"), request_for(face, OIL, key="p2")],
        progress=lambda key, fraction: seen.setdefault(key, []).append(fraction),
    )
    assert set(seen) == {"p1", "p2"}
    for fractions in seen.values():
        assert fractions == sorted(fractions)
        assert fractions[-1] == 1.0


# --- likeness, LoRA, safety ------------------------------------------------------------


def test_ip_adapter_conditions_on_the_face(
    tiny_models: TinyModels, sd_backend: DiffusersBackend, face: Image.Image
) -> None:
    plain = load_tiny(tiny_models.sd, tiny_models, ip_adapter=None)
    assert not plain.ip_adapter
    processors = sd_backend.pipeline.unet.attn_processors.values()
    assert any(type(p).__name__.startswith("IPAdapter") for p in processors)
    request = request_for(face, seeds=(3,))
    with_ip = generate_one(sd_backend, request).images[0].image
    without = generate_one(plain, request).images[0].image
    assert np.abs(pixels(with_ip) - pixels(without)).mean() > 0.5


class FixedFaceEmbedder(FaceEmbedder):
    """A stand-in ArcFace: a unit vector derived from the image's mean colour."""

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, face: Image.Image) -> np.ndarray:
        self.calls += 1
        rng = np.random.default_rng(int(np.asarray(face).mean() * 1000))
        vector = rng.standard_normal(self.dim).astype(np.float32)
        return vector / np.linalg.norm(vector)


def test_faceid_adapter_uses_the_face_embedder(
    tiny_models: TinyModels, face: Image.Image, other_face: Image.Image
) -> None:
    faceid = {
        "ip_adapter": str(tiny_models.faceid),
        "ip_adapter_subfolder": "",
        "ip_adapter_weight": tiny_diffusion.FACEID_WEIGHT,
        "ip_adapter_image_encoder": None,
    }
    with pytest.raises(BackendUnavailableError, match="FaceEmbedder"):
        load_tiny(tiny_models.sd, tiny_models, **faceid)
    embedder = FixedFaceEmbedder()
    backend = load_tiny(tiny_models.sd, tiny_models, face_embedder=embedder, **faceid)
    assert "ip-adapter (face)" in backend.describe()
    results = backend.generate(
        [request_for(face, seeds=(1, 2), key="a"), request_for(other_face, seeds=(3,), key="b")]
    )
    assert embedder.calls == 2  # once per request, not per variant
    assert [len(output(r).images) for r in results] == [2, 1]


def test_lora_switches_by_name_without_reloading(
    tiny_models: TinyModels, any_backend: DiffusersBackend, face: Image.Image
) -> None:
    lora_dir = tiny_models.lora_sdxl if any_backend.family == "sdxl" else tiny_models.lora_sd
    lora_file = str(lora_dir / "pytorch_lora_weights.safetensors")
    styled = make_style("styled", SKETCH.diffusion.prompt, lora=lora_file, lora_scale=1.0)
    faint = make_style("faint", SKETCH.diffusion.prompt, lora=lora_file, lora_scale=0.0)
    request = request_for(face, seeds=(8,))

    def render(style: Style) -> np.ndarray:
        return pixels(generate_one(any_backend, request_for(face, style, (8,))).images[0].image)

    plain = pixels(generate_one(any_backend, request).images[0].image)
    with_lora = render(styled)
    assert np.abs(with_lora - plain).mean() > 0.5
    assert np.array_equal(render(SKETCH), plain)  # switched off, not unloaded
    assert np.array_equal(render(styled), with_lora)
    assert np.abs(render(faint) - plain).max() <= 1  # same adapter, weight 0
    assert list(any_backend.loaded_loras) == [lora_file]
    adapters = any_backend.pipeline.get_list_adapters()
    assert adapters["unet"] == [any_backend.loaded_loras[lora_file]]


class FlagEverything(SafetyChecker):
    def __init__(self) -> None:
        self.seen = 0

    def __call__(self, images: Any) -> list[bool]:
        self.seen += len(images)
        return [True] * len(images)


def test_safety_checker_hook_blocks_requests(tiny_models: TinyModels, face: Image.Image) -> None:
    checker = FlagEverything()
    backend = load_tiny(tiny_models.sdxl, tiny_models, safety_checker=checker, ip_adapter=None)
    results = backend.generate(
        [request_for(face, seeds=(1, 2), key="a"), request_for(face, key="b")]
    )
    assert checker.seen == 3
    for result in results:
        assert isinstance(result, GenerationError)
        assert result.reason is FailureReason.BLOCKED_CONTENT
        assert "safety filter" in result.user_message


def test_model_safety_checker_is_on_by_default(tiny_models: TinyModels, face: Image.Image) -> None:
    guarded = load_tiny(tiny_models.sd_nsfw, tiny_models)
    assert "safety checker" in guarded.describe()
    assert guarded.pipeline.safety_checker is None  # run by the backend, per request
    [result] = guarded.generate([request_for(face)])
    assert isinstance(result, GenerationError)
    assert result.reason is FailureReason.BLOCKED_CONTENT

    unguarded = load_tiny(tiny_models.sd_nsfw, tiny_models, safety_checker=False)
    assert unguarded.safety_checker is None
    generate_one(unguarded, request_for(face))


# --- speed levers --------------------------------------------------------------------


def test_tiny_autoencoder_and_lcm_scheduler(tiny_models: TinyModels, face: Image.Image) -> None:
    backend = load_tiny(
        tiny_models.sd, tiny_models, tiny_vae=str(tiny_models.taesd), scheduler="lcm"
    )
    assert type(backend.pipeline.vae).__name__ == "AutoencoderTiny"
    assert type(backend.pipeline.scheduler).__name__ == "LCMScheduler"
    result = generate_one(backend, request_for(face, seeds=(1, 2)))
    assert [g.image.size for g in result.images] == [(64, 64), (64, 64)]
    assert not np.array_equal(pixels(result.images[0].image), pixels(result.images[1].image))


def test_warmup_runs_the_pipeline_before_the_first_user(tiny_models: TinyModels) -> None:
    backend = load_tiny(tiny_models.sd, tiny_models)
    assert backend.pipeline_calls == 0
    backend.warmup()
    assert backend.pipeline_calls == 2  # batch of 1 and of 2 at the warm-up size


def test_compiled_backend_compiles_in_warmup_never_on_a_request(
    tiny_models: TinyModels, face: Image.Image
) -> None:
    """torch.compile with a counting backend (dynamo traces and guards as for inductor; the
    graphs then run eagerly, so this takes seconds on the CPU). Every graph a request needs
    is made by `warmup()`, for each LoRA setting the styles use (adapter weights are
    Python numbers graphs are specialised on) and any batch size; results match eager."""
    lora = str(tiny_models.lora_sd / "pytorch_lora_weights.safetensors")
    # One LoRA setting is enough here (tracing is the slow part); that each (LoRA, scale)
    # gets its own warm-up is checked below, through the settings.
    styles = [SKETCH, make_style("styled", SKETCH.diffusion.prompt, lora=lora, lora_scale=0.7)]
    graphs: list[int] = []

    def counting_backend(graph: torch.fx.GraphModule, _inputs: list[Any]) -> Any:
        graphs.append(len(graph.graph.nodes))
        return graph.forward

    options: dict[str, Any] = {"preload_loras": [lora], "max_batch_images": 4}
    compiled = load_tiny(
        tiny_models.sd, tiny_models, compile=True, compile_backend=counting_backend,
        warmup_recipes=[s.diffusion for s in styles], **options,
    )  # fmt: skip
    eager = load_tiny(tiny_models.sd, tiny_models, **options)
    try:
        assert graphs == []  # nothing is compiled while loading
        compiled.warmup()
        warmed = len(graphs)
        assert warmed >= 2 * len(styles)  # UNet: batch 1 and a dynamic batch, per setting
        for style in styles:
            for count in (1, 3):
                requests = [
                    request_for(face, style, seeds=(n,), key=f"{style.id}-{n}")
                    for n in range(count)
                ]
                results = compiled.generate(requests)
                assert len(graphs) == warmed, f"{style.id}, batch {count}: compiled on a request"
                for mine, reference in zip(results, eager.generate(requests), strict=True):
                    for a, b in zip(output(mine).images, output(reference).images, strict=True):
                        assert_same_picture(a.image, b.image)
    finally:
        torch._dynamo.reset()  # drop the graphs: they hold this backend's modules


def test_settings_wire_the_options_and_the_catalogs_lora_settings_into_the_warmup(
    tiny_models: TinyModels, tmp_path: Path
) -> None:
    lora = str(tiny_models.lora_sd / "pytorch_lora_weights.safetensors")
    styles_file = tmp_path / "styles.toml"
    lora_styles = [
        "\n".join(
            [
                "[[style]]",
                f'id = "neon-{n}"',
                f'title = "Neon {n}"',
                'emoji = "🌃"',
                'description = "A style with its own LoRA."',
                "[style.cpu]",
                'effect = "pencil_sketch"',
                "[style.diffusion]",
                f'prompt = "neon portrait of a person, take {n}"',
                "strength = 0.5",
                "steps = 2",
                f'lora = "{lora}"',
                f"lora_scale = {scale}",
                "",
            ]
        )
        for n, scale in enumerate((0.8, 0.4, 0.8))  # the third repeats the first's setting
    ]
    default_styles = Path(__file__).parent.parent / "bot" / "data" / "styles.toml"
    styles_file.write_text(default_styles.read_text() + "\n".join(lora_styles))
    settings = load_settings(
        {
            "AVATARBOT_BACKEND": "diffusers",
            "AVATARBOT_MODEL": str(tiny_models.sd),
            "AVATARBOT_IP_ADAPTER": str(tiny_models.ip_adapter),
            "AVATARBOT_DEVICE": "cpu",
            "AVATARBOT_LOCAL_FILES_ONLY": "true",
            "AVATARBOT_SCHEDULER": "lcm",
            "AVATARBOT_COMPILE": "true",
            "AVATARBOT_COMPILE_BACKEND": "eager",
            "AVATARBOT_STYLES_FILE": str(styles_file),
        }
    )
    try:
        backend = backend_from_settings(settings, StyleCatalog.load(settings.styles_file))
        assert isinstance(backend, DiffusersBackend)
        assert backend.compiled  # compiled lazily: by the worker's warmup(), not here
        assert type(backend.pipeline.scheduler).__name__ == "LCMScheduler"
        assert list(backend.loaded_loras) == [lora]  # preloaded from the catalog
        settings_warmed = [(r.lora, r.lora_scale) for r in backend.warmup_recipes]
        assert settings_warmed == [(None, 1.0), (lora, 0.8), (lora, 0.4)]
    finally:
        torch._dynamo.reset()


def test_warmup_skips_a_lora_that_fails_to_load(tiny_models: TinyModels) -> None:
    broken = make_style("ghost", "ghost portrait", lora="/nonexistent/lora.safetensors")
    backend = load_tiny(tiny_models.sd, tiny_models, warmup_recipes=[broken.diffusion])
    backend.warmup()  # the worker still starts; only that style fails, when asked for
    assert backend.pipeline_calls == 2  # batches of 1 and 2 without a LoRA


def test_channels_last_on_request(
    tiny_models: TinyModels, sd_backend: DiffusersBackend, face: Image.Image
) -> None:
    assert not sd_backend.pipeline.unet.conv_in.weight.is_contiguous(
        memory_format=torch.channels_last
    )  # the default on the CPU (a GPU layout)
    backend = load_tiny(tiny_models.sd, tiny_models, channels_last=True)
    assert backend.pipeline.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    request = request_for(face, seeds=(5,))
    difference = np.abs(
        pixels(generate_one(backend, request).images[0].image)
        - pixels(generate_one(sd_backend, request).images[0].image)
    )
    assert difference.max() <= 2  # same model, another memory layout: rounding only


# --- GPU (skipped only where CUDA is absent; every behaviour is also tested above) -----

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@requires_cuda
def test_gpu_fp16_compiled_generation(tiny_models: TinyModels, face: Image.Image) -> None:
    backend = load(
        DiffusersOptions(
            model=str(tiny_models.sd),
            local_files_only=True,
            ip_adapter=str(tiny_models.ip_adapter),
            size_buckets=(BUCKET,),
            compile=True,
        )
    )
    assert backend.device == "cuda"
    assert backend.dtype == torch.float16
    backend.warmup()
    result = generate_one(backend, request_for(face, seeds=(1, 2)))
    again = generate_one(backend, request_for(face, seeds=(1, 2)))
    assert [g.image.size for g in result.images] == [(64, 64), (64, 64)]
    for a, b in zip(result.images, again.images, strict=True):
        assert np.abs(pixels(a.image) - pixels(b.image)).max() <= 2


# --- with the worker and the factory ----------------------------------------------------


async def test_worker_processes_jobs_from_redis_end_to_end(
    redis_client: aioredis.Redis, key_prefix: str, face_jpeg: bytes, sd_backend: DiffusersBackend
) -> None:
    queue = JobQueue(redis_client, QueueConfig(prefix=key_prefix))
    await queue.ensure_groups(BOT)
    receipts = [
        await queue.enqueue(queue_request(1, style="sketch", variants=2), face_jpeg),
        await queue.enqueue(queue_request(2, style="oil"), face_jpeg),
        await queue.enqueue(queue_request(3, style="sketch"), face_jpeg),
    ]
    calls = sd_backend.pipeline_calls
    worker = Worker(
        queue, sd_backend, StyleCatalog.load(), batch_size=4, output_size=96, block_ms=100
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    deliveries = await collect(queue, len(receipts), timeout_s=60)
    stop.set()
    await asyncio.wait_for(task, 30)

    assert sd_backend.pipeline_calls - calls == 2  # warm-up aside: one call per style
    by_id = {d.outcome.job_id: d for d in deliveries}
    for receipt in receipts:
        delivery = by_id[receipt.job.id]
        assert delivery.outcome.status is JobStatus.DONE
        assert delivery.result is not None
        assert delivery.result.backend == "diffusers"
        assert [im.seed for im in delivery.result.images] == receipt.job.seeds
        for image in delivery.result.images:
            with Image.open(io.BytesIO(image.data)) as decoded:
                assert decoded.size == (96, 96) == (image.width, image.height)
                assert decoded.mode == "RGB"
    first = by_id[receipts[0].job.id].result
    assert first is not None
    a, b = (Image.open(io.BytesIO(im.data)) for im in first.images)
    assert np.abs(pixels(a) - pixels(b)).mean() > 1.0


def test_factory_loads_this_module(tiny_models: TinyModels) -> None:
    # The factory passes only model and device, so the default IP-Adapter (h94/IP-Adapter)
    # is asked for: offline and not cached, that is a clear start-up error.
    with pytest.raises(BackendUnavailableError, match="IP-Adapter"):
        load_backend("diffusers", DiffusersOptions(model=str(tiny_models.sd), device="cpu"))


# --- the contract every backend passes --------------------------------------------------


class TestDiffusersSdContract(BackendContract):
    """Output sizes 256-768 are rendered at the 64 px test bucket and resized."""

    @pytest.fixture
    def backend(self, sd_backend: DiffusersBackend) -> Backend:
        return sd_backend


class TestDiffusersSdxlContract(BackendContract):
    @pytest.fixture
    def backend(self, sdxl_backend: DiffusersBackend) -> Backend:
        return sdxl_backend
