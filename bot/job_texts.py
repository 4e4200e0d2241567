"""A job as its owner reads about it, in the language of the moment (`bot.i18n`): the
queue message (the place in the queue and about how long to wait), the line while it is
made, and the caption under its result, with each image's likeness to the selfie when
the operator shows it.

The conventions of `bot.texts` hold; a duration comes in one sentence per unit.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.i18n import _, ngettext
from bot.likeness import Likeness
from bot.texts import duration_unit


def queued(style_label: str, position: int, eta_s: float) -> str:
    """The queue message: the place in the queue and about how long until it is ready."""
    unit, n = duration_unit(eta_s)
    if position <= 1:
        if unit == "s":
            text = ngettext(
                "⏳ You're next for a {style} avatar — ready in about {n} second.",
                "⏳ You're next for a {style} avatar — ready in about {n} seconds.",
                n,
            )
        elif unit == "m":
            text = ngettext(
                "⏳ You're next for a {style} avatar — ready in about {n} minute.",
                "⏳ You're next for a {style} avatar — ready in about {n} minutes.",
                n,
            )
        else:
            text = ngettext(
                "⏳ You're next for a {style} avatar — ready in about {n} hour.",
                "⏳ You're next for a {style} avatar — ready in about {n} hours.",
                n,
            )
        return text.format(style=style_label, n=n)
    if unit == "s":
        text = ngettext(
            "⏳ You're number {position} in the queue for a {style} avatar — "
            "ready in about {n} second.",
            "⏳ You're number {position} in the queue for a {style} avatar — "
            "ready in about {n} seconds.",
            n,
        )
    elif unit == "m":
        text = ngettext(
            "⏳ You're number {position} in the queue for a {style} avatar — "
            "ready in about {n} minute.",
            "⏳ You're number {position} in the queue for a {style} avatar — "
            "ready in about {n} minutes.",
            n,
        )
    else:
        text = ngettext(
            "⏳ You're number {position} in the queue for a {style} avatar — "
            "ready in about {n} hour.",
            "⏳ You're number {position} in the queue for a {style} avatar — "
            "ready in about {n} hours.",
            n,
        )
    return text.format(position=position, style=style_label, n=n)


def running(style_label: str, progress: float) -> str:
    if 0 < progress < 1:
        return _("🎨 Making your {style} avatar now ({percent}%)…").format(
            style=style_label, percent=round(progress * 100)
        )
    return _("🎨 Making your {style} avatar now…").format(style=style_label)


def avatar_caption(style_label: str, count: int, likeness: Sequence[Likeness | None] = ()) -> str:
    """The caption under a result; `likeness`: each image's, shown when the operator
    turned it on (an image not measured is left out)."""
    caption = ngettext(
        "✨ Here's your avatar in {style}. Made by AI and labelled as such.",
        "✨ Here are your {n} avatars in {style}. Made by AI and labelled as such.",
        count,
    ).format(n=count, style=style_label)
    scores = [likeness_score(each) for each in likeness if each is not None]
    if scores:
        caption += "\n" + _("🔍 Likeness to your selfie: {scores}").format(scores=", ".join(scores))
    return caption


def likeness_score(likeness: Likeness) -> str:
    """One image's likeness for people: "72%", or that no face was found in it."""
    if likeness.score is None:
        # Translators: instead of a likeness score ("72%"): no face was found in the avatar.
        return _("no face")
    return percent(likeness.score)


def percent(fraction: float) -> str:
    """A 0..1 score as a percentage, written as the language writes one ("72 %")."""
    # Translators: a likeness score as a percentage ("72%"): write the space and the
    # sign as your language does ("72 %").
    return _("{percent}%").format(percent=round(fraction * 100))
