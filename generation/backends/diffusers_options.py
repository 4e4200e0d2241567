"""Everything the diffusers backend can be asked for, in one typed value, built once from the
settings (`DiffusersOptions.from_settings`). Imports neither torch nor diffusers, so the base
install can build and check it; `generation.backends.diffusers_backend.load` takes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from bot.styles import DiffusionRecipe

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.styles import StyleCatalog
    from generation.backends.diffusers_safety import SafetyChecker
    from generation.backends.face_embedders import FaceEmbedder

DEFAULT_DIFFUSION_MODEL = "stabilityai/sdxl-turbo"

DEFAULT_IP_ADAPTER = "h94/IP-Adapter"
"""Hub repository (or a local folder with the same layout) holding the IP-Adapter weights."""

IMAGE_ENCODER_FOLDER = "models/image_encoder"
"""The ViT-H image encoder both plus-face adapters use, inside the IP-Adapter repository."""

SIZE_BUCKETS: tuple[int, ...] = (512, 768, 1024)
"""Sides the pipeline renders at; a request is rendered at the smallest bucket that holds
its size and resized to the exact size asked for. Fixed shapes keep compiled graphs warm."""

SchedulerName = Literal["euler", "lcm", "model"]


@dataclass(frozen=True)
class DiffusersOptions:
    """How to load and run the model. See docs/diffusers.md for what each option does."""

    model: str = DEFAULT_DIFFUSION_MODEL
    """A hub id or a local folder (diffusers layout)."""
    device: str | None = None
    """None: CUDA when present, else the CPU."""
    dtype: str = "auto"
    variant: str | None = None
    local_files_only: bool = False
    scheduler: SchedulerName = "euler"
    ip_adapter: str | None = DEFAULT_IP_ADAPTER
    """A hub id or folder in h94/IP-Adapter's layout; None turns likeness conditioning off."""
    ip_adapter_subfolder: str | None = None
    """None: plus-face's folder for the model's family (as are the weight file's)."""
    ip_adapter_weight: str | None = None
    ip_adapter_image_encoder: str | None = IMAGE_ENCODER_FOLDER
    ip_adapter_scale: float = 0.6
    face_embedder: FaceEmbedder | None = None
    """For IP-Adapter FaceID variants (an ArcFace-style identity embedding)."""
    safety_checker: SafetyChecker | bool = True
    """True: the model's own checker when it ships one; False: none; or your own."""
    tiny_vae: str | None = None
    compile: bool = False
    compile_mode: str = "reduce-overhead"
    compile_backend: str | Callable[..., Any] = "inductor"
    channels_last: bool | None = None
    """None: on CUDA only (a tensor-core layout; no CPU gain)."""
    size_buckets: Sequence[int] = SIZE_BUCKETS
    max_batch_images: int = 8
    preload_loras: Sequence[str] = ()
    warmup_sizes: Sequence[int] = ()
    """Output sizes `warmup()` renders at (default: the smallest bucket)."""
    warmup_recipes: Sequence[DiffusionRecipe] = ()
    """The recipes whose LoRA settings `warmup()` covers (the catalog's when compiling)."""

    @classmethod
    def from_settings(cls, settings: Settings, catalog: StyleCatalog) -> DiffusersOptions:
        """Every diffusers option the settings carry; LoRAs of the catalog's styles are
        loaded up front, and with `compile` every recipe is warmed up before the first user."""
        return cls(
            model=settings.model,
            device=settings.device,
            dtype=settings.diffusion_dtype,
            variant=settings.diffusion_variant,
            scheduler=settings.scheduler,
            ip_adapter=None if settings.ip_adapter.lower() == "none" else settings.ip_adapter,
            ip_adapter_scale=settings.ip_adapter_scale,
            safety_checker=settings.safety_checker,
            tiny_vae=settings.tiny_vae,
            compile=settings.compile,
            compile_backend=settings.compile_backend,
            local_files_only=settings.local_files_only,
            max_batch_images=max(8, settings.batch_size * 2),
            preload_loras=sorted({s.diffusion.lora for s in catalog if s.diffusion.lora}),
            warmup_sizes=(settings.output_size,) if settings.compile else (),
            warmup_recipes=[s.diffusion for s in catalog] if settings.compile else (),
        )
