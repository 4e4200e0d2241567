"""What the conversation shows, rendered from state: the style picker, a job's queue
message (which the status tracker keeps current) and the replies the delivery pump sends
when a job ends. Pure rendering: no Redis, no platform."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bot import job_texts, texts
from bot.jobs import FailureReason, Job, JobResult, JobStatus
from bot.replies import (
    Action,
    Avatar,
    AvatarImage,
    Button,
    Failure,
    OriginalFile,
    Queued,
    Reply,
    StyleOption,
    StylePicker,
)
from bot.styles import StyleCatalog

if TYPE_CHECKING:
    from bot.likeness import Likeness
    from bot.queue import Delivery, Receipt


def style_picker(
    catalog: StyleCatalog, previews: Callable[[str], Path], text: str, variants: int
) -> StylePicker:
    """Every style with its preview image (when the file exists) and the variant count."""
    options = []
    for style in catalog:
        path = previews(style.id)
        options.append(
            StyleOption(
                style_id=style.id,
                label=style.label,
                description=style.blurb,
                preview=path if path.is_file() else None,
            )
        )
    return StylePicker(text=text, options=tuple(options), variants=variants)


def outcome_replies(delivery: Delivery, label: str, *, show_likeness: bool = False) -> list[Reply]:
    """What to tell a job's owner about its outcome (`label`: the style's, for the caption;
    `show_likeness`: each image's likeness score in the caption, an operator's choice)."""
    outcome = delivery.outcome
    style_id = delivery.job.style_id if delivery.job is not None else ""
    if outcome.status is JobStatus.DONE and delivery.result is not None:
        images = avatar_images(delivery.result)
        return [
            Avatar(
                job_id=outcome.job_id,
                style_id=style_id,
                style_label=label,
                images=images,
                caption=job_texts.avatar_caption(
                    label, len(images), likeness=_caption_likeness(images, show_likeness)
                ),
                buttons=_avatar_buttons(outcome.job_id),
            )
        ]
    if outcome.status is JobStatus.CANCELLED:
        return []  # the user cancelled and was answered then
    reason = outcome.failure
    if outcome.status is JobStatus.DONE:  # done but the result has expired
        return [Failure(texts.result_gone())]
    return [Failure(texts.failure(reason), buttons=_failure_buttons(outcome.job_id, reason))]


def status_reply(receipt: Receipt, label: str) -> Queued:
    """The queue message for a job's current status: cancelled, running (with progress),
    or queued (position, ETA and a cancel button)."""
    job = receipt.job
    if job.status is JobStatus.CANCELLED:
        return Queued(
            job_id=job.id,
            style_label=label,
            position=0,
            eta_s=0.0,
            status=job.status,
            progress=job.progress,
            text=texts.status_cancelled(),
        )
    if job.status is JobStatus.RUNNING:
        return Queued(
            job_id=job.id,
            style_label=label,
            position=0,
            eta_s=receipt.eta_s,
            status=job.status,
            progress=job.progress,
            text=job_texts.running(label, job.progress),
        )
    return Queued(
        job_id=job.id,
        style_label=label,
        position=receipt.position,
        eta_s=receipt.eta_s,
        status=job.status,
        progress=job.progress,
        text=job_texts.queued(label, receipt.position, receipt.eta_s),
        buttons=(Button(texts.button_cancel(), Action.CANCEL, job.id),),
    )


def avatar_images(result: JobResult) -> tuple[AvatarImage, ...]:
    return tuple(
        AvatarImage(
            data=im.data,
            mime=im.mime,
            width=im.width,
            height=im.height,
            seed=im.seed,
            likeness=im.likeness,
        )
        for im in result.images
    )


def _caption_likeness(images: Sequence[AvatarImage], show: bool) -> list[Likeness | None]:
    """The images' likeness for the caption, when the operator shows it there."""
    return [im.likeness for im in images] if show else []


def _avatar_buttons(job_id: str) -> tuple[Button, ...]:
    return (
        Button(texts.button_more(), Action.MORE, job_id),
        Button(texts.button_another_style(), Action.STYLE, job_id),
        Button(texts.button_original(), Action.ORIGINAL, job_id),
        Button(texts.button_forget_selfie(), Action.FORGET, job_id),
    )


def _failure_buttons(job_id: str, reason: FailureReason | None) -> tuple[Button, ...]:
    if reason is FailureReason.SELFIE_EXPIRED:
        return (Button(texts.button_new_selfie(), Action.AVATAR),)
    if reason is FailureReason.UNKNOWN_STYLE:
        return (Button(texts.button_another_style(), Action.STYLE, job_id),)
    if reason is FailureReason.BLOCKED_CONTENT:
        return (Button(texts.button_another_photo(), Action.AVATAR),)
    return (
        Button(texts.button_try_again(), Action.MORE, job_id),
        Button(texts.button_another_style(), Action.STYLE, job_id),
    )


def original_files(job: Job, result: JobResult) -> list[Reply]:
    """A result's images as files (they keep their C2PA manifest), the first captioned."""
    return [
        OriginalFile(
            job_id=job.id,
            index=i,
            filename=f"avatar-{job.style_id}-{job.id}-{i + 1}.{image.extension}",
            image=image,
            caption=texts.original_caption() if i == 0 else "",
        )
        for i, image in enumerate(avatar_images(result))
    ]
