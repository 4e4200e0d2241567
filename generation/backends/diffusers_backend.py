"""The diffusers backend: stylised portraits that keep the person's likeness.

Image-to-image from the intake's face crop with the style's diffusion recipe (prompt,
strength, steps, guidance, optional LoRA), on an SD- or SDXL-family model, with an
IP-Adapter (plus-face by default) feeding the face back in for likeness. Installed with
the `diffusion` extra; the worker imports this module only when the operator picks it.

Speed levers, all on by default where they are safe: a few-step trailing Euler (or LCM)
scheduler, guidance <= 1 (no classifier-free second pass), fp16 on CUDA, SDPA attention,
channels_last, one pipeline call per style in a batch, fixed size buckets; optional
`torch.compile` (compiled in `warmup()`, before the first user) and a tiny autoencoder.

Reproducibility: every variant has its own CPU `torch.Generator` seeded from its
recorded seed, so an image depends on its seed, style and selfie, not on what else shared
its batch. `recipe.steps` is the number of denoising steps actually run: the scheduler is
asked for `ceil(steps / strength)` so that img2img's strength cut leaves exactly that many.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from PIL import Image, ImageOps

from bot.jobs import FailureReason
from bot.styles import DiffusionRecipe
from generation.backends.base import (
    Backend,
    GeneratedImage,
    GenerationError,
    GenerationOutput,
    GenerationRequest,
    ProgressCallback,
)
from generation.backends.diffusers_ip import FaceConditioning, per_image_ip_embeds
from generation.backends.diffusers_loading import (
    IP_ADAPTER_FILES,
    Family,
    IpAdapter,
    allow_recompiles,
    detect_family,
    load_ip_adapter,
    load_pipeline,
    load_tiny_vae,
    pick_device,
    pick_dtype,
    set_scheduler,
    take_safety_checker,
)
from generation.backends.diffusers_loras import StyleLoras
from generation.backends.diffusers_options import DiffusersOptions
from generation.backends.diffusers_safety import BLOCKED_MESSAGE, SafetyChecker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Slot:
    """One request of a pipeline call, with where its images sit in the call's batch."""

    index: int
    request: GenerationRequest


class DiffusersBackend(Backend):
    """img2img + IP-Adapter on one loaded diffusers pipeline. Build it with `load()`."""

    name = "diffusers"
    rerolls = True

    def __init__(
        self,
        pipeline: Any,
        options: DiffusersOptions,
        *,
        family: Family,
        device: str,
        dtype: torch.dtype,
        ip: IpAdapter | None = None,
        safety_checker: SafetyChecker | None = None,
    ) -> None:
        size_buckets = options.size_buckets
        if not size_buckets or any(s <= 0 or s % 8 for s in size_buckets):
            raise ValueError(f"size buckets must be positive multiples of 8, got {size_buckets}")
        if options.max_batch_images < 1:
            raise ValueError(f"max_batch_images must be >= 1, got {options.max_batch_images}")
        ip = ip or IpAdapter()
        self.pipeline = pipeline
        self.model = options.model
        self.family: Family = family
        self.device = device
        self.dtype = dtype
        self.size_buckets = tuple(sorted(size_buckets))
        self.max_batch_images = options.max_batch_images
        self.safety_checker = safety_checker
        self.compiled = options.compile
        self._face = FaceConditioning(ip, options.face_embedder, device)
        self._warmup_sizes = tuple(options.warmup_sizes) or (self.size_buckets[0],)
        self._warmup_recipes = _lora_settings(options.warmup_recipes)
        self._loras = StyleLoras(pipeline, local_files_only=options.local_files_only)
        self._lock = threading.Lock()
        self.pipeline_calls = 0
        """How many pipeline calls ran (batching is visible in tests and logs)."""
        if self.ip_adapter:
            # diffusers repeats `ip_adapter_image_embeds` once per prompt in the batch (one
            # face for the whole call): with a different face per image, every image would
            # attend to every face. We lay the embeddings out per image ourselves.
            pipeline.prepare_ip_adapter_image_embeds = per_image_ip_embeds

    # --- public --------------------------------------------------------------

    @property
    def ip_adapter(self) -> bool:
        return self._face.kind != "none"

    @property
    def warmup_recipes(self) -> tuple[DiffusionRecipe, ...]:
        """What `warmup()` runs: no LoRA, then each (LoRA, scale) of the warm-up recipes."""
        return self._warmup_recipes

    @property
    def loaded_loras(self) -> dict[str, str]:
        """LoRA source -> adapter name, for each LoRA loaded so far (each loads once)."""
        return self._loras.loaded

    def describe(self) -> str:
        extras = [f"{self.family} {self.model}", str(self.dtype).removeprefix("torch.")]
        if self.ip_adapter:
            extras.append(f"ip-adapter ({self._face.kind})")
        if self.safety_checker is not None:
            extras.append("safety checker")
        if self.compiled:
            extras.append("compiled")
        return f"{self.name} on {self.device} [{', '.join(extras)}]"

    def bucket_for(self, size: int) -> int:
        """The render size for an output of `size` pixels."""
        for bucket in self.size_buckets:
            if bucket >= size:
                return bucket
        return self.size_buckets[-1]

    def load_lora(self, source: str) -> str:
        """Load a LoRA once (peft) and return its adapter name; later calls reuse it."""
        with self._lock:
            return self._loras.ensure(source)

    def warmup(self) -> None:
        """Run the pipeline at each warm-up size for batches of 1 and 2, once without a LoRA
        and once per LoRA setting of the warm-up recipes (the catalog's styles), so that
        compilation and first kernel launches happen now, not on a user's request.

        The second batch size lets dynamo mark the batch dimension dynamic, so later batch
        sizes reuse the graph. A LoRA's adapter weights are Python numbers that compiled
        graphs are specialised on: each (LoRA, scale) a style uses gets its own graphs,
        which is why they are all warmed up here."""
        face = Image.new("RGB", (64, 64), (128, 112, 100))
        started = time.perf_counter()
        with self._lock:
            for recipe in self._warmup_recipes:
                try:
                    self._loras.activate(recipe)
                except GenerationError:
                    continue  # logged; its styles fail alone, with the load error, if asked for
                for size in self._warmup_sizes:
                    bucket = self.bucket_for(size)
                    for count in sorted({1, min(2, self.max_batch_images)}):
                        images = [self._prepare_selfie(face, bucket)] * count
                        embeds = [self._face.embeds(face)] * count if self.ip_adapter else []
                        self._call(
                            recipe, images=images, embeds=embeds, seeds=list(range(count)),
                            on_step=None,
                        )  # fmt: skip
        log.info("warm-up done in %.1f s (%s)", time.perf_counter() - started, self.describe())

    def generate(
        self,
        batch: Sequence[GenerationRequest],
        progress: ProgressCallback | None = None,
    ) -> list[GenerationOutput | GenerationError]:
        results: list[GenerationOutput | GenerationError | None] = [None] * len(batch)
        with self._lock:
            for chunk in self._chunks(batch):
                self._run_isolated(chunk, results, progress)
        return [r if r is not None else GenerationError("not generated") for r in results]

    # --- batching ------------------------------------------------------------

    def _chunks(self, batch: Sequence[GenerationRequest]) -> Iterator[list[_Slot]]:
        """Requests of one style and render size, at most `max_batch_images` images a call."""
        groups: dict[tuple[DiffusionRecipe, int], list[_Slot]] = {}
        for index, request in enumerate(batch):
            key = (request.style.diffusion, self.bucket_for(request.size))
            groups.setdefault(key, []).append(_Slot(index, request))
        for slots in groups.values():
            chunk: list[_Slot] = []
            images = 0
            for slot in slots:
                n = len(slot.request.seeds)
                if chunk and images + n > self.max_batch_images:
                    yield chunk
                    chunk, images = [], 0
                chunk.append(slot)
                images += n
            if chunk:
                yield chunk

    def _run_isolated(
        self,
        chunk: list[_Slot],
        results: list[GenerationOutput | GenerationError | None],
        progress: ProgressCallback | None,
    ) -> None:
        try:
            outcomes = self._run_chunk([slot.request for slot in chunk], progress)
        except Exception as exc:
            self._free_memory()
            if len(chunk) == 1:
                results[chunk[0].index] = _as_generation_error(exc, chunk[0].request)
                return
            log.warning(
                "batched call of %d requests failed (%s: %s); retrying them one by one",
                len(chunk),
                type(exc).__name__,
                exc,
            )
            for slot in chunk:
                self._run_isolated([slot], results, progress)
            return
        for slot, outcome in zip(chunk, outcomes, strict=True):
            results[slot.index] = outcome

    def _run_chunk(
        self, requests: list[GenerationRequest], progress: ProgressCallback | None
    ) -> list[GenerationOutput | GenerationError]:
        recipe = requests[0].style.diffusion
        bucket = self.bucket_for(requests[0].size)
        for request in requests:
            if not request.seeds:
                raise GenerationError(f"request {request.key} asks for no images")
        images: list[Image.Image] = []
        embeds: list[torch.Tensor] = []
        seeds: list[int] = []
        for request in requests:
            selfie = self._prepare_selfie(request.selfie, bucket)
            embed = self._face.embeds(request.selfie) if self.ip_adapter else None
            for seed in request.seeds:
                images.append(selfie)
                seeds.append(seed)
                if embed is not None:
                    embeds.append(embed)
        self._loras.activate(recipe)

        def on_step(fraction: float) -> None:
            if progress is not None:
                for request in requests:
                    progress(request.key, fraction)

        started = time.perf_counter()
        outputs = self._call(recipe, images=images, embeds=embeds, seeds=seeds, on_step=on_step)
        flags = self.safety_checker(outputs) if self.safety_checker is not None else []
        log.info(
            "generated %d image(s) for %d request(s) of one style at %d px in %.2f s",
            len(outputs),
            len(requests),
            bucket,
            time.perf_counter() - started,
        )
        return _outcomes(requests, outputs, flags)

    # --- the pipeline call ---------------------------------------------------

    def _call(
        self,
        recipe: DiffusionRecipe,
        *,
        images: list[Image.Image],
        embeds: list[torch.Tensor],
        seeds: list[int],
        on_step: Callable[[float], None] | None,
    ) -> list[Image.Image]:
        steps = recipe.steps
        cfg = recipe.guidance > 1.0
        kwargs: dict[str, Any] = {
            "prompt": [recipe.prompt] * len(images),
            "image": images,
            "strength": recipe.strength,
            "num_inference_steps": scheduler_steps(recipe.steps, recipe.strength),
            "guidance_scale": recipe.guidance,
            "generator": [torch.Generator("cpu").manual_seed(int(s)) for s in seeds],
            "output_type": "pil",
        }
        if cfg and recipe.negative_prompt:
            kwargs["negative_prompt"] = [recipe.negative_prompt] * len(images)
        if embeds:
            cond = torch.cat(embeds, dim=0)
            if cfg:
                cond = torch.cat([self._face.uncond(cond), cond], dim=0)
            kwargs["ip_adapter_image_embeds"] = [cond.to(self.device, self.dtype)]
        if on_step is not None:

            def callback(_pipe: Any, step: int, _t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
                on_step(min(1.0, (step + 1) / steps))
                return tensors

            kwargs["callback_on_step_end"] = callback
        self.pipeline_calls += 1
        with torch.inference_mode():
            result = self.pipeline(**kwargs)
        return [image.convert("RGB") for image in result.images]

    def _prepare_selfie(self, selfie: Image.Image, bucket: int) -> Image.Image:
        image = selfie.convert("RGB")
        if image.width < 8 or image.height < 8:
            raise GenerationError(f"selfie too small ({image.width}x{image.height})")
        return ImageOps.fit(image, (bucket, bucket), Image.Resampling.LANCZOS)

    def _free_memory(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()


def _outcomes(
    requests: list[GenerationRequest], outputs: list[Image.Image], flags: list[bool]
) -> list[GenerationOutput | GenerationError]:
    """Each request's images (resized to its size), or its error when the safety checker
    flagged any of them."""
    results: list[GenerationOutput | GenerationError] = []
    position = 0
    for request in requests:
        count = len(request.seeds)
        mine = outputs[position : position + count]
        blocked = any(flags[position : position + count])
        position += count
        if blocked:
            log.warning("safety checker blocked the output of request %s", request.key)
            error = GenerationError(
                f"safety checker flagged an output of request {request.key}",
                reason=FailureReason.BLOCKED_CONTENT,
            )
            error.user_message = BLOCKED_MESSAGE
            results.append(error)
            continue
        images = tuple(
            GeneratedImage(image=_fit(image, request.size), seed=seed)
            for image, seed in zip(mine, request.seeds, strict=True)
        )
        results.append(GenerationOutput(key=request.key, images=images))
    return results


def scheduler_steps(steps: int, strength: float) -> int:
    """The `num_inference_steps` that leaves exactly `steps` denoising steps after img2img
    keeps `int(num_inference_steps * strength)` of them."""
    if steps < 1 or not 0.0 < strength <= 1.0:
        raise GenerationError(f"bad recipe: steps={steps}, strength={strength}")
    total = max(steps, math.ceil(steps / strength - 1e-9))
    while int(total * strength) < steps:
        total += 1
    return total


def _fit(image: Image.Image, size: int) -> Image.Image:
    if image.size == (size, size):
        return image
    return image.resize((size, size), Image.Resampling.LANCZOS)


def _as_generation_error(exc: Exception, request: GenerationRequest) -> GenerationError:
    if isinstance(exc, GenerationError):
        return exc
    log.warning("request %s failed: %s: %s", request.key, type(exc).__name__, exc, exc_info=exc)
    return GenerationError(f"request {request.key} failed: {type(exc).__name__}: {exc}")


# --- loading -------------------------------------------------------------------------

_WARMUP_PROMPT = "a portrait photo of a person"


def _lora_settings(recipes: Sequence[DiffusionRecipe]) -> tuple[DiffusionRecipe, ...]:
    """One short warm-up recipe without a LoRA, then one per distinct (LoRA, scale)."""
    plain = DiffusionRecipe(prompt=_WARMUP_PROMPT, strength=0.5, steps=2)
    settings = dict.fromkeys((r.lora, r.lora_scale) for r in recipes if r.lora)
    return (plain, *(replace(plain, lora=lora, lora_scale=scale) for lora, scale in settings))


def load(options: DiffusersOptions | None = None) -> DiffusersBackend:
    """Load a diffusers model once and wrap it as a backend (`DiffusersOptions()`: the
    defaults). The IP-Adapter's subfolder, weight file and image-encoder folder default to
    plus-face for the model's family. See docs/diffusers.md for the options."""
    options = options or DiffusersOptions()
    started = time.perf_counter()
    device = pick_device(options.device)
    dtype = pick_dtype(device, options.dtype)
    family = detect_family(options.model, local_files_only=options.local_files_only)
    pipe = load_pipeline(
        options.model,
        family,
        dtype,
        variant=options.variant,
        local_files_only=options.local_files_only,
        with_checker=options.safety_checker is not False,
    )
    checker = take_safety_checker(pipe, options.safety_checker, device, dtype)
    set_scheduler(pipe, options.scheduler)
    if options.tiny_vae:
        pipe.vae = load_tiny_vae(options.tiny_vae, dtype, options.local_files_only)
    pipe.to(device)
    ip = _ip_adapter(pipe, options, family)
    channels_last = options.channels_last
    if channels_last is None:
        channels_last = device.startswith("cuda")  # a tensor-core layout; no CPU gain
    if channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    backend = DiffusersBackend(
        pipe, options, family=family, device=device, dtype=dtype, ip=ip, safety_checker=checker
    )
    for source in options.preload_loras:
        backend.load_lora(source)
    if options.compile:
        _compile(pipe, options)
    log.info("loaded %s in %.1f s", backend.describe(), time.perf_counter() - started)
    return backend


def _ip_adapter(pipe: Any, options: DiffusersOptions, family: Family) -> IpAdapter:
    if not options.ip_adapter:
        return IpAdapter()
    subfolder, weight = IP_ADAPTER_FILES[family]
    return load_ip_adapter(
        pipe,
        options.ip_adapter,
        subfolder=subfolder
        if options.ip_adapter_subfolder is None
        else options.ip_adapter_subfolder,
        weight=options.ip_adapter_weight or weight,
        image_encoder=options.ip_adapter_image_encoder or None,
        scale=options.ip_adapter_scale,
        has_face_embedder=options.face_embedder is not None,
        local_files_only=options.local_files_only,
    )


def _compile(pipe: Any, options: DiffusersOptions) -> None:
    """In place, so LoRA/IP-Adapter modules stay addressable; compiled by warmup(). Per
    LoRA setting: a graph for batch 1, one with a dynamic batch, room to spare."""
    allow_recompiles(2 * len(_lora_settings(options.warmup_recipes)) + 4)
    backend = options.compile_backend
    kwargs = {"mode": options.compile_mode} if backend == "inductor" else {}
    pipe.unet.compile(backend=backend, **kwargs)
    pipe.vae.decoder.compile(backend=backend, **kwargs)
