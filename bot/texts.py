"""What the bot says in the conversation, in the language of the moment (`bot.i18n`).

Its siblings hold the rest of the bot's words: `bot.job_texts` (a job's queue message,
progress and result caption), `bot.platform_texts` (command menus, bot descriptions,
Discord options, the web chat page) and `bot.operator_texts` (the gate's refusals and
the admins' replies).

Plain text with a few emoji; no Markdown or HTML, so every adapter can send it as is.
Each function returns one message translated into the current locale: whole sentences
with `{placeholder}` fields, filled with `str.format` after translation (never an
f-string around words), so a translator sees the whole sentence and may move the
placeholders. Counts go through `ngettext`, which picks the plural form the language
needs (Russian has three, Arabic six). Sentences that hold a duration come in one
version per unit (seconds, minutes, hours), so each language can inflect the unit as the
sentence requires.

The English here is the source: `make i18n` extracts it (with every other message in
the code) into bot/locales/avatarbot.pot.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from bot.i18n import N_, _, language_name, ngettext
from bot.jobs import FailureReason

_MINUTE_S = 60


def duration_unit(seconds: float) -> tuple[str, int]:
    """("s" | "m" | "h", count): 30 seconds, 2 minutes, 1 hour."""
    s = max(0, round(seconds))
    if s < _MINUTE_S:
        return "s", s
    m = round(s / _MINUTE_S)
    if m < _MINUTE_S:
        return "m", m
    return "h", round(m / _MINUTE_S)


# --------------------------------------------------------------------------- welcome, help


def _retention_welcome(selfie_ttl_s: int) -> str:
    unit, n = duration_unit(selfie_ttl_s)
    if unit == "s":
        text = ngettext(
            "🔒 I keep your selfie for at most {n} second so you can try other styles, then "
            "delete it. /forgetme deletes everything I hold about you at once.",
            "🔒 I keep your selfie for at most {n} seconds so you can try other styles, then "
            "delete it. /forgetme deletes everything I hold about you at once.",
            n,
        )
    elif unit == "m":
        text = ngettext(
            "🔒 I keep your selfie for at most {n} minute so you can try other styles, then "
            "delete it. /forgetme deletes everything I hold about you at once.",
            "🔒 I keep your selfie for at most {n} minutes so you can try other styles, then "
            "delete it. /forgetme deletes everything I hold about you at once.",
            n,
        )
    else:
        text = ngettext(
            "🔒 I keep your selfie for at most {n} hour so you can try other styles, then "
            "delete it. /forgetme deletes everything I hold about you at once.",
            "🔒 I keep your selfie for at most {n} hours so you can try other styles, then "
            "delete it. /forgetme deletes everything I hold about you at once.",
            n,
        )
    return text.format(n=n)


def welcome(bot_name: str, selfie_ttl_s: int) -> str:
    intro = _(
        "👋 Hi! I turn a selfie into an avatar in the art style you pick: pencil sketch, "
        "watercolor, oil painting and more.\n"
        "Send /avatar to begin, then a photo of your face.\n"
        "🤖 Every avatar is made by AI and labelled as AI-made inside the file "
        "(a signed content credential, metadata and an invisible watermark)."
    )
    return intro + "\n" + _retention_welcome(selfie_ttl_s)


def _retention_help(selfie_ttl_s: int) -> str:
    unit, n = duration_unit(selfie_ttl_s)
    if unit == "s":
        text = ngettext(
            "Selfies are deleted after {n} second at the latest.",
            "Selfies are deleted after {n} seconds at the latest.",
            n,
        )
    elif unit == "m":
        text = ngettext(
            "Selfies are deleted after {n} minute at the latest.",
            "Selfies are deleted after {n} minutes at the latest.",
            n,
        )
    else:
        text = ngettext(
            "Selfies are deleted after {n} hour at the latest.",
            "Selfies are deleted after {n} hours at the latest.",
            n,
        )
    return text.format(n=n)


def help_text(selfie_ttl_s: int, commands: Iterable[tuple[str, str]]) -> str:
    """The /help answer: one line per (command name, summary), then the retention."""
    lines = [_("Here's what I can do:")]
    lines += [_("/{name} — {summary}").format(name=name, summary=s) for name, s in commands]
    lines.append(_retention_help(selfie_ttl_s))
    return "\n".join(lines)


# --------------------------------------------------------------------------- buttons


def button_make_avatar() -> str:
    return _("📸 Make an avatar")


def button_new_avatar() -> str:
    return _("📸 New avatar")


def button_new_selfie() -> str:
    return _("📸 Send a new selfie")


def button_another_photo() -> str:
    return _("📸 Another photo")


def button_cancel() -> str:
    return _("✖ Cancel")


def button_cancel_it() -> str:
    return _("✖ Cancel it")


def button_more() -> str:
    return _("🔁 More like this")


def button_try_again() -> str:
    return _("🔁 Try again")


def button_another_style() -> str:
    return _("🎨 Another style")


def button_original() -> str:
    return _("📥 Original file")


def button_forget_selfie() -> str:
    return _("🗑 Forget my selfie")


def variant_chosen(n: int) -> str:
    """The variant count currently picked, on its button."""
    # Translators: the chosen number of variants, on its button.
    return _("✓ {n}").format(n=n)


# --------------------------------------------------------------------------- the flow


def ask_selfie() -> str:
    return _(
        "📸 Send me a selfie: one face, looking at the camera, in good light. "
        "JPEG, PNG, WEBP or HEIC."
    )


def selfie_placeholder() -> str:
    """Shown in the message field while the bot waits for a selfie (Telegram groups)."""
    return _("Send your selfie")


def styles_intro() -> str:
    return _("These are the styles I can do. Send /avatar to try one.")


def style_line(label: str, style_id: str, description: str) -> str:
    """One style in a list of styles (Discord's /styles)."""
    return _("{label} (`{style_id}`): {description}").format(
        label=label, style_id=style_id, description=description
    )


def preview_caption(label: str, description: str) -> str:
    """The caption of a style's preview image."""
    return _("{label} — {description}").format(label=label, description=description)


def pick_style() -> str:
    return _("Nice photo! Now pick a style (and how many variants you'd like).")


def pick_another_style() -> str:
    return _("Pick another style for the same selfie.")


def variants_range(low: int, high: int) -> str:
    return _("Pick between {low} and {high} variants.").format(low=low, high=high)


def selfie_expired() -> str:
    return _("⌛ I no longer have your selfie (I delete it after a while). Please send it again.")


def selfie_replaced() -> str:
    return _("Note: you've sent a newer selfie since, so I'm using that one.")


def selfie_forgotten() -> str:
    return _("🗑 Done: I deleted your selfie. Send /avatar whenever you want a new one.")


def no_selfie_to_forget() -> str:
    return _("I don't have a selfie of yours right now; nothing to delete.")


def not_your_button() -> str:
    return _("Only the person who asked for this avatar can use these buttons.")


def button_expired() -> str:
    return _("That button has expired. Send /avatar to make a new avatar.")


def nothing_to_cancel() -> str:
    return _("You have nothing waiting in the queue.")


def cancelled() -> str:
    return _("✋ Cancelled. Send /avatar to start again.")


def status_cancelled() -> str:
    return _("✖ Cancelled.")


def cannot_cancel() -> str:
    return _("Too late to cancel: your avatar is already being made.")


def unknown_command() -> str:
    return _("I didn't get that. Send /avatar to make an avatar, or /help for more.")


def verify_ask() -> str:
    return _("Send me the image you want to check (as a file, so it isn't re-compressed).")


def verify_unavailable() -> str:
    return _("Image verification isn't available yet on this bot.")


def result_gone() -> str:
    return _(
        "That avatar has expired and I no longer have the file. Send /avatar to make a new one."
    )


def original_caption() -> str:
    return _("The original file, with its content credentials (C2PA) saying it was made by AI.")


def your_photo() -> str:
    """How the web chat shows a photo the user sent."""
    return _("📷 Photo")


#: What a file clearly not an image is, by its MIME type ("That looks like {kind}...").
NON_IMAGE_KINDS = {
    "application/pdf": N_("a PDF document"),
    "application/zip": N_("an archive"),
    "application/x-zip-compressed": N_("an archive"),
    "text/html": N_("a web page"),
    "text/plain": N_("a text file"),
}
NOT_A_PHOTO = N_("a file that isn't a photo")


def non_image_kind(mime: str) -> str:
    """The kind (an English message id, translated where it is shown) of a non-image."""
    return NON_IMAGE_KINDS.get(mime, NOT_A_PHOTO)


# --------------------------------------------------------------------------- a job's progress


def checking_photo() -> str:
    return _("📥 Got it, checking your photo…")


def on_it() -> str:
    return _("⏳ On it…")


def result_ready() -> str:
    return _("✅ Your avatar is ready: see below.")


def see_below() -> str:
    return _("See my message below.")


def finished_done() -> str:
    return _("✅ Done.")


def finished_not_done() -> str:
    return _("⚠️ Not done.")


def answered() -> str:
    """The answer to a request that needs no words (Discord must show something)."""
    return _("👍")


def download_failed() -> str:
    return _("I couldn't download that file from Discord. Please try again.")


def left_out(count: int, *, original_button: bool) -> str:
    """A note under a result some of whose images did not fit in one message."""
    if original_button:
        text = ngettext(
            "({n} more didn't fit in one Discord message: press 📥 Original file to get it.)",
            "({n} more didn't fit in one Discord message: press 📥 Original file to get them.)",
            count,
        )
    else:
        text = ngettext(
            "({n} more didn't fit in one Discord message.)",
            "({n} more didn't fit in one Discord message.)",
            count,
        )
    return text.format(n=count)


# --------------------------------------------------------------------------- failures


def failure(reason: FailureReason | None) -> str:
    match reason:
        case FailureReason.UNKNOWN_STYLE:
            return _("That style isn't available any more. Please pick another one.")
        case FailureReason.SELFIE_EXPIRED:
            return _("Your selfie expired before I could use it. Please send it again.")
        case FailureReason.BLOCKED_CONTENT:
            return _("I can't make an avatar from that photo. Please try a different one.")
        case FailureReason.DEAD_LETTER:
            return _(
                "Sorry, I couldn't finish your avatar after several tries. "
                "Please try again in a little while."
            )
        case FailureReason.CANCELLED:
            return _("Your avatar was cancelled.")
        case _:
            return _("Sorry, something went wrong while making your avatar. Please try again.")


def forgot_everything(jobs_cancelled: int, had_selfie: bool) -> str:
    parts = [_("🗑 Done. I deleted your selfie, your results and your history with me.")]
    if jobs_cancelled:
        parts.append(
            ngettext(
                "I also cancelled {n} waiting job.",
                "I also cancelled {n} waiting jobs.",
                jobs_cancelled,
            ).format(n=jobs_cancelled)
        )
    if not had_selfie:
        parts.append(_("(I wasn't holding a selfie of yours.)"))
    return " ".join(parts)


# --------------------------------------------------------------------------- /verify


def verdict(
    ours: bool, intact: bool, made_on: date | None = None, style_label: str | None = None
) -> str:
    """Whether this bot made an image, whether it changed since, and (if known) when and
    in which style it was made."""
    if not ours:
        return _("❌ I didn't make this image: it carries none of my labels.")
    if intact:
        text = _("✅ I made this image, and it hasn't been changed since.")
    else:
        text = _(
            "⚠️ I made this image, but it has been changed since (re-saved, edited or "
            "re-compressed), so its content credentials no longer match."
        )
    day = made_on.isoformat() if made_on is not None else None
    if day and style_label:
        origin = _("It was made here on {date}, in the style {style}.")
    elif day:
        origin = _("It was made here on {date}.")
    elif style_label:
        origin = _("It was made here, in the style {style}.")
    else:
        return text
    return text + "\n" + origin.format(date=day, style=style_label)


# --------------------------------------------------------------------------- /language


def language_choice(locale: str) -> str:
    """A language on its button: its own name, whatever language the bot speaks now."""
    return language_name(locale)


def language_automatic() -> str:
    return _("🌐 Automatic")


def language_ask(current: str) -> str:
    return _("🌐 Which language should I speak? Now: {language}.").format(
        language=language_name(current)
    )


def language_unknown() -> str:
    return _("I don't speak that language yet. Pick one of these:")


def language_set(locale: str) -> str:
    return _("✅ Language: {language}. Send /language to change it.").format(
        language=language_name(locale)
    )


def language_automatic_set(locale: str) -> str:
    return _("✅ I'll speak your app's language: {language}.").format(
        language=language_name(locale)
    )


# --------------------------------------------------------------------------- under load


def busy_try_later() -> str:
    """Refused because this deployment is full for the moment (memory, decodes in flight)."""
    return _("I'm very busy right now. Please try again in a minute.")


def too_many_uploads(retry_after_s: float) -> str:
    unit, n = duration_unit(max(1.0, retry_after_s))
    if unit == "s":
        text = ngettext(
            "That's a lot of photos in a short time. Please try again in {n} second.",
            "That's a lot of photos in a short time. Please try again in {n} seconds.",
            n,
        )
    elif unit == "m":
        text = ngettext(
            "That's a lot of photos in a short time. Please try again in {n} minute.",
            "That's a lot of photos in a short time. Please try again in {n} minutes.",
            n,
        )
    else:
        text = ngettext(
            "That's a lot of photos in a short time. Please try again in {n} hour.",
            "That's a lot of photos in a short time. Please try again in {n} hours.",
            n,
        )
    return text.format(n=n)


def too_many_new_visitors() -> str:
    return _(
        "Too many new visitors from your network today. Please try again tomorrow, "
        "or keep using the browser you started in."
    )
