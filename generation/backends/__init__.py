"""Generation backends, all behind `generation.backends.base.Backend`.

`load_backend` is the one place a backend is chosen by name. The diffusers backend is
imported only when asked for, so the base install (no torch) never pays for it; its
options (`DiffusersOptions`) are built once from the settings.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from generation.backends.base import Backend, BackendUnavailableError
from generation.backends.diffusers_options import DEFAULT_DIFFUSION_MODEL, DiffusersOptions

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.styles import StyleCatalog

BACKENDS = ("cpu", "diffusers")

__all__ = [
    "BACKENDS",
    "DEFAULT_DIFFUSION_MODEL",
    "DiffusersOptions",
    "backend_from_settings",
    "load_backend",
]


def backend_from_settings(settings: Settings, catalog: StyleCatalog) -> Backend:
    """The configured backend, with every diffusers option the settings carry."""
    if settings.backend != "diffusers":
        return load_backend(settings.backend)
    return load_backend("diffusers", DiffusersOptions.from_settings(settings, catalog))


def load_backend(name: str, options: DiffusersOptions | None = None) -> Backend:
    """The backend called `name`, loaded and ready (`options` apply to diffusers; without
    them its defaults: see `generation.backends.diffusers_backend.load`)."""
    if name == "cpu":
        from generation.backends.cpu_engine import CpuStyleEngine  # noqa: PLC0415

        return CpuStyleEngine()
    if name == "diffusers":
        try:
            module = importlib.import_module("generation.backends.diffusers_backend")
            backend = module.load(options or DiffusersOptions())
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
