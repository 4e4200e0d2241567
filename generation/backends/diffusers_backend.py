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

import abc
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image, ImageOps

from bot.jobs import FailureReason
from bot.styles import DiffusionRecipe
from generation.backends.base import (
    Backend,
    BackendUnavailableError,
    GeneratedImage,
    GenerationError,
    GenerationOutput,
    GenerationRequest,
    ProgressCallback,
)

log = logging.getLogger(__name__)

SIZE_BUCKETS: tuple[int, ...] = (512, 768, 1024)
"""Sides the pipeline renders at; a request is rendered at the smallest bucket that holds
its size and resized to the exact size asked for. Fixed shapes keep compiled graphs warm."""

DEFAULT_IP_ADAPTER = "h94/IP-Adapter"
"""Hub repository (or a local folder with the same layout) holding the IP-Adapter weights."""

_IP_ADAPTER_FILES: dict[str, tuple[str, str]] = {
    # family: (subfolder, weight file) of the plus-face adapter in h94/IP-Adapter
    "sd": ("models", "ip-adapter-plus-face_sd15.safetensors"),
    "sdxl": ("sdxl_models", "ip-adapter-plus-face_sdxl_vit-h.safetensors"),
}
_IMAGE_ENCODER_FOLDER = "models/image_encoder"  # the ViT-H encoder both plus-face files use

Family = Literal["sd", "sdxl"]
SchedulerName = Literal["euler", "lcm", "model"]

BLOCKED_MESSAGE = (
    "The safety filter blocked that avatar. Please try another style or another photo."
)


class SafetyChecker(abc.ABC):
    """Decides which generated images must not reach a user."""

    @abc.abstractmethod
    def __call__(self, images: Sequence[Image.Image]) -> list[bool]:
        """Return one flag per image: True means unsafe (blocked)."""


class FaceEmbedder(abc.ABC):
    """Turns a face crop into an identity embedding for IP-Adapter FaceID variants.

    avatarbot ships no implementation by default: the usual one (insightface's ArcFace
    `buffalo_l`) downloads its weights at run time and they are licensed for
    non-commercial research only. See docs/diffusers.md.
    """

    dim: int = 512

    @abc.abstractmethod
    def embed(self, face: Image.Image) -> np.ndarray:
        """Return a float vector of length `dim` (L2-normalised), or raise if no face."""


class InsightFaceEmbedder(FaceEmbedder):
    """ArcFace embeddings from insightface, from model files already on disk.

    Optional and off by default: install `insightface` and `onnxruntime` yourself and put
    the `buffalo_l` model pack under `<root>/models/buffalo_l` (its licence is
    non-commercial). Nothing is downloaded: a missing pack is an error.
    """

    def __init__(self, root: str | Path, *, device: str = "cpu") -> None:
        pack = Path(root) / "models" / "buffalo_l"
        if not pack.is_dir():
            raise BackendUnavailableError(
                f"insightface model pack not found at {pack}; avatarbot never downloads it"
            )
        try:
            from insightface.app import FaceAnalysis  # type: ignore[import-not-found]  # noqa: PLC0415  # optional, not a dependency
        except ImportError as exc:
            raise BackendUnavailableError(
                "FaceID needs the optional 'insightface' and 'onnxruntime' packages"
            ) from exc
        providers = ["CUDAExecutionProvider"] if device.startswith("cuda") else []
        self._app = FaceAnalysis(
            name="buffalo_l", root=str(root), providers=[*providers, "CPUExecutionProvider"]
        )
        self._app.prepare(ctx_id=0 if providers else -1, det_size=(640, 640))

    def embed(self, face: Image.Image) -> np.ndarray:
        bgr = np.asarray(face.convert("RGB"))[:, :, ::-1]
        faces = self._app.get(np.ascontiguousarray(bgr))
        if not faces:
            raise GenerationError("FaceID: no face found in the crop")
        largest = max(faces, key=lambda f: float((f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1])))
        return np.asarray(largest.normed_embedding, dtype=np.float32)


class ModelSafetyChecker(SafetyChecker):
    """The safety checker a Stable Diffusion model ships (CLIP concept scores)."""

    def __init__(
        self, module: Any, feature_extractor: Any, device: str, dtype: torch.dtype
    ) -> None:
        self._module = module.to(device=device, dtype=dtype)
        self._features = feature_extractor
        self._device = device
        self._dtype = dtype

    def __call__(self, images: Sequence[Image.Image]) -> list[bool]:
        if not images:
            return []
        pixels = self._features(list(images), return_tensors="pt").pixel_values
        placeholders = np.zeros((len(images), 1, 1, 3), dtype=np.float32)  # the checker
        # blackens its `images` argument in place; we block whole requests instead.
        with torch.inference_mode():
            _, flags = self._module(
                clip_input=pixels.to(device=self._device, dtype=self._dtype), images=placeholders
            )
        return [bool(f) for f in flags]


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
        *,
        model: str,
        family: Family,
        device: str,
        dtype: torch.dtype,
        image_encoder: Any | None = None,
        image_processor: Any | None = None,
        ip_embedding: Literal["none", "hidden", "pooled", "face"] = "none",
        face_embedder: FaceEmbedder | None = None,
        safety_checker: SafetyChecker | None = None,
        size_buckets: Sequence[int] = SIZE_BUCKETS,
        max_batch_images: int = 8,
        local_files_only: bool = False,
        compiled: bool = False,
        warmup_sizes: Sequence[int] = (),
        warmup_recipes: Sequence[DiffusionRecipe] = (),
    ) -> None:
        if not size_buckets or any(s <= 0 or s % 8 for s in size_buckets):
            raise ValueError(f"size buckets must be positive multiples of 8, got {size_buckets}")
        if max_batch_images < 1:
            raise ValueError(f"max_batch_images must be >= 1, got {max_batch_images}")
        self.pipeline = pipeline
        self.model = model
        self.family: Family = family
        self.device = device
        self.dtype = dtype
        self.size_buckets = tuple(sorted(size_buckets))
        self.max_batch_images = max_batch_images
        self.safety_checker = safety_checker
        self.compiled = compiled
        self._image_encoder = image_encoder
        self._image_processor = image_processor
        self._ip_embedding = ip_embedding
        self._face_embedder = face_embedder
        self._local_files_only = local_files_only
        self._warmup_sizes = tuple(warmup_sizes) or (self.size_buckets[0],)
        self._warmup_recipes = _lora_settings(warmup_recipes)
        self._loras: dict[str, str] = {}  # source -> adapter name
        self._base_adapters: tuple[str, ...] = tuple(
            sorted({a for names in _adapters(pipeline).values() for a in names})
        )
        self._lora_failures: dict[str, str] = {}
        self._lock = threading.Lock()
        self.pipeline_calls = 0
        """How many pipeline calls ran (batching is visible in tests and logs)."""
        if self.ip_adapter:
            # diffusers repeats `ip_adapter_image_embeds` once per prompt in the batch (one
            # face for the whole call): with a different face per image, every image would
            # attend to every face. We lay the embeddings out per image ourselves.
            pipeline.prepare_ip_adapter_image_embeds = _per_image_ip_embeds

    # --- public --------------------------------------------------------------

    @property
    def ip_adapter(self) -> bool:
        return self._ip_embedding != "none"

    @property
    def warmup_recipes(self) -> tuple[DiffusionRecipe, ...]:
        """What `warmup()` runs: no LoRA, then each (LoRA, scale) of the warm-up recipes."""
        return self._warmup_recipes

    @property
    def loaded_loras(self) -> dict[str, str]:
        """LoRA source -> adapter name, for each LoRA loaded so far (each loads once)."""
        return dict(self._loras)

    def describe(self) -> str:
        extras = [f"{self.family} {self.model}", str(self.dtype).removeprefix("torch.")]
        if self.ip_adapter:
            extras.append(f"ip-adapter ({self._ip_embedding})")
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
            return self._ensure_lora(source)

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
                    self._activate_lora(recipe)
                except GenerationError:
                    continue  # logged; its styles fail alone, with the load error, if asked for
                for size in self._warmup_sizes:
                    bucket = self.bucket_for(size)
                    for count in sorted({1, min(2, self.max_batch_images)}):
                        images = [self._prepare_selfie(face, bucket)] * count
                        embeds = [self._ip_embeds(face)] * count if self.ip_adapter else []
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
            embed = self._ip_embeds(request.selfie) if self.ip_adapter else None
            for seed in request.seeds:
                images.append(selfie)
                seeds.append(seed)
                if embed is not None:
                    embeds.append(embed)
        self._activate_lora(recipe)

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
            results.append(
                GenerationOutput(
                    key=request.key,
                    images=tuple(
                        GeneratedImage(image=_fit(image, request.size), seed=seed)
                        for image, seed in zip(mine, request.seeds, strict=True)
                    ),
                )
            )
        return results

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
                cond = torch.cat([self._ip_uncond(cond), cond], dim=0)
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

    def _ip_embeds(self, selfie: Image.Image) -> torch.Tensor:
        """One request's IP-Adapter conditioning, shaped [1, 1, ...] (batch, images)."""
        face = selfie.convert("RGB")
        if self._ip_embedding == "face":
            assert self._face_embedder is not None  # noqa: S101  # load() guarantees it
            vector = np.asarray(self._face_embedder.embed(face), dtype=np.float32).reshape(-1)
            return torch.from_numpy(vector).reshape(1, 1, -1)
        assert self._image_encoder is not None  # noqa: S101  # load() guarantees it
        assert self._image_processor is not None  # noqa: S101
        pixels = self._image_processor(face, return_tensors="pt").pixel_values
        pixels = pixels.to(device=self.device, dtype=self._image_encoder.dtype)
        with torch.inference_mode():
            out: torch.Tensor
            if self._ip_embedding == "hidden":
                out = self._image_encoder(pixels, output_hidden_states=True).hidden_states[-2]
            else:
                out = self._image_encoder(pixels).image_embeds
        return out.unsqueeze(1).float().cpu()

    def _ip_uncond(self, cond: torch.Tensor) -> torch.Tensor:
        """The negative IP-Adapter conditioning for classifier-free guidance."""
        if self._ip_embedding != "hidden":
            return torch.zeros_like(cond)
        assert self._image_encoder is not None  # noqa: S101
        assert self._image_processor is not None  # noqa: S101
        size = int(self._image_encoder.config.image_size)
        zeros = torch.zeros((1, 3, size, size), device=self.device, dtype=self._image_encoder.dtype)
        with torch.inference_mode():
            hidden: torch.Tensor = self._image_encoder(
                zeros, output_hidden_states=True
            ).hidden_states[-2]
        return hidden.unsqueeze(1).float().cpu().expand_as(cond).contiguous()

    # --- LoRA ----------------------------------------------------------------

    def _activate_lora(self, recipe: DiffusionRecipe) -> None:
        """Switch adapters by name and weight; nothing is (re)loaded here but a LoRA's first
        use. Adapters the pipeline came with (a FaceID adapter's LoRA) stay on at 1.0."""
        if recipe.lora is None:
            if self._loras:
                if self._base_adapters:
                    base = list(self._base_adapters)
                    self.pipeline.set_adapters(base, adapter_weights=[1.0] * len(base))
                else:
                    self.pipeline.disable_lora()
            return
        name = self._ensure_lora(recipe.lora)
        names = [*self._base_adapters, name]
        weights = [1.0] * len(self._base_adapters) + [recipe.lora_scale]
        self.pipeline.enable_lora()
        self.pipeline.set_adapters(names, adapter_weights=weights)

    def _ensure_lora(self, source: str) -> str:
        if source in self._loras:
            return self._loras[source]
        if source in self._lora_failures:
            raise GenerationError(f"LoRA {source!r} failed to load: {self._lora_failures[source]}")
        name = f"style_lora_{len(self._loras) + len(self._lora_failures)}"
        path = Path(source)
        kwargs: dict[str, Any] = {"adapter_name": name, "local_files_only": self._local_files_only}
        target: str = source
        if path.suffix == ".safetensors":
            target, kwargs["weight_name"] = str(path.parent), path.name
        started = time.perf_counter()
        try:
            self.pipeline.load_lora_weights(target, **kwargs)
        except Exception as exc:
            self._lora_failures[source] = f"{type(exc).__name__}: {exc}"
            if any(name in names for names in _adapters(self.pipeline).values()):
                self.pipeline.delete_adapters(name)
            log.warning("LoRA %r failed to load: %s", source, self._lora_failures[source])
            raise GenerationError(f"LoRA {source!r} failed to load: {exc}") from exc
        self._loras[source] = name
        log.info("loaded LoRA %r as %s in %.2f s", source, name, time.perf_counter() - started)
        return name

    def _free_memory(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()


def _per_image_ip_embeds(
    ip_adapter_image: Any,
    ip_adapter_image_embeds: list[torch.Tensor] | None,
    device: Any,
    num_images_per_prompt: int,
    do_classifier_free_guidance: bool,
) -> list[torch.Tensor]:
    """Stands in for the pipeline's `prepare_ip_adapter_image_embeds`: the embeddings
    arrive already one per image (negatives first under guidance), so pass them through."""
    if ip_adapter_image_embeds is None:
        raise ValueError("the diffusers backend passes IP-Adapter embeddings, not images")
    expected = num_images_per_prompt * (2 if do_classifier_free_guidance else 1)
    for embeds in ip_adapter_image_embeds:
        if embeds.shape[0] != expected:
            raise ValueError(
                f"IP-Adapter embeddings for {embeds.shape[0]} images, expected {expected}"
            )
    return [embeds.to(device=device) for embeds in ip_adapter_image_embeds]


def _adapters(pipeline: Any) -> dict[str, list[str]]:
    """The pipeline's loaded adapters by component (empty without peft adapters)."""
    getter = getattr(pipeline, "get_list_adapters", None)
    try:
        return dict(getter()) if getter is not None else {}
    except (ValueError, AttributeError):
        return {}


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


def pick_device(device: str | None = None) -> str:
    """`cuda` when present, else the CPU (with a warning: minutes per avatar at full size)."""
    if device:
        return device
    if torch.cuda.is_available():
        return "cuda"
    log.warning("no CUDA device found: the diffusers backend runs on the CPU (slow)")
    return "cpu"


def pick_dtype(device: str, dtype: str = "auto") -> torch.dtype:
    names = {"float16": torch.float16, "fp16": torch.float16, "bfloat16": torch.bfloat16}
    names |= {"bf16": torch.bfloat16, "float32": torch.float32, "fp32": torch.float32}
    if dtype == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    if dtype not in names:
        raise BackendUnavailableError(
            f"unknown dtype {dtype!r}; use auto, float16, bfloat16 or float32"
        )
    return names[dtype]


def detect_family(model: str, *, local_files_only: bool = False) -> Family:
    """SD or SDXL, from the pipeline class named in the model's model_index.json."""
    from diffusers import DiffusionPipeline  # noqa: PLC0415  # heavy; imported on use

    try:
        config = DiffusionPipeline.load_config(model, local_files_only=local_files_only)
    except Exception as exc:
        raise BackendUnavailableError(f"cannot read model {model!r}: {exc}") from exc
    class_name = str(config.get("_class_name", ""))
    if "XL" in class_name and class_name.startswith("StableDiffusion"):
        return "sdxl"
    if class_name.startswith(("StableDiffusion", "LatentConsistencyModel")):
        return "sd"
    raise BackendUnavailableError(
        f"model {model!r} is a {class_name or 'unknown pipeline'}; "
        "the diffusers backend supports the SD and SDXL families"
    )


_WARMUP_PROMPT = "a portrait photo of a person"


def _lora_settings(recipes: Sequence[DiffusionRecipe]) -> tuple[DiffusionRecipe, ...]:
    """One short warm-up recipe without a LoRA, then one per distinct (LoRA, scale)."""
    plain = DiffusionRecipe(prompt=_WARMUP_PROMPT, strength=0.5, steps=2)
    settings = dict.fromkeys((r.lora, r.lora_scale) for r in recipes if r.lora)
    return (plain, *(replace(plain, lora=lora, lora_scale=scale) for lora, scale in settings))


def _allow_recompiles(graphs: int) -> None:
    """Let dynamo keep `graphs` compiled variants of a function (its default is 8, after
    which it silently runs the function uncompiled)."""
    import torch._dynamo.config as dynamo_config  # noqa: PLC0415  # only when compiling

    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, graphs)
    dynamo_config.accumulated_recompile_limit = max(
        dynamo_config.accumulated_recompile_limit, 4 * graphs
    )


def load(
    model: str,
    device: str | None = None,
    *,
    dtype: str = "auto",
    variant: str | None = None,
    local_files_only: bool = False,
    scheduler: SchedulerName = "euler",
    ip_adapter: str | None = DEFAULT_IP_ADAPTER,
    ip_adapter_subfolder: str | None = None,
    ip_adapter_weight: str | None = None,
    ip_adapter_image_encoder: str | None = _IMAGE_ENCODER_FOLDER,
    ip_adapter_scale: float = 0.6,
    face_embedder: FaceEmbedder | None = None,
    safety_checker: SafetyChecker | bool = True,
    tiny_vae: str | None = None,
    compile: bool = False,
    compile_mode: str = "reduce-overhead",
    compile_backend: str | Callable[..., Any] = "inductor",
    channels_last: bool | None = None,
    size_buckets: Sequence[int] = SIZE_BUCKETS,
    max_batch_images: int = 8,
    preload_loras: Sequence[str] = (),
    warmup_sizes: Sequence[int] = (),
    warmup_recipes: Sequence[DiffusionRecipe] = (),
) -> DiffusersBackend:
    """Load a diffusers model once and wrap it as a backend.

    `model` is a hub id or a local folder (diffusers layout). `ip_adapter` is a hub id or
    folder in h94/IP-Adapter's layout (None turns likeness conditioning off); the
    subfolder, weight file and image-encoder folder default to plus-face for the model's
    family. `safety_checker`: True uses the model's own checker when it ships one, False
    turns checking off, or pass a `SafetyChecker`. See docs/diffusers.md for the rest.
    """
    started = time.perf_counter()
    device = pick_device(device)
    torch_dtype = pick_dtype(device, dtype)
    family = detect_family(model, local_files_only=local_files_only)
    pipe = _load_pipeline(
        model,
        family,
        torch_dtype,
        variant=variant,
        local_files_only=local_files_only,
        with_checker=safety_checker is not False,
    )
    checker = _take_safety_checker(pipe, safety_checker, device, torch_dtype)
    _set_scheduler(pipe, scheduler)
    if tiny_vae:
        pipe.vae = _load_tiny_vae(tiny_vae, torch_dtype, local_files_only)
    pipe.to(device)

    ip = _IpAdapter()
    if ip_adapter:
        subfolder, weight = _IP_ADAPTER_FILES[family]
        ip = _load_ip_adapter(
            pipe,
            ip_adapter,
            subfolder=subfolder if ip_adapter_subfolder is None else ip_adapter_subfolder,
            weight=ip_adapter_weight or weight,
            image_encoder=ip_adapter_image_encoder or None,
            scale=ip_adapter_scale,
            has_face_embedder=face_embedder is not None,
            local_files_only=local_files_only,
        )
    if channels_last is None:
        channels_last = device.startswith("cuda")  # a tensor-core layout; no CPU gain
    if channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)

    backend = DiffusersBackend(
        pipe,
        model=model,
        family=family,
        device=device,
        dtype=torch_dtype,
        image_encoder=ip.image_encoder,
        image_processor=ip.image_processor,
        ip_embedding=ip.kind,
        face_embedder=face_embedder,
        safety_checker=checker,
        size_buckets=size_buckets,
        max_batch_images=max_batch_images,
        local_files_only=local_files_only,
        compiled=compile,
        warmup_sizes=warmup_sizes,
        warmup_recipes=warmup_recipes,
    )
    for source in preload_loras:
        backend.load_lora(source)
    if compile:
        # In place, so LoRA/IP-Adapter modules stay addressable; compiled by warmup(). Per
        # LoRA setting: a graph for batch 1, one with a dynamic batch, room to spare.
        _allow_recompiles(2 * len(_lora_settings(warmup_recipes)) + 4)
        options = {"mode": compile_mode} if compile_backend == "inductor" else {}
        pipe.unet.compile(backend=compile_backend, **options)
        pipe.vae.decoder.compile(backend=compile_backend, **options)
    log.info("loaded %s in %.1f s", backend.describe(), time.perf_counter() - started)
    return backend


def _diffusers() -> Any:
    try:
        import diffusers  # noqa: PLC0415  # heavy; only when this backend is chosen
    except ImportError as exc:
        raise BackendUnavailableError(
            "the diffusers backend needs the 'diffusion' extra: pip install 'avatarbot[diffusion]'"
        ) from exc
    return diffusers


def _load_pipeline(
    model: str,
    family: Family,
    dtype: torch.dtype,
    *,
    variant: str | None,
    local_files_only: bool,
    with_checker: bool,
) -> Any:
    diffusers = _diffusers()
    pipeline_cls: Any = (
        diffusers.StableDiffusionXLImg2ImgPipeline
        if family == "sdxl"
        else diffusers.StableDiffusionImg2ImgPipeline
    )
    kwargs: dict[str, Any] = {"dtype": dtype, "local_files_only": local_files_only}
    if variant:
        kwargs["variant"] = variant
    if family == "sd" and not with_checker:
        kwargs["safety_checker"] = None
        kwargs["requires_safety_checker"] = False
    try:
        pipe = pipeline_cls.from_pretrained(model, **kwargs)
    except Exception as exc:
        raise BackendUnavailableError(f"cannot load model {model!r}: {exc}") from exc
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _take_safety_checker(
    pipe: Any, choice: SafetyChecker | bool, device: str, dtype: torch.dtype
) -> SafetyChecker | None:
    """Pick the checker; detach the model's own from the pipeline (we run it per request)."""
    model_checker = getattr(pipe, "safety_checker", None)
    checker: SafetyChecker | None = None
    if isinstance(choice, SafetyChecker):
        checker = choice
    elif choice and model_checker is not None and pipe.feature_extractor is not None:
        checker = ModelSafetyChecker(model_checker, pipe.feature_extractor, device, dtype)
    if model_checker is not None:
        pipe.safety_checker = None
    return checker


def _set_scheduler(pipe: Any, name: str) -> None:
    diffusers = _diffusers()
    classes: dict[str, Any] = {
        "euler": diffusers.EulerDiscreteScheduler,
        "lcm": diffusers.LCMScheduler,
    }
    if name == "model":
        return
    if name not in classes:
        raise BackendUnavailableError(f"unknown scheduler {name!r}; use euler, lcm or model")
    pipe.scheduler = classes[name].from_config(pipe.scheduler.config, timestep_spacing="trailing")


def _load_tiny_vae(source: str, dtype: torch.dtype, local_files_only: bool) -> Any:
    tiny_cls: Any = _diffusers().AutoencoderTiny
    try:
        return tiny_cls.from_pretrained(source, dtype=dtype, local_files_only=local_files_only)
    except Exception as exc:
        raise BackendUnavailableError(f"cannot load tiny autoencoder {source!r}: {exc}") from exc


@dataclass(frozen=True)
class _IpAdapter:
    kind: Literal["none", "hidden", "pooled", "face"] = "none"
    image_encoder: Any | None = None
    image_processor: Any | None = None


def _load_ip_adapter(
    pipe: Any,
    source: str,
    *,
    subfolder: str,
    weight: str,
    image_encoder: str | None,
    scale: float,
    has_face_embedder: bool,
    local_files_only: bool,
) -> _IpAdapter:
    from transformers import CLIPImageProcessorPil  # noqa: PLC0415  # needs no torchvision

    try:
        pipe.load_ip_adapter(
            source,
            subfolder=subfolder,
            weight_name=weight,
            image_encoder_folder=image_encoder,
            local_files_only=local_files_only,
        )
    except Exception as exc:
        hint = ""
        if weight.endswith("_sd15.safetensors") and pipe.unet.config.cross_attention_dim != 768:
            hint = (
                " (SD 1.5 IP-Adapters need an SD 1.5-based model; SD 2.x models such as"
                " sd-turbo have none: pick an SDXL or SD 1.5 model, or turn IP-Adapter off)"
            )
        raise BackendUnavailableError(f"cannot load IP-Adapter {source!r}: {exc}{hint}") from exc
    pipe.set_ip_adapter_scale(scale)
    kind = _ip_embedding_kind(pipe.unet)
    if kind == "face":
        if not has_face_embedder:
            raise BackendUnavailableError(
                "this IP-Adapter is a FaceID variant: configure a FaceEmbedder"
            )
        return _IpAdapter(kind)
    encoder = getattr(pipe, "image_encoder", None)
    if encoder is None:
        raise BackendUnavailableError("this IP-Adapter needs a CLIP image encoder")
    size = int(encoder.config.image_size)
    return _IpAdapter(kind, encoder, CLIPImageProcessorPil(size=size, crop_size=size))


def _ip_embedding_kind(unet: Any) -> Literal["hidden", "pooled", "face"]:
    from diffusers.models.embeddings import (  # noqa: PLC0415
        ImageProjection,
        IPAdapterFaceIDImageProjection,
        IPAdapterFaceIDPlusImageProjection,
    )

    layer = unet.encoder_hid_proj.image_projection_layers[0]
    if isinstance(layer, IPAdapterFaceIDPlusImageProjection):
        raise BackendUnavailableError(
            "IP-Adapter FaceID Plus variants are not supported; use plus-face or FaceID"
        )
    if isinstance(layer, IPAdapterFaceIDImageProjection):
        return "face"
    if isinstance(layer, ImageProjection):
        return "pooled"
    return "hidden"
