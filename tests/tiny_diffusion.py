"""Tiny random-weight diffusion models for offline CPU tests of the diffusers backend.

Everything is built from config with random weights (a few channels, 64 px native),
saved with `save_pretrained` into a temporary directory, and then loaded back through
the backend's real `load()` with `local_files_only=True`. Nothing is downloaded.

Layouts mirror the real ones, so the backend's default sub-paths work unchanged:
- `sd/`, `sdxl/`: diffusers pipeline folders (model_index.json + components); `sd-nsfw/`
  is the SD model with a safety checker whose thresholds flag every image.
- `ip-adapter/`: the original IP-Adapter layout (h94/IP-Adapter): `models/image_encoder/`,
  `models/ip-adapter-plus-face_sd15.safetensors`,
  `sdxl_models/ip-adapter-plus-face_sdxl_vit-h.safetensors` (keys `image_proj.*` and
  `ip_adapter.*`, the Resampler in its original naming).
- `lora-sd/`, `lora-sdxl/`: a random LoRA (peft) saved with `save_lora_weights`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderTiny,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
from diffusers.utils import convert_state_dict_to_diffusers
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import save_file
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
)

SIZE = 64
"""Native pixel size of the tiny models (latents are 32 x 32: the VAE downsamples by 2)."""

_TEXT_HIDDEN = 32
_VISION_HIDDEN = 32
_RESAMPLER_HIDDEN = 64  # heads = hidden // 64 in diffusers' converter, so at least 64
_RESAMPLER_QUERIES = 4


@dataclass(frozen=True)
class TinyModels:
    root: Path
    sd: Path
    sdxl: Path
    sd_nsfw: Path
    ip_adapter: Path
    faceid: Path
    lora_sd: Path
    lora_sdxl: Path
    taesd: Path


def build(root: Path) -> TinyModels:
    """Build and save every tiny model under `root` (about a second on one CPU thread)."""
    torch.manual_seed(0)
    tokenizer = make_tokenizer(root / "tokenizer-src")
    models = TinyModels(
        root=root,
        sd=root / "sd",
        sdxl=root / "sdxl",
        sd_nsfw=root / "sd-nsfw",
        ip_adapter=root / "ip-adapter",
        faceid=root / "faceid",
        lora_sd=root / "lora-sd",
        lora_sdxl=root / "lora-sdxl",
        taesd=root / "taesd",
    )
    sd_unet = _sd_unet()
    sd = StableDiffusionPipeline(
        vae=_vae(),
        text_encoder=CLIPTextModel(_text_config()),
        tokenizer=tokenizer,
        unet=sd_unet,
        scheduler=_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )
    sd.save_pretrained(models.sd)
    nsfw = StableDiffusionPipeline(
        vae=sd.vae,
        text_encoder=sd.text_encoder,
        tokenizer=tokenizer,
        unet=sd_unet,
        scheduler=_scheduler(),
        safety_checker=_flag_everything_checker(),
        feature_extractor=CLIPImageProcessor(size=SIZE // 2, crop_size=SIZE // 2),
        image_encoder=None,
        requires_safety_checker=True,
    )
    nsfw.save_pretrained(models.sd_nsfw)

    sdxl_unet = _sdxl_unet()
    sdxl = StableDiffusionXLPipeline(
        vae=_vae(),
        text_encoder=CLIPTextModel(_text_config()),
        text_encoder_2=CLIPTextModelWithProjection(_text_config(projection_dim=_TEXT_HIDDEN)),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=sdxl_unet,
        scheduler=_scheduler(),
    )
    sdxl.save_pretrained(models.sdxl)

    _write_ip_adapter(models.ip_adapter, sd_unet, sdxl_unet)
    _write_faceid(models.faceid, sd_unet)
    _write_lora(models.lora_sd, _sd_unet())
    _write_lora(models.lora_sdxl, _sdxl_unet(), xl=True)
    AutoencoderTiny(
        encoder_block_out_channels=(8, 8),
        decoder_block_out_channels=(8, 8),
        num_encoder_blocks=(1, 1),
        num_decoder_blocks=(1, 1),
        latent_channels=4,
        upsampling_scaling_factor=2,
    ).save_pretrained(models.taesd)
    return models


def make_tokenizer(directory: Path) -> CLIPTokenizer:
    """A CLIP tokenizer from a byte-level vocabulary with no merges (one token a character)."""
    _write_tokenizer_files(directory)
    return CLIPTokenizer(
        str(directory / "vocab.json"), str(directory / "merges.txt"), model_max_length=77
    )


def _write_tokenizer_files(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    chars = [chr(c) for c in range(33, 127)] + [chr(c) for c in range(161, 256)]
    chars += [chr(c) for c in range(256, 256 + 68)]  # GPT-2's remapped control bytes
    vocab: dict[str, int] = {}
    for token in ["<|startoftext|>", "<|endoftext|>", "!"]:
        vocab.setdefault(token, len(vocab))
    for ch in chars:
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    (directory / "vocab.json").write_text(json.dumps(vocab), "utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n", "utf-8")


def _text_config(projection_dim: int | None = None) -> CLIPTextConfig:
    extra = {"projection_dim": projection_dim} if projection_dim else {}
    return CLIPTextConfig(
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        hidden_size=_TEXT_HIDDEN,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=1000,
        max_position_embeddings=77,
        **extra,
    )


def _vision_config() -> CLIPVisionConfig:
    return CLIPVisionConfig(
        hidden_size=_VISION_HIDDEN,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        image_size=SIZE // 2,
        patch_size=8,
        projection_dim=_VISION_HIDDEN,
    )


def _scheduler() -> EulerDiscreteScheduler:
    return EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        timestep_spacing="trailing",
        steps_offset=1,
    )


def _vae() -> AutoencoderKL:
    return AutoencoderKL(
        block_out_channels=(8, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
        sample_size=SIZE,
    )


def _sd_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        sample_size=SIZE // 2,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=_TEXT_HIDDEN,
        attention_head_dim=(2, 4),
        norm_num_groups=8,
    )


def _sdxl_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        sample_size=SIZE // 2,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=2 * _TEXT_HIDDEN,
        attention_head_dim=(2, 4),
        norm_num_groups=8,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 8 + _TEXT_HIDDEN,
    )


def _flag_everything_checker() -> StableDiffusionSafetyChecker:
    config = CLIPConfig(
        text_config=_text_config().to_dict(),
        vision_config=_vision_config().to_dict(),
        projection_dim=_VISION_HIDDEN,
    )
    checker = StableDiffusionSafetyChecker(config)
    with torch.no_grad():
        # A cosine distance is >= -1, so a threshold of -2 flags every image.
        checker.concept_embeds_weights.fill_(-2.0)
    return checker


def _write_ip_adapter(
    root: Path, sd_unet: UNet2DConditionModel, sdxl_unet: UNet2DConditionModel
) -> None:
    encoder = CLIPVisionModelWithProjection(_vision_config())
    encoder.save_pretrained(root / "models" / "image_encoder")
    for unet, folder, name in (
        (sd_unet, "models", "ip-adapter-plus-face_sd15.safetensors"),
        (sdxl_unet, "sdxl_models", "ip-adapter-plus-face_sdxl_vit-h.safetensors"),
    ):
        (root / folder).mkdir(parents=True, exist_ok=True)
        weights = plus_face_weights(
            unet,
            image_hidden=_VISION_HIDDEN,
            resampler_hidden=_RESAMPLER_HIDDEN,
            queries=_RESAMPLER_QUERIES,
        )
        save_file(weights, str(root / folder / name))


def plus_face_weights(
    unet: UNet2DConditionModel,
    *,
    image_hidden: int,
    resampler_hidden: int,
    queries: int,
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """Random IP-Adapter Plus weights for `unet`, in the original file layout (the real
    plus-face files: resampler 768 wide for SD 1.5, 1280 for SDXL; 16 queries; ViT-H 1280)."""
    output_dims = int(unet.config.cross_attention_dim)
    weights = _plus_image_proj(output_dims, image_hidden, resampler_hidden, queries)
    weights |= _ip_attention(unet)
    return {k: v.to(dtype).contiguous() for k, v in weights.items()}


FACEID_WEIGHT = "ip-adapter-faceid_sd15.safetensors"
FACE_DIM = 512


def _write_faceid(root: Path, unet: UNet2DConditionModel) -> None:
    """IP-Adapter FaceID (no bundled LoRA) for SD: an MLP from a 512-d ArcFace vector."""
    cross, tokens = int(unet.config.cross_attention_dim), 4
    weights = {
        "image_proj.proj.0.weight": torch.randn(FACE_DIM, FACE_DIM) * 0.05,
        "image_proj.proj.0.bias": torch.zeros(FACE_DIM),
        "image_proj.proj.2.weight": torch.randn(cross * tokens, FACE_DIM) * 0.05,
        "image_proj.proj.2.bias": torch.zeros(cross * tokens),
        "image_proj.norm.weight": torch.ones(cross),
        "image_proj.norm.bias": torch.zeros(cross),
    } | _ip_attention(unet)
    root.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in weights.items()}, str(root / FACEID_WEIGHT))


def _plus_image_proj(
    output_dims: int, image_hidden: int, h: int = _RESAMPLER_HIDDEN, q: int = _RESAMPLER_QUERIES
) -> dict[str, torch.Tensor]:
    """The IP-Adapter Plus Resampler (depth 4) in the original repository's key names."""
    w: dict[str, torch.Tensor] = {
        "image_proj.latents": torch.randn(1, q, h) / h**0.5,
        "image_proj.proj_in.weight": torch.randn(h, image_hidden) * 0.1,
        "image_proj.proj_in.bias": torch.zeros(h),
        "image_proj.proj_out.weight": torch.randn(output_dims, h) * 0.1,
        "image_proj.proj_out.bias": torch.zeros(output_dims),
        "image_proj.norm_out.weight": torch.ones(output_dims),
        "image_proj.norm_out.bias": torch.zeros(output_dims),
    }
    for i in range(4):
        p = f"image_proj.layers.{i}"
        for norm in ("0.norm1", "0.norm2", "1.0"):
            w[f"{p}.{norm}.weight"] = torch.ones(h)
            w[f"{p}.{norm}.bias"] = torch.zeros(h)
        w[f"{p}.0.to_q.weight"] = torch.randn(h, h) * 0.1
        w[f"{p}.0.to_kv.weight"] = torch.randn(2 * h, h) * 0.1
        w[f"{p}.0.to_out.weight"] = torch.randn(h, h) * 0.1
        w[f"{p}.1.1.weight"] = torch.randn(4 * h, h) * 0.1
        w[f"{p}.1.3.weight"] = torch.randn(h, 4 * h) * 0.1
    return w


def _ip_attention(unet: UNet2DConditionModel) -> dict[str, torch.Tensor]:
    """`to_k_ip`/`to_v_ip` per cross-attention layer, numbered as the original (1, 3, 5...)."""
    channels = list(unet.config.block_out_channels)
    cross = int(unet.config.cross_attention_dim)
    w: dict[str, torch.Tensor] = {}
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(channels))[int(name[len("up_blocks.")])]
        else:
            hidden = channels[int(name[len("down_blocks.")])]
        w[f"ip_adapter.{key_id}.to_k_ip.weight"] = torch.randn(hidden, cross) * 0.1
        w[f"ip_adapter.{key_id}.to_v_ip.weight"] = torch.randn(hidden, cross) * 0.1
        key_id += 2
    return w


def _write_lora(directory: Path, unet: UNet2DConditionModel, *, xl: bool = False) -> None:
    unet.add_adapter(
        LoraConfig(
            r=4,
            lora_alpha=4,
            init_lora_weights=False,  # random B too, so the LoRA visibly changes the output
            target_modules=["to_q", "to_k", "to_v", "to_out.0"],
        )
    )
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    pipeline_cls = StableDiffusionXLPipeline if xl else StableDiffusionPipeline
    pipeline_cls.save_lora_weights(directory, unet_lora_layers=layers, safe_serialization=True)
