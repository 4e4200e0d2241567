"""Generation backends, all behind `generation.backends.base.Backend`.

`load_backend` is the one place a backend is chosen by name. The diffusers backend is
imported only when asked for, so the base install (no torch) never pays for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from generation.backends.base import Backend, BackendUnavailableError

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.styles import StyleCatalog

BACKENDS = ("cpu", "diffusers")
DEFAULT_DIFFUSION_MODEL = "stabilityai/sdxl-turbo"


def backend_from_settings(settings: Settings, catalog: StyleCatalog) -> Backend:
    """The configured backend, with every diffusers option the settings carry."""
    if settings.backend != "diffusers":
        return load_backend(settings.backend)
    loras = sorted({s.diffusion.lora for s in catalog if s.diffusion.lora})
    return load_backend(
        "diffusers",
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
        preload_loras=loras,
        warmup_sizes=(settings.output_size,) if settings.compile else (),
        warmup_recipes=[s.diffusion for s in catalog] if settings.compile else (),
    )


def load_backend(
    name: str,
    *,
    model: str = DEFAULT_DIFFUSION_MODEL,
    device: str | None = None,
    **options: Any,
) -> Backend:
    """The backend called `name`, loaded and ready (`model`, `device` and `options` apply
    to diffusers; see `generation.backends.diffusers_backend.load`)."""
    if name == "cpu":
        from generation.backends.cpu_engine import CpuStyleEngine  # noqa: PLC0415

        return CpuStyleEngine()
    if name == "diffusers":
        try:
            module = importlib.import_module("generation.backends.diffusers_backend")
            backend = module.load(model=model, device=device, **options)
        except ImportError as exc:  # torch, diffusers or transformers missing
            raise BackendUnavailableError(
                f"the diffusers backend cannot be imported ({exc}); install the diffusion "
                "extra: pip install 'avatarbot[diffusion]' (torch==2.13.0, diffusers), "
                "or use the CPU style engine: AVATARBOT_BACKEND=cpu"
            ) from exc
        if not isinstance(backend, Backend):
            raise BackendUnavailableError(f"diffusers_backend.load returned {backend!r}")
        return backend
    raise BackendUnavailableError(
        f"unknown generation backend {name!r}; choose one of: {', '.join(BACKENDS)}"
    )
