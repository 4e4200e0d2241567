"""The job contract shared by bots and workers, and its one serialisation.

Everything that crosses Redis is encoded here: flat string fields for hashes and
stream entries (JSON for nested values, raw bytes for images). No pickle.
"""

from __future__ import annotations

import enum
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bot.likeness import Likeness

MIN_VARIANTS = 1
MAX_VARIANTS = 4
SEED_SPACE = 2**32


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DEAD = "dead"

    @property
    def final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.DEAD})


class FailureReason(enum.StrEnum):
    """Why a job did not produce an avatar. Adapters turn these into user words."""

    GENERATION_FAILED = "generation_failed"
    UNKNOWN_STYLE = "unknown_style"
    SELFIE_EXPIRED = "selfie_expired"
    BLOCKED_CONTENT = "blocked_content"
    DEAD_LETTER = "dead_letter"
    CANCELLED = "cancelled"


def new_job_id() -> str:
    """URL- and callback-safe id (Telegram callback data holds 64 bytes)."""
    return secrets.token_hex(8)


def new_seed() -> int:
    return secrets.randbelow(SEED_SPACE)


def variant_seeds(seed: int, variants: int) -> list[int]:
    """Distinct, reproducible seeds for each variant of a job."""
    return [(seed + i * 1_000_003) % SEED_SPACE for i in range(variants)]


@dataclass(frozen=True)
class Owner:
    """Who asked: the platform, the user on it, and the chat the request came from."""

    platform: str
    user_id: str
    chat_id: str
    space: str = ""
    """The community the chat belongs to, where the platform has one (a Discord guild id);
    '' otherwise. The access policy matches it (`discord-guild:ID`)."""

    @property
    def key(self) -> str:
        return f"{self.platform}:{self.user_id}"

    def to_json(self) -> str:
        data = {"platform": self.platform, "user_id": self.user_id, "chat_id": self.chat_id}
        if self.space:
            data["space"] = self.space
        return json.dumps(data)

    @classmethod
    def from_json(cls, raw: str) -> Owner:
        data = json.loads(raw)
        return cls(
            platform=str(data["platform"]),
            user_id=str(data["user_id"]),
            chat_id=str(data["chat_id"]),
            space=str(data.get("space", "")),
        )


@dataclass(frozen=True)
class Route:
    """Where the result goes: the delivering bot deployment and platform-specific data
    (the message to edit, an interaction token...). Never holds secrets of the bot itself."""

    bot: str
    data: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"bot": self.bot, "data": dict(self.data)}, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str) -> Route:
        data = json.loads(raw)
        return cls(
            bot=str(data["bot"]), data={str(k): str(v) for k, v in data.get("data", {}).items()}
        )


@dataclass(frozen=True)
class JobRequest:
    """What a bot submits. The queue assigns the id, the seed (if none) and timestamps."""

    owner: Owner
    route: Route
    style_id: str
    variants: int = 1
    seed: int | None = None
    locale: str = ""
    """The language the user was spoken to in when they asked (`bot.i18n`): everything
    said about this job later, after a restart too, is said in it. "" = English."""

    def __post_init__(self) -> None:
        if not MIN_VARIANTS <= self.variants <= MAX_VARIANTS:
            raise ValueError(
                f"variants must be {MIN_VARIANTS}..{MAX_VARIANTS}, got {self.variants}"
            )
        if self.seed is not None and not 0 <= self.seed < SEED_SPACE:
            raise ValueError(f"seed must be in [0, 2**32), got {self.seed}")


@dataclass(frozen=True)
class Job:
    id: str
    owner: Owner
    route: Route
    style_id: str
    variants: int
    seed: int
    status: JobStatus = JobStatus.QUEUED
    attempts: int = 0
    progress: float = 0.0
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    failure: FailureReason | None = None
    delivered: bool = False
    locale: str = ""
    """The language of everything said about this job ("" = English; jobs enqueued before
    languages existed have none)."""

    @classmethod
    def from_request(
        cls, request: JobRequest, *, job_id: str | None = None, created_at: float | None = None
    ) -> Job:
        """A new queued job for `request` (created now, or at `created_at`)."""
        return cls(
            id=job_id or new_job_id(),
            owner=request.owner,
            route=request.route,
            style_id=request.style_id,
            variants=request.variants,
            seed=request.seed if request.seed is not None else new_seed(),
            created_at=time.time() if created_at is None else created_at,
            locale=request.locale,
        )

    @property
    def seeds(self) -> list[int]:
        return variant_seeds(self.seed, self.variants)

    def with_status(self, status: JobStatus, **changes: Any) -> Job:
        return replace(self, status=status, **changes)

    def to_fields(self) -> dict[str, str]:
        fields = {
            "id": self.id,
            "owner": self.owner.to_json(),
            "route": self.route.to_json(),
            "style_id": self.style_id,
            "variants": str(self.variants),
            "seed": str(self.seed),
            "status": self.status.value,
            "attempts": str(self.attempts),
            "progress": repr(self.progress),
            "created_at": repr(self.created_at),
            "delivered": "1" if self.delivered else "0",
        }
        if self.started_at is not None:
            fields["started_at"] = repr(self.started_at)
        if self.finished_at is not None:
            fields["finished_at"] = repr(self.finished_at)
        if self.failure is not None:
            fields["failure"] = self.failure.value
        if self.locale:
            fields["locale"] = self.locale
        return fields

    @classmethod
    def from_fields(cls, raw: Mapping[bytes, bytes] | Mapping[str, str]) -> Job:
        f = _decode_map(raw)
        try:
            return cls(
                id=f["id"],
                owner=Owner.from_json(f["owner"]),
                route=Route.from_json(f["route"]),
                style_id=f["style_id"],
                variants=int(f["variants"]),
                seed=int(f["seed"]),
                status=JobStatus(f["status"]),
                attempts=int(f.get("attempts", "0")),
                progress=float(f.get("progress", "0")),
                created_at=float(f["created_at"]),
                started_at=float(f["started_at"]) if "started_at" in f else None,
                finished_at=float(f["finished_at"]) if "finished_at" in f else None,
                failure=FailureReason(f["failure"]) if f.get("failure") else None,
                delivered=f.get("delivered") == "1",
                locale=f.get("locale", ""),
            )
        except (KeyError, ValueError) as exc:
            raise ValueError(f"malformed job record: {exc!r}") from exc


@dataclass(frozen=True)
class ResultImage:
    data: bytes
    mime: str
    width: int
    height: int
    seed: int
    likeness: Likeness | None = None
    """How much it looks like the selfie; None: not measured (Likeness(None): no face)."""
    tries: int = 1
    """Generations it took (more than 1 when a low likeness was re-rolled)."""

    def header(self) -> dict[str, Any]:
        """This image's entry in a result header (likeness and tries only when known)."""
        info: dict[str, Any] = {
            "mime": self.mime, "width": self.width, "height": self.height, "seed": self.seed
        }  # fmt: skip
        if self.likeness is not None:
            info["likeness"] = self.likeness.to_json()
        if self.tries != 1:
            info["tries"] = self.tries
        return info


@dataclass(frozen=True)
class JobResult:
    """A finished job's images and what is known about how they were made."""

    job_id: str
    style_id: str
    images: tuple[ResultImage, ...]
    backend: str
    elapsed_s: float
    meta: Mapping[str, str] = field(default_factory=dict)

    def to_fields(self) -> dict[str, bytes | str]:
        header = {
            "job_id": self.job_id,
            "style_id": self.style_id,
            "backend": self.backend,
            "elapsed_s": round(self.elapsed_s, 4),
            "meta": dict(self.meta),
            "images": [im.header() for im in self.images],
        }
        fields: dict[str, bytes | str] = {"header": json.dumps(header)}
        for i, im in enumerate(self.images):
            fields[f"image:{i}"] = im.data
        return fields

    @classmethod
    def from_fields(cls, raw: Mapping[bytes, bytes] | Mapping[str, Any]) -> JobResult:
        by_name = {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in raw.items()}
        header_raw = by_name["header"]
        header = json.loads(header_raw.decode() if isinstance(header_raw, bytes) else header_raw)
        images = []
        for i, info in enumerate(header["images"]):
            data = by_name[f"image:{i}"]
            images.append(
                ResultImage(
                    data=data if isinstance(data, bytes) else bytes(data, "latin-1"),
                    mime=str(info["mime"]),
                    width=int(info["width"]),
                    height=int(info["height"]),
                    seed=int(info["seed"]),
                    likeness=Likeness.from_json(info["likeness"]) if "likeness" in info else None,
                    tries=int(info.get("tries", 1)),
                )
            )
        return cls(
            job_id=str(header["job_id"]),
            style_id=str(header["style_id"]),
            images=tuple(images),
            backend=str(header["backend"]),
            elapsed_s=float(header["elapsed_s"]),
            meta={str(k): str(v) for k, v in header.get("meta", {}).items()},
        )


@dataclass(frozen=True)
class Outcome:
    """An entry on a bot's results stream: a job reached a final state the user must hear of."""

    job_id: str
    status: JobStatus
    failure: FailureReason | None = None

    def to_fields(self) -> dict[str, str]:
        fields = {"job_id": self.job_id, "status": self.status.value}
        if self.failure is not None:
            fields["failure"] = self.failure.value
        return fields

    @classmethod
    def from_fields(cls, raw: Mapping[bytes, bytes] | Mapping[str, str]) -> Outcome:
        f = _decode_map(raw)
        return cls(
            job_id=f["job_id"],
            status=JobStatus(f["status"]),
            failure=FailureReason(f["failure"]) if f.get("failure") else None,
        )


def _decode_map(raw: Mapping[bytes, bytes] | Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in raw.items():
        key = k.decode() if isinstance(k, bytes) else str(k)
        out[key] = v.decode() if isinstance(v, bytes) else str(v)
    return out
