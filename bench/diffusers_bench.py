"""Diffusers backend: per-avatar latency and batch throughput against a naive baseline.

Run from the repository root on a CUDA machine (H100 class):

    .venv/bin/python -m bench.diffusers_bench [--family sd|sdxl|both] [--runs N] [--write]

It builds the full-size architectures from config dicts with random weights (timing does
not depend on weight values, and nothing is downloaded): the SD-Turbo UNet (865.9 M
parameters, SD 2.1 layout) or the SDXL UNet (2567.5 M), their VAE and text encoders, the
ViT-H image encoder (632.1 M) and IP-Adapter plus-face weights in the original layout,
saves them to a temporary folder and loads them through the backend's real `load()`.
Then, at 512 px, with IP-Adapter on, it times:

- naive baseline: a stock diffusers img2img pipeline call per request (fp16, no compile,
  no batching, `ip_adapter_image=` the face), 4 denoising steps;
- the backend, without and with `torch.compile` (compiled in `warmup()`): per-avatar
  latency for 1, 2 and 4 steps (batch of 1) and throughput for batches of 1, 4 and 8
  (4 steps, one style);

and prints a table with the ratios against the baseline. Without CUDA it says so and
exits 0. `--tiny` runs the same measurements on the tiny random-weight test models on the
CPU (64 px): a regression guard for the code path, not a measure of product speed.
`--smoke` builds the full-size architectures on the CPU and runs every measured path once
at 256 px (1 step, batches of 1 and 2, no compile): it checks that the GPU run will work
(shapes, loading, IP-Adapter layout at full size) before GPU time is spent on it; its
timings mean nothing and it never writes.
`--write` replaces this script's part of the "Diffusers backend" section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import diffusers
import torch
from diffusers import (
    AutoencoderKL,
    EulerDiscreteScheduler,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from PIL import Image, ImageOps
from safetensors.torch import save_file
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
)

from bot.styles import CpuRecipe, DiffusionRecipe, Style
from generation.backends.base import (
    GenerationError,
    GenerationOutput,
    GenerationRequest,
)
from generation.backends.diffusers_backend import (
    DiffusersBackend,
    load,
    scheduler_steps,
)
from generation.backends.diffusers_options import DiffusersOptions
from tests import tiny_diffusion

ROOT = Path(__file__).resolve().parent.parent

SECTION = "## Diffusers backend"
GPU_PARTS = {"sd": "### SD-Turbo, full size (GPU)", "sdxl": "### SDXL, full size (GPU)"}
TINY_PART = "### Tiny models on the CPU (regression guard)"
UPLOAD = ROOT / "tests" / "data" / "astronaut.jpg"
STRENGTH = 0.5
TARGET_MS = 150.0
TARGET_SPEEDUP = 3.0

SD_TURBO_UNET: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280),
    "attention_head_dim": (5, 10, 20, 20),
    "cross_attention_dim": 1024,
    "use_linear_projection": True,
    "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
}
SDXL_UNET: dict[str, Any] = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280),
    "attention_head_dim": (5, 10, 20),
    "cross_attention_dim": 2048,
    "transformer_layers_per_block": (1, 2, 10),
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
}
VAE: dict[str, Any] = {
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 2,
    "latent_channels": 4,
    "sample_size": 512,
    "force_upcast": False,  # as with an fp16-safe VAE (e.g. the sdxl-vae-fp16-fix weights)
}


def _clip(
    hidden: int, layers: int, heads: int, projection: int, act: str = "gelu"
) -> dict[str, Any]:
    return {
        "hidden_size": hidden,
        "intermediate_size": 4 * hidden,
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "projection_dim": projection,
        "hidden_act": act,
    }


OPENCLIP_H_TEXT = _clip(1024, 23, 16, 512)
CLIP_L_TEXT = _clip(768, 12, 12, 768, "quick_gelu")
OPENCLIP_BIGG_TEXT = _clip(1280, 32, 20, 1280)
VIT_H = _clip(1280, 32, 16, 1024) | {"patch_size": 14, "image_size": 224}
UNET_PARAMS_M = {"sd": 865.9, "sdxl": 2567.5}
VIT_H_PARAMS_M = 632.1


@dataclass(frozen=True)
class Built:
    family: str
    model: Path
    ip_adapter: Path
    size: int


@dataclass(frozen=True)
class Plan:
    """What to time: latency rows for each of `steps` (batch 1), then throughput rows for
    each of `batches` at the last of `steps`; the naive baseline runs at the last too."""

    steps: tuple[int, ...] = (1, 2, 4)
    batches: tuple[int, ...] = (1, 4, 8)


SMOKE_PLAN = Plan(steps=(1,), batches=(1, 2))


@dataclass(frozen=True)
class Row:
    label: str
    steps: int
    batch: int
    ms_per_avatar: float
    avatars_per_s: float


def millions(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


def build_full(family: str, root: Path, device: str, size: int = 512) -> Built:
    """Full-size random-weight SD-Turbo or SDXL + ViT-H + plus-face IP-Adapter, saved fp16."""
    dtype = torch.float16
    tokenizer = tiny_diffusion.make_tokenizer(root / "tokenizer-src")
    text = {"vocab_size": 49408, "max_position_embeddings": 77}
    with torch.device(device):  # each cast to fp16 as soon as it exists: a lower peak
        unet = UNet2DConditionModel(**(SDXL_UNET if family == "sdxl" else SD_TURBO_UNET))
        unet_m = millions(unet.to(dtype))
        vae = AutoencoderKL(**VAE, scaling_factor=0.13025 if family == "sdxl" else 0.18215)
        vae.to(dtype)
        encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**VIT_H)).to(dtype)
        if family == "sdxl":
            text_1 = CLIPTextModel(CLIPTextConfig(**CLIP_L_TEXT, **text)).to(dtype)
            text_2 = CLIPTextModelWithProjection(CLIPTextConfig(**OPENCLIP_BIGG_TEXT, **text)).to(
                dtype
            )
        else:
            text_1 = CLIPTextModel(CLIPTextConfig(**OPENCLIP_H_TEXT, **text)).to(dtype)
    encoder_m = millions(encoder)
    assert round(unet_m, 1) == UNET_PARAMS_M[family], f"{family} UNet has {unet_m:.1f} M params"
    assert round(encoder_m, 1) == VIT_H_PARAMS_M, f"ViT-H has {encoder_m:.1f} M params"
    print(f"built {family}: UNet {unet_m:.1f} M, ViT-H {encoder_m:.1f} M parameters")
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1
    )
    if family == "sdxl":
        pipe: Any = StableDiffusionXLPipeline(
            vae=vae, text_encoder=text_1, text_encoder_2=text_2, tokenizer=tokenizer,
            tokenizer_2=tokenizer, unet=unet, scheduler=scheduler,
        )  # fmt: skip
        folder, weight, resampler = "sdxl_models", "ip-adapter-plus-face_sdxl_vit-h", 1280
    else:
        pipe = StableDiffusionPipeline(
            vae=vae, text_encoder=text_1, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        )  # fmt: skip
        # Shapes of plus-face sized for this UNet's 1024-wide cross-attention (SD 2.x has no
        # official plus-face; the compute matches an SD 1.5 one within a few percent).
        folder, weight, resampler = "models", "ip-adapter-plus-face_sd15", 768
    model_dir, ip_dir = root / family, root / "ip-adapter"
    pipe.save_pretrained(model_dir)
    encoder.save_pretrained(ip_dir / "models" / "image_encoder")
    (ip_dir / folder).mkdir(parents=True, exist_ok=True)
    weights = tiny_diffusion.plus_face_weights(
        unet.to("cpu"), image_hidden=1280, resampler_hidden=resampler, queries=16, dtype=dtype
    )
    save_file(weights, str(ip_dir / folder / f"{weight}.safetensors"))
    del pipe, unet, vae, encoder, text_1
    free()
    return Built(family, model_dir, ip_dir, size)


def free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], runs: int) -> float:
    """Median wall-clock milliseconds of `runs` calls, after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(runs):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def style(steps: int) -> Style:
    return Style(
        id="bench",
        title="Bench",
        emoji="🎨",
        description="",
        cpu=CpuRecipe(effect="pencil_sketch"),
        diffusion=DiffusionRecipe(
            prompt="oil painting portrait of a person, thick brush strokes, rich colors",
            strength=STRENGTH,
            steps=steps,
            guidance=0.0,
        ),
    )


def naive_baseline(built: Built, device: str, dtype: torch.dtype, face: Image.Image,
                   *, runs: int, steps: int) -> Row:  # fmt: skip
    """A stock pipeline call per request: no compile, no batching, the model's scheduler."""
    sdxl = built.family == "sdxl"
    cls: Any = StableDiffusionXLImg2ImgPipeline if sdxl else StableDiffusionImg2ImgPipeline
    pipe = cls.from_pretrained(built.model, dtype=dtype, local_files_only=True).to(device)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_ip_adapter(
        str(built.ip_adapter),
        subfolder="sdxl_models" if sdxl else "models",
        weight_name="ip-adapter-plus-face_sdxl_vit-h.safetensors"
        if sdxl
        else "ip-adapter-plus-face_sd15.safetensors",
        image_encoder_folder="models/image_encoder",
        local_files_only=True,
    )
    pipe.set_ip_adapter_scale(0.6)
    image = face.resize((built.size, built.size))
    recipe = style(steps).diffusion

    def one_request() -> None:
        out = pipe(
            prompt=recipe.prompt,
            image=image,
            ip_adapter_image=face,
            strength=STRENGTH,
            num_inference_steps=scheduler_steps(steps, STRENGTH),
            guidance_scale=0.0,
        )
        if out.images[0].size != (built.size, built.size):
            raise RuntimeError(f"baseline made {out.images[0].size}, not {built.size} px")

    ms = timed(one_request, runs)
    return shown(Row("naive baseline (stock pipeline, 1 request a call)", steps, 1, ms, 1000 / ms))


def backend_rows(backend: DiffusersBackend, label: str, face: Image.Image, *, size: int,
                 runs: int, plan: Plan) -> list[Row]:  # fmt: skip
    rows = []
    for steps in plan.steps:
        request = GenerationRequest("one", face, style(steps), (1,), size)
        ms = timed(lambda r=request: checked(backend.generate([r]), size), runs)
        rows.append(shown(Row(label, steps, 1, ms, 1000 / ms)))
    top = plan.steps[-1]
    for batch in plan.batches:
        if batch == 1:
            continue  # the last latency row above
        requests = [GenerationRequest(f"r{i}", face, style(top), (i,), size) for i in range(batch)]
        ms = timed(lambda rs=requests: checked(backend.generate(rs), size), runs)
        rows.append(shown(Row(label, top, batch, ms / batch, 1000 * batch / ms)))
    return rows


def shown(row: Row) -> Row:
    """Print each row as it is measured: a run cut off by a time limit still tells something."""
    print(f"  {row.label}: {row.steps} steps, batch {row.batch}: {row.ms_per_avatar:.1f} ms/avatar")
    return row


def checked(results: list[GenerationOutput | GenerationError], size: int) -> None:
    """A timed call that failed, or made the wrong thing, must not pass for a fast one."""
    for result in results:
        if isinstance(result, GenerationError):
            raise RuntimeError(f"generation failed in the benchmark: {result}")
        for made in result.images:
            if made.image.size != (size, size):
                raise RuntimeError(f"expected {size}x{size} px, got {made.image.size}")


def run_family(built: Built, device: str, dtype: torch.dtype, *, runs: int,
               compile_too: bool, plan: Plan) -> list[Row]:  # fmt: skip
    with Image.open(UPLOAD) as upload:
        face = ImageOps.fit(upload.convert("RGB"), (built.size, built.size), centering=(0.5, 0.3))
    rows = [naive_baseline(built, device, dtype, face, runs=runs, steps=plan.steps[-1])]
    free()  # the baseline pipeline is gone with its frame
    options: dict[str, Any] = {
        "device": device,
        "dtype": str(dtype).removeprefix("torch."),
        "local_files_only": True,
        "ip_adapter": str(built.ip_adapter),
        "size_buckets": (built.size,),
        "max_batch_images": max(plan.batches),
    }
    backend = load(DiffusersOptions(model=str(built.model), **options))
    rows += backend_rows(backend, "backend", face, size=built.size, runs=runs, plan=plan)
    del backend
    free()
    if compile_too:
        started = time.perf_counter()
        backend = load(DiffusersOptions(model=str(built.model), compile=True, **options))
        backend.warmup()
        print(f"compile + warm-up: {time.perf_counter() - started:.0f} s")
        rows += backend_rows(
            backend, "backend + torch.compile", face, size=built.size, runs=runs, plan=plan
        )
        del backend
        free()
    return rows


def table(family: str, rows: list[Row]) -> list[str]:
    naive = rows[0]
    lines = [
        f"| {family} | configuration | steps | batch | ms / avatar | avatars / s | vs naive |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        ratio = row.avatars_per_s / naive.avatars_per_s
        lines.append(
            f"| | {row.label} | {row.steps} | {row.batch} | {row.ms_per_avatar:.1f} "
            f"| {row.avatars_per_s:.1f} | {ratio:.2f}x |"
        )
    return lines


def verdict(rows: list[Row], plan: Plan, *, targets: bool) -> list[str]:
    naive, top = rows[0], plan.steps[-1]
    out = []
    for label in ("backend", "backend + torch.compile"):
        mine = [r for r in rows if r.label == label]
        if not mine:
            continue
        latency = next(r for r in mine if r.steps == top and r.batch == 1)
        best = max(mine, key=lambda r: r.avatars_per_s if r.steps == top else 0.0)
        line = (
            f"- {label}: {latency.ms_per_avatar:.1f} ms per avatar at {top} steps incl. "
            f"IP-Adapter; "
            f"batch {best.batch} gives {best.avatars_per_s / naive.avatars_per_s:.2f}x the "
            f"naive throughput"
        )
        if targets:
            fast = latency.ms_per_avatar <= TARGET_MS
            batched = best.avatars_per_s >= TARGET_SPEEDUP * naive.avatars_per_s
            line += (
                f" (targets on an H100: <= {TARGET_MS:.0f} ms {'met' if fast else 'NOT met'}, "
                f">= {TARGET_SPEEDUP:.0f}x {'met' if batched else 'NOT met'})"
            )
        out.append(line)
    return out


def machine(device: str) -> str:
    where = torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "CPU"
    return (
        f"{where}; torch {torch.__version__}, diffusers {diffusers.__version__}, "
        f"Python {platform.python_version()}, {datetime.now(UTC):%Y-%m-%d}"
    )


def write_part(path: Path, part: str, body: str) -> None:
    """Replace `part` (a ### heading) inside this script's section, creating either."""
    text = path.read_text()
    if SECTION not in text:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n"
    start = text.index(SECTION)
    section_end = text.find("\n## ", start + len(SECTION))
    section_end = len(text) if section_end == -1 else section_end + 1
    section = text[start:section_end]
    if part not in section:
        section = section.rstrip("\n") + f"\n\n{part}\n\n"
    p = section.index(part)
    q = section.find("\n### ", p + len(part))
    q = len(section) if q == -1 else q + 1
    replacement = f"{part}\n\n{body.strip()}\n\n"
    section = section[:p] + replacement + section[q:]
    path.write_text(text[:start] + section + text[section_end:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--tiny", action="store_true", help="tiny models on the CPU")
    mode.add_argument(
        "--smoke", action="store_true", help="full-size models on the CPU, once, 256 px"
    )
    parser.add_argument("--family", choices=["sd", "sdxl", "both"], default="both")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per row")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled rows")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    if args.smoke and args.write:
        parser.error("--smoke timings mean nothing; it never writes")
    if not (args.tiny or args.smoke) and not torch.cuda.is_available():
        print(
            "diffusers_bench: no CUDA device here; the full-size benchmark needs a GPU. "
            "Run with --tiny for the CPU regression guard on the tiny test models."
        )
        return 0
    families = ["sd", "sdxl"] if args.family == "both" else [args.family]
    device = "cpu" if args.tiny or args.smoke else "cuda"
    if args.tiny:
        torch.set_num_threads(1)
    runs = 1 if args.smoke else args.runs or 10
    compile_too = device == "cuda" and not args.no_compile  # inductor on 2 CPU cores: minutes
    plan = SMOKE_PLAN if args.smoke else Plan()
    lines: list[str] = []
    docs = ROOT / "docs" / "benchmarks.md"
    with tempfile.TemporaryDirectory(prefix="avatarbot-bench-") as tmp:
        root = Path(tmp)
        tiny = tiny_diffusion.build(root) if args.tiny else None
        for family in families:
            if tiny is not None:
                model = tiny.sdxl if family == "sdxl" else tiny.sd
                built = Built(family, model, tiny.ip_adapter, tiny_diffusion.SIZE)
            else:
                built = build_full(family, root, device, 256 if args.smoke else 512)
            dtype = torch.float16 if device == "cuda" else torch.float32
            if args.smoke and family == "sdxl":
                dtype = torch.bfloat16  # fp32 full-size SDXL needs ~25 GB; bf16 is slow but fits
            rows = run_family(built, device, dtype, runs=runs, compile_too=compile_too, plan=plan)
            targets = device == "cuda"
            part = [*table(family, rows), "", *verdict(rows, plan, targets=targets), ""]
            print("\n".join(part), flush=True)
            lines += part
            if tiny is None:
                shutil.rmtree(built.model, ignore_errors=True)  # free the disk for the next
            if args.write and device == "cuda":  # each family as soon as it is measured
                body = (
                    f"`bench/diffusers_bench.py --family {family}` on {machine(device)}: the "
                    f"full-size architecture with random weights, 512 px, fp16, IP-Adapter "
                    f"plus-face on, strength {STRENGTH}. Median of {runs} runs per row.\n\n"
                    + "\n".join(part)
                )
                write_part(docs, GPU_PARTS[family], body)
    report = "\n".join(lines)
    if args.write and args.tiny:
        body = (
            f"`bench/diffusers_bench.py --tiny` on {machine(device)}, one thread: the tiny "
            f"random-weight test models (64 px, a few channels), IP-Adapter on. "
            f"**A regression guard for the code path (batching, per-image seeds, "
            f"IP-Adapter layout), not product speed.** Median of {runs} runs per row; "
            f"torch.compile rows are skipped on the CPU.\n\n{report}"
        )
        write_part(docs, TINY_PART, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
