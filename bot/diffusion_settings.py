"""The diffusers backend's settings, part of `bot.config.Settings` (which extends this).

Kept apart only to keep each settings module small; read and validated with the rest.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings


def env_alias(name: str) -> AliasChoices:
    """A setting read from the environment variable `name` (or its lower-case form)."""
    return AliasChoices(name, name.lower())


_env = env_alias


class DiffusionSettings(BaseSettings):
    """Model, device, precision and speed levers of the diffusers backend."""

    backend: Literal["cpu", "diffusers"] = Field(
        default="cpu", validation_alias=_env("AVATARBOT_BACKEND")
    )
    model: str = Field(
        default="stabilityai/sdxl-turbo",
        validation_alias=_env("AVATARBOT_MODEL"),
        description="Hub id or local path of the diffusion model (SD or SDXL family).",
    )
    device: str | None = Field(
        default=None,
        validation_alias=_env("AVATARBOT_DEVICE"),
        description="torch device for diffusers; unset: cuda when present, else cpu.",
    )
    ip_adapter: str = Field(
        default="h94/IP-Adapter",
        validation_alias=_env("AVATARBOT_IP_ADAPTER"),
        description="IP-Adapter hub id or folder (h94 layout) for likeness; 'none' turns it off.",
    )
    ip_adapter_scale: float = Field(
        default=0.6, ge=0.0, le=2.0, validation_alias=_env("AVATARBOT_IP_ADAPTER_SCALE")
    )
    diffusion_dtype: Literal["auto", "float16", "bfloat16", "float32"] = Field(
        default="auto", validation_alias=_env("AVATARBOT_DIFFUSION_DTYPE")
    )
    diffusion_variant: str | None = Field(
        default=None, validation_alias=_env("AVATARBOT_MODEL_VARIANT")
    )
    scheduler: Literal["euler", "lcm", "model"] = Field(
        default="euler", validation_alias=_env("AVATARBOT_SCHEDULER")
    )
    compile: bool = Field(
        default=False,
        validation_alias=_env("AVATARBOT_COMPILE"),
        description="torch.compile the UNet (warmed up at worker start, not on the first user).",
    )
    compile_backend: str = Field(
        default="inductor",
        min_length=1,
        validation_alias=_env("AVATARBOT_COMPILE_BACKEND"),
        description=(
            "torch.compile backend: inductor, cudagraphs, or one another package registers "
            "(e.g. tensorrt with torch-tensorrt installed)."
        ),
    )
    tiny_vae: str | None = Field(
        default=None,
        validation_alias=_env("AVATARBOT_TINY_VAE"),
        description="A tiny autoencoder (TAESD) to decode with: faster, slightly softer.",
    )
    safety_checker: bool = Field(default=True, validation_alias=_env("AVATARBOT_SAFETY_CHECKER"))
    local_files_only: bool = Field(
        default=False,
        validation_alias=_env("AVATARBOT_LOCAL_FILES_ONLY"),
        description="Never contact the model hub (weights must already be on disk).",
    )
