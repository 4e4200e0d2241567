"""Generation backends, all behind `generation.backends.base.Backend`.

`load_backend` is the one place a backend is chosen by name. The diffusers backend is
imported only when asked for, so the base install (no torch) never pays for it.
"""

from __future__ import annotations

import importlib

from generation.backends.base import Backend, BackendUnavailableError

BACKENDS = ("cpu", "diffusers")
DEFAULT_DIFFUSION_MODEL = "stabilityai/sd-turbo"


def load_backend(
    name: str, *, model: str = DEFAULT_DIFFUSION_MODEL, device: str | None = None
) -> Backend:
    """The backend called `name`, loaded and ready (`model`/`device` apply to diffusers)."""
    if name == "cpu":
        from generation.backends.cpu_engine import CpuStyleEngine  # noqa: PLC0415

        return CpuStyleEngine()
    if name == "diffusers":
        try:
            module = importlib.import_module("generation.backends.diffusers_backend")
            backend = module.load(model=model, device=device)
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
