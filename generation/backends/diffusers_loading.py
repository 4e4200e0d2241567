"""Loading a diffusers pipeline for the backend: device and dtype, the model's family, the
scheduler, the tiny autoencoder, the IP-Adapter and its image encoder, the safety checker.
Every failure is a `BackendUnavailableError` that says what to change."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import torch

from generation.backends.base import BackendUnavailableError
from generation.backends.diffusers_safety import ModelSafetyChecker, SafetyChecker

log = logging.getLogger(__name__)

Family = Literal["sd", "sdxl"]
IpEmbedding = Literal["none", "hidden", "pooled", "face"]

IP_ADAPTER_FILES: dict[str, tuple[str, str]] = {
    # family: (subfolder, weight file) of the plus-face adapter in h94/IP-Adapter
    "sd": ("models", "ip-adapter-plus-face_sd15.safetensors"),
    "sdxl": ("sdxl_models", "ip-adapter-plus-face_sdxl_vit-h.safetensors"),
}


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


def allow_recompiles(graphs: int) -> None:
    """Let dynamo keep `graphs` compiled variants of a function (its default is 8, after
    which it silently runs the function uncompiled)."""
    import torch._dynamo.config as dynamo_config  # noqa: PLC0415  # only when compiling

    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, graphs)
    dynamo_config.accumulated_recompile_limit = max(
        dynamo_config.accumulated_recompile_limit, 4 * graphs
    )


def diffusers_module() -> Any:
    try:
        import diffusers  # noqa: PLC0415  # heavy; only when this backend is chosen
    except ImportError as exc:
        raise BackendUnavailableError(
            "the diffusers backend needs the 'diffusion' extra: pip install 'avatarbot[diffusion]'"
        ) from exc
    return diffusers


def load_pipeline(
    model: str,
    family: Family,
    dtype: torch.dtype,
    *,
    variant: str | None,
    local_files_only: bool,
    with_checker: bool,
) -> Any:
    diffusers = diffusers_module()
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


def take_safety_checker(
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


def set_scheduler(pipe: Any, name: str) -> None:
    diffusers = diffusers_module()
    classes: dict[str, Any] = {
        "euler": diffusers.EulerDiscreteScheduler,
        "lcm": diffusers.LCMScheduler,
    }
    if name == "model":
        return
    if name not in classes:
        raise BackendUnavailableError(f"unknown scheduler {name!r}; use euler, lcm or model")
    pipe.scheduler = classes[name].from_config(pipe.scheduler.config, timestep_spacing="trailing")


def load_tiny_vae(source: str, dtype: torch.dtype, local_files_only: bool) -> Any:
    tiny_cls: Any = diffusers_module().AutoencoderTiny
    try:
        return tiny_cls.from_pretrained(source, dtype=dtype, local_files_only=local_files_only)
    except Exception as exc:
        raise BackendUnavailableError(f"cannot load tiny autoencoder {source!r}: {exc}") from exc


@dataclass(frozen=True)
class IpAdapter:
    kind: IpEmbedding = "none"
    image_encoder: Any | None = None
    image_processor: Any | None = None


def load_ip_adapter(
    pipe: Any,
    source: str,
    *,
    subfolder: str,
    weight: str,
    image_encoder: str | None,
    scale: float,
    has_face_embedder: bool,
    local_files_only: bool,
) -> IpAdapter:
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
    kind = ip_embedding_kind(pipe.unet)
    if kind == "face":
        if not has_face_embedder:
            raise BackendUnavailableError(
                "this IP-Adapter is a FaceID variant: configure a FaceEmbedder"
            )
        return IpAdapter(kind)
    encoder = getattr(pipe, "image_encoder", None)
    if encoder is None:
        raise BackendUnavailableError("this IP-Adapter needs a CLIP image encoder")
    size = int(encoder.config.image_size)
    return IpAdapter(kind, encoder, CLIPImageProcessorPil(size=size, crop_size=size))


def ip_embedding_kind(unet: Any) -> Literal["hidden", "pooled", "face"]:
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
