"""The style LoRAs of one diffusers pipeline: each loaded once (peft), on its first use or
up front, then switched on and off by adapter name and weight, never reloaded. A LoRA that
fails to load fails the styles that use it, each time, without another try."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from bot.styles import DiffusionRecipe
from generation.backends.base import GenerationError

log = logging.getLogger(__name__)


class StyleLoras:
    """Not thread-safe: the backend calls it under its lock."""

    def __init__(self, pipeline: Any, *, local_files_only: bool) -> None:
        self.pipeline = pipeline
        self._local_files_only = local_files_only
        self._loaded: dict[str, str] = {}  # source -> adapter name
        self._failures: dict[str, str] = {}
        self._base: tuple[str, ...] = tuple(
            sorted({a for names in adapters(pipeline).values() for a in names})
        )
        """Adapters the pipeline came with (a FaceID adapter's LoRA): always on at 1.0."""

    @property
    def loaded(self) -> dict[str, str]:
        """LoRA source -> adapter name, for each LoRA loaded so far."""
        return dict(self._loaded)

    def activate(self, recipe: DiffusionRecipe) -> None:
        """Switch adapters by name and weight; nothing is (re)loaded here but a LoRA's first
        use. The pipeline's own adapters stay on at 1.0."""
        if recipe.lora is None:
            if self._loaded:
                if self._base:
                    base = list(self._base)
                    self.pipeline.set_adapters(base, adapter_weights=[1.0] * len(base))
                else:
                    self.pipeline.disable_lora()
            return
        name = self.ensure(recipe.lora)
        names = [*self._base, name]
        weights = [1.0] * len(self._base) + [recipe.lora_scale]
        self.pipeline.enable_lora()
        self.pipeline.set_adapters(names, adapter_weights=weights)

    def ensure(self, source: str) -> str:
        """Load `source` (a hub id, folder or .safetensors file) once; its adapter name."""
        if source in self._loaded:
            return self._loaded[source]
        if source in self._failures:
            raise GenerationError(f"LoRA {source!r} failed to load: {self._failures[source]}")
        name = f"style_lora_{len(self._loaded) + len(self._failures)}"
        path = Path(source)
        kwargs: dict[str, Any] = {"adapter_name": name, "local_files_only": self._local_files_only}
        target: str = source
        if path.suffix == ".safetensors":
            target, kwargs["weight_name"] = str(path.parent), path.name
        started = time.perf_counter()
        try:
            self.pipeline.load_lora_weights(target, **kwargs)
        except Exception as exc:
            self._failures[source] = f"{type(exc).__name__}: {exc}"
            if any(name in names for names in adapters(self.pipeline).values()):
                self.pipeline.delete_adapters(name)
            log.warning("LoRA %r failed to load: %s", source, self._failures[source])
            raise GenerationError(f"LoRA {source!r} failed to load: {exc}") from exc
        self._loaded[source] = name
        log.info("loaded LoRA %r as %s in %.2f s", source, name, time.perf_counter() - started)
        return name


def adapters(pipeline: Any) -> dict[str, list[str]]:
    """The pipeline's loaded adapters by component (empty without peft adapters)."""
    getter = getattr(pipeline, "get_list_adapters", None)
    try:
        return dict(getter()) if getter is not None else {}
    except (ValueError, AttributeError):
        return {}
