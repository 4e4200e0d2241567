"""Provenance wired for use: the worker's encoder, and verification in words.

`provenance.labeller` knows how to label and check one image; this module binds it to
an instance (its signing identity and watermark key from the data dir or the operator's
files), records each watermark id in the mark registry, and turns a verdict into the
sentences a user reads ("made by this avatarbot instance on 2026-11-23 in style oil").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from PIL import Image

from bot.config import Settings
from bot.jobs import Job, ResultImage
from provenance.labeller import C2paStatus, LabelInfo, Labeller, Verdict, new_mark_id
from provenance.marks import MarkIdCollisionError, MarkRecord, MarkRegistry
from provenance.signing import SigningIdentity
from provenance.watermark import load_or_create_watermark_key

log = logging.getLogger(__name__)

ImageFormat = Literal["png", "jpeg"]
_MIME = {"png": "image/png", "jpeg": "image/jpeg"}
_REGISTRY_TIMEOUT_S = 10.0
_MAX_MARK_TRIES = 4


def load_labeller(settings: Settings) -> Labeller:
    """This instance's labeller: the operator's certificate when configured, else a local
    chain generated once into the data dir; the watermark key likewise."""
    if settings.c2pa_cert_chain and settings.c2pa_private_key:
        identity = SigningIdentity.from_files(settings.c2pa_cert_chain, settings.c2pa_private_key)
    else:
        identity = SigningIdentity.load_or_create(settings.data_dir)
    return Labeller(identity, load_or_create_watermark_key(settings.data_dir))


class ResultEncoder:
    """Labels each generated image (watermark + XMP/PNG text + signed C2PA) and records
    its mark id, so a copy stripped of its manifest can still be traced to a style and date.

    Called from worker threads. With a registry, `loop` must be the event loop that owns the
    registry's Redis client: records are submitted to it and awaited from the thread.
    """

    def __init__(
        self,
        labeller: Labeller,
        *,
        fmt: ImageFormat = "png",
        registry: MarkRegistry | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if registry is not None and loop is None:
            raise ValueError("a registry needs the event loop that owns its client")
        self.labeller = labeller
        self.fmt: ImageFormat = fmt
        self.registry = registry
        self.loop = loop
        self.clock = clock

    def __call__(self, image: Image.Image, job: Job, seed: int) -> ResultImage:
        """The worker's `Encoder` hook."""
        return self.encode(image, job.style_id, seed)

    def encode(self, image: Image.Image, style_id: str, seed: int) -> ResultImage:
        created = self.clock()
        info = LabelInfo(mark_id=self._issue_mark(style_id, created), style_id=style_id,
                         created_at=created)  # fmt: skip
        data = self.labeller.label(image, info, fmt=self.fmt)
        return ResultImage(
            data=data, mime=_MIME[self.fmt], width=image.width, height=image.height, seed=seed
        )

    def _issue_mark(self, style_id: str, created: datetime) -> str:
        if self.registry is None or self.loop is None:
            return new_mark_id()
        for _ in range(_MAX_MARK_TRIES):
            mark_id = new_mark_id()
            future = asyncio.run_coroutine_threadsafe(
                self.registry.record(mark_id, style_id, created), self.loop
            )
            try:
                future.result(_REGISTRY_TIMEOUT_S)
                return mark_id
            except MarkIdCollisionError:
                continue
        raise RuntimeError("could not issue a unique watermark id")  # 2^-48 per try


@dataclass(frozen=True)
class Verification:
    """A verdict plus what the mark registry knows, ready to be told to a person."""

    verdict: Verdict
    record: MarkRecord | None = None

    @property
    def ours(self) -> bool:
        return self.verdict.ours

    @property
    def intact(self) -> bool:
        return self.verdict.intact

    @property
    def made_at(self) -> datetime | None:
        """When this instance made the image (signed claim, else mark registry), if ours."""
        claim = self.verdict.claim if self.verdict.signed_by_us else None
        created = claim.created_at if claim else None
        if created is None and self.record is not None:
            created = self.record.created_at
        return created if self.ours else None

    @property
    def made_in_style(self) -> str | None:
        """The style id it was made in (signed claim, else mark registry), if ours."""
        claim = self.verdict.claim if self.verdict.signed_by_us else None
        style = claim.style_id if claim else None
        if style is None and self.record is not None:
            style = self.record.style_id
        return style if self.ours else None

    def origin(self) -> str | None:
        """'made by this avatarbot instance on <date> in style <style>' when known (the
        command line's English; chats tell `made_at` and `made_in_style` in their words)."""
        if not self.ours:
            return None
        created, style = self.made_at, self.made_in_style
        when = f" on {created.astimezone(UTC):%Y-%m-%d}" if created else ""
        how = f" in style {style}" if style else ""
        return f"made by this avatarbot instance{when}{how}"

    def lines(self) -> list[str]:
        v = self.verdict
        c2pa = {
            C2paStatus.VALID: "present and valid"
            + (" (signed by this instance)" if v.signed_by_us else f" (signed by {v.signer})"),
            C2paStatus.ALTERED: "present but the image was altered after signing",
            C2paStatus.INVALID: "present but invalid",
            C2paStatus.ABSENT: "absent (never signed, or stripped by a re-save)",
        }[v.c2pa_status]
        if not v.watermark_checked:
            mark = "not checked (the pixels did not decode)"
        elif v.watermark.found:
            mark = f"found (id {v.watermark_mark_id})"
        else:
            mark = "not found"
        lines = [
            f"C2PA manifest: {c2pa}",
            f"AI-made label: {'yes' if v.ai_generated or v.metadata_ai_label else 'no'}",
            f"Watermark: {mark}",
        ]
        origin = self.origin()
        if origin:
            lines.append(f"Origin: {origin}")
        lines.append("Verdict: " + self.summary())
        return lines

    def summary(self) -> str:
        if self.intact:
            return "ours and intact"
        if self.ours and self.verdict.c2pa_status is C2paStatus.ALTERED:
            return "ours, but altered since it was made"
        if self.ours:
            return "ours (re-encoded or resized since; the signed manifest is gone)"
        return "not made by this avatarbot instance"

    def describe(self) -> str:
        return "\n".join(self.lines())


class ImageVerifier:
    """Checks an image for the conversation's `/verify` and the CLI. Synchronous; with a
    registry, runs registry lookups on `loop` (call it from a worker thread)."""

    def __init__(
        self,
        labeller: Labeller,
        *,
        registry: MarkRegistry | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if registry is not None and loop is None:
            raise ValueError("a registry needs the event loop that owns its client")
        self.labeller = labeller
        self.registry = registry
        self.loop = loop

    def __call__(self, data: bytes) -> Verification:
        verdict = self.labeller.verify(data)
        record = None
        mark_id = verdict.mark_id
        if mark_id and self.registry is not None and self.loop is not None:
            future = asyncio.run_coroutine_threadsafe(self.registry.lookup(mark_id), self.loop)
            try:
                record = future.result(_REGISTRY_TIMEOUT_S)
            except Exception as exc:  # the registry is a nicety; the verdict stands without it
                log.warning("mark registry lookup failed: %s", exc.__class__.__name__)
        return Verification(verdict, record)
