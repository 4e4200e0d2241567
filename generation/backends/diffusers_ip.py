"""The face conditioning the IP-Adapter feeds into the diffusers pipeline, for likeness.

The face crop is encoded once per request (not per variant): CLIP image features for the
plus-face adapters (`hidden`: the encoder's penultimate hidden states; `pooled`: its image
embeddings), or an identity embedding from a `FaceEmbedder` for FaceID variants (`face`).
Each image of a batched call gets its own face's embedding: the stock pipeline would give
every image every face in the batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from generation.backends.diffusers_loading import IpAdapter
from generation.backends.face_embedders import FaceEmbedder


class FaceConditioning:
    """Turns a selfie into IP-Adapter embeddings, shaped [1, 1, ...] (batch, images)."""

    def __init__(self, ip: IpAdapter, face_embedder: FaceEmbedder | None, device: str) -> None:
        self.kind = ip.kind
        self._encoder = ip.image_encoder
        self._processor = ip.image_processor
        self._face_embedder = face_embedder
        self._device = device

    def embeds(self, selfie: Image.Image) -> torch.Tensor:
        """One request's conditioning."""
        face = selfie.convert("RGB")
        if self.kind == "face":
            assert self._face_embedder is not None  # noqa: S101  # load() guarantees it
            vector = np.asarray(self._face_embedder.embed(face), dtype=np.float32).reshape(-1)
            return torch.from_numpy(vector).reshape(1, 1, -1)
        assert self._encoder is not None  # noqa: S101  # load() guarantees it
        assert self._processor is not None  # noqa: S101
        pixels = self._processor(face, return_tensors="pt").pixel_values
        pixels = pixels.to(device=self._device, dtype=self._encoder.dtype)
        with torch.inference_mode():
            out: torch.Tensor
            if self.kind == "hidden":
                out = self._encoder(pixels, output_hidden_states=True).hidden_states[-2]
            else:
                out = self._encoder(pixels).image_embeds
        return out.unsqueeze(1).float().cpu()

    def uncond(self, cond: torch.Tensor) -> torch.Tensor:
        """The negative conditioning for classifier-free guidance."""
        if self.kind != "hidden":
            return torch.zeros_like(cond)
        assert self._encoder is not None  # noqa: S101
        size = int(self._encoder.config.image_size)
        zeros = torch.zeros((1, 3, size, size), device=self._device, dtype=self._encoder.dtype)
        with torch.inference_mode():
            hidden: torch.Tensor = self._encoder(zeros, output_hidden_states=True).hidden_states[-2]
        return hidden.unsqueeze(1).float().cpu().expand_as(cond).contiguous()


def per_image_ip_embeds(
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
