"""The style catalog: what a user can pick, and how each backend renders it.

The catalog is data (`bot/data/styles.toml`); operators edit a copy and point
`AVATARBOT_STYLES_FILE` at it. Each style has a CPU recipe (an effect of the CPU
style engine and its parameters) and a diffusion recipe (prompt and sampler knobs).

What users read of a style (its title and description) is written in English and
translated in the catalog itself, one table per language (`[style.translations.es]`,
`[style.translations.pt_BR]`), so an operator translates their own styles where they
write them. `Style.label` and `Style.blurb` speak the current language (`bot.i18n`),
falling back to the language without its region, then to English.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from bot.errors import AvatarbotError
from bot.i18n import N_, current_locale
from bot.i18n.locales import normalize
from bot.likeness import SAME_PERSON_SCORE

_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")


class StyleCatalogError(AvatarbotError):
    """The catalog file is unreadable or malformed; the message says where."""


class UnknownStyleError(AvatarbotError):
    user_text = N_("I don't know that style. Send /styles to see the ones I can do.")


@dataclass(frozen=True)
class CpuRecipe:
    effect: str
    params: Mapping[str, float | int | str | bool] = field(default_factory=dict)


@dataclass(frozen=True)
class DiffusionRecipe:
    prompt: str
    negative_prompt: str = ""
    strength: float = 0.6
    steps: int = 4
    guidance: float = 0.0
    lora: str | None = None
    lora_scale: float = 1.0


@dataclass(frozen=True)
class StyleText:
    """A style's words in one language."""

    title: str
    description: str


@dataclass(frozen=True)
class Style:
    id: str
    title: str
    """In English, the catalog's source language."""
    emoji: str
    description: str
    """In English, the catalog's source language."""
    cpu: CpuRecipe
    diffusion: DiffusionRecipe
    min_likeness: float = SAME_PERSON_SCORE
    """Likeness score (0..1) below which a diffusion avatar is generated again with a new
    seed (the catalog's `min_likeness`, or the style's own). CPU styles only report it."""
    translations: Mapping[str, StyleText] = field(default_factory=dict)
    """Title and description by locale (`es`, `pt_BR`)."""

    def text_in(self, locale: str) -> StyleText:
        """The style's words in `locale`: its own table, else its language's, else English."""
        found = self.translations.get(locale) or self.translations.get(
            locale.split("_", maxsplit=1)[0]
        )
        return found if found is not None else StyleText(self.title, self.description)

    def label_in(self, locale: str) -> str:
        return f"{self.emoji} {self.text_in(locale).title}"

    @property
    def label(self) -> str:
        """Emoji and title in the current language, e.g. "✏️ Pencil sketch"."""
        return self.label_in(current_locale())

    @property
    def blurb(self) -> str:
        """The description in the current language."""
        return self.text_in(current_locale()).description

    def names(self) -> set[str]:
        """What a user may type to pick it: its id, its title and label in any language."""
        words = [StyleText(self.title, self.description), *self.translations.values()]
        titles = {w.title.lower() for w in words}
        return {self.id, *titles, *(f"{self.emoji} {t}" for t in titles)}


class StyleCatalog:
    """An ordered, read-only set of styles."""

    def __init__(self, styles: list[Style]) -> None:
        if not styles:
            raise StyleCatalogError("the style catalog is empty")
        self._styles: dict[str, Style] = {}
        for style in styles:
            if style.id in self._styles:
                raise StyleCatalogError(f"duplicate style id {style.id!r}")
            self._styles[style.id] = style

    def __iter__(self) -> Iterator[Style]:
        return iter(self._styles.values())

    def __len__(self) -> int:
        return len(self._styles)

    def __contains__(self, style_id: object) -> bool:
        return style_id in self._styles

    def get(self, style_id: str) -> Style:
        try:
            return self._styles[style_id]
        except KeyError:
            raise UnknownStyleError(f"unknown style {style_id!r}") from None

    @property
    def ids(self) -> list[str]:
        return list(self._styles)

    @classmethod
    def load(cls, path: Path | None = None) -> StyleCatalog:
        """Load `path`, or the catalog shipped with avatarbot when `path` is None."""
        if path is None:
            text = resources.files("bot").joinpath("data/styles.toml").read_text("utf-8")
            where = "bot/data/styles.toml"
        else:
            try:
                text = path.read_text("utf-8")
            except OSError as exc:
                raise StyleCatalogError(f"cannot read style catalog {path}: {exc}") from None
            where = str(path)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise StyleCatalogError(f"{where}: {exc}") from None
        entries = data.get("style")
        if not isinstance(entries, list):
            raise StyleCatalogError(f"{where}: expected [[style]] tables")
        default = _min_likeness(data.get("min_likeness", SAME_PERSON_SCORE), where)
        return cls([_parse_style(entry, where, i, default) for i, entry in enumerate(entries)])


def preview_path(style_id: str) -> Path:
    """The committed preview image of a style (made by `avatarbot previews`)."""
    return Path(str(resources.files("bot").joinpath(f"data/previews/{style_id}.jpg")))


def _min_likeness(value: Any, at: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise StyleCatalogError(f"{at}: min_likeness must be a number in [0, 1], got {value!r}")
    return float(value)


def _parse_style(entry: Any, where: str, index: int, min_likeness: float) -> Style:
    at = f"{where}: style #{index + 1}"
    if not isinstance(entry, dict):
        raise StyleCatalogError(f"{at}: not a table")
    try:
        style_id = str(entry["id"])
        at = f"{where}: style {style_id!r}"
        if not style_id or not set(style_id) <= _ID_CHARS or len(style_id) > 32:
            raise StyleCatalogError(f"{at}: id must be 1-32 chars of a-z, 0-9, _ or -")
        cpu = entry["cpu"]
        diffusion = entry["diffusion"]
        recipe = DiffusionRecipe(
            prompt=str(diffusion["prompt"]),
            negative_prompt=str(diffusion.get("negative_prompt", "")),
            strength=float(diffusion.get("strength", 0.6)),
            steps=int(diffusion.get("steps", 4)),
            guidance=float(diffusion.get("guidance", 0.0)),
            lora=str(diffusion["lora"]) if diffusion.get("lora") else None,
            lora_scale=float(diffusion.get("lora_scale", 1.0)),
        )
        if not 0.0 < recipe.strength <= 1.0:
            raise StyleCatalogError(f"{at}: diffusion.strength must be in (0, 1]")
        if not 1 <= recipe.steps <= 50:
            raise StyleCatalogError(f"{at}: diffusion.steps must be 1..50")
        title = str(entry["title"])
        description = str(entry.get("description", ""))
        return Style(
            id=style_id,
            title=title,
            emoji=str(entry.get("emoji", "🎨")),
            description=description,
            cpu=CpuRecipe(effect=str(cpu["effect"]), params=dict(cpu.get("params", {}))),
            diffusion=recipe,
            min_likeness=_min_likeness(entry.get("min_likeness", min_likeness), at),
            translations=_translations(entry.get("translations", {}), description, at),
        )
    except KeyError as exc:
        raise StyleCatalogError(f"{at}: missing {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise StyleCatalogError(f"{at}: {exc}") from None


def _translations(tables: Any, description: str, at: str) -> dict[str, StyleText]:
    """`[style.translations.<locale>]` tables: a title, and a description (the English one
    when left out)."""
    if not isinstance(tables, dict):
        raise StyleCatalogError(f"{at}: translations must be tables, one per language")
    found: dict[str, StyleText] = {}
    for tag, table in tables.items():
        locale = normalize(str(tag))
        if locale is None:
            raise StyleCatalogError(f"{at}: {tag!r} is not a language tag (e.g. es, pt_BR)")
        if not isinstance(table, dict) or not str(table.get("title", "")).strip():
            raise StyleCatalogError(f"{at}: translations.{tag} needs a title")
        found[locale] = StyleText(
            title=str(table["title"]), description=str(table.get("description", description))
        )
    return found
