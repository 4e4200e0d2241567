"""Everything the bot says, in one place, in the language of the moment (`bot.i18n`).

Plain text with a few emoji; no Markdown or HTML, so every adapter can send it as is.
Each function returns one message translated into the current locale: whole sentences
with `{placeholder}` fields, filled with `str.format` after translation (never an
f-string around words), so a translator sees the whole sentence and may move the
placeholders. Counts go through `ngettext`, which picks the plural form the language
needs (Russian has three, Arabic six). Sentences that hold a duration come in one
version per unit (seconds, minutes, hours), so each language can inflect the unit as the
sentence requires.

The English here is the source: `make i18n` extracts it into bot/locales/avatarbot.pot.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date

from bot.i18n import N_, _, language_name, ngettext, pgettext
from bot.jobs import FailureReason

_MINUTE_S = 60
_HOUR_S = 3600


def _unit(seconds: float) -> tuple[str, int]:
    """("s" | "m" | "h", count): 30 seconds, 2 minutes, 1 hour."""
    s = max(0, round(seconds))
    if s < _MINUTE_S:
        return "s", s
    m = round(s / _MINUTE_S)
    if m < _MINUTE_S:
        return "m", m
    return "h", round(m / _MINUTE_S)


# --------------------------------------------------------------------------- commands


def command_avatar() -> str:
    return _("Make an avatar from a selfie")


def command_styles() -> str:
    return _("See the styles")


def command_cancel() -> str:
    return _("Cancel the avatar you're waiting for")


def command_verify() -> str:
    return _("Check whether I made an image")


def command_forgetme() -> str:
    return _("Delete your selfie and everything else I keep about you")


def command_language() -> str:
    return _("Choose the language I speak")


def command_help() -> str:
    return _("What I can do")


def command_start() -> str:
    return _("Start over")


def bot_description() -> str:
    """Telegram shows it in an empty chat with the bot (at most 512 characters)."""
    return _(
        "👋 I turn a selfie into an avatar in the art style you pick: pencil sketch, "
        "watercolor, oil painting and more. Every avatar is made by AI and labelled as "
        "AI-made. Press Start, then send /avatar."
    )


def bot_short_description() -> str:
    """Telegram's profile and share text (at most 120 characters)."""
    return _("Turns your selfie into an AI avatar in the style you pick, labelled as AI-made.")


def _retention_welcome(selfie_ttl_s: int) -> str:
    unit, n = _unit(selfie_ttl_s)
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
    unit, n = _unit(selfie_ttl_s)
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


def queued(style_label: str, position: int, eta_s: float) -> str:
    """The queue message: the place in the queue and about how long until it is ready."""
    unit, n = _unit(eta_s)
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


def avatar_caption(style_label: str, count: int, likeness: Sequence[str] = ()) -> str:
    """The caption under a result; `likeness`: each image's score ("72%") or "no face",
    shown when the operator turned it on."""
    caption = ngettext(
        "✨ Here's your avatar in {style}. Made by AI and labelled as such.",
        "✨ Here are your {n} avatars in {style}. Made by AI and labelled as such.",
        count,
    ).format(n=count, style=style_label)
    if likeness:
        caption += "\n" + _("🔍 Likeness to your selfie: {scores}").format(
            scores=", ".join(likeness)
        )
    return caption


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


# --------------------------------------------------------------------------- Discord options


def option_selfie() -> str:
    return _("A photo of your face")


def option_style() -> str:
    return _("The art style")


def option_variants() -> str:
    return _("How many (1-4)")


def option_image() -> str:
    return _("The image to check (send it as a file)")


def option_name(name: str) -> str | None:
    """A Discord command option's name in the current language (lowercase, no spaces),
    or None for an option this table does not know."""
    names = {
        # Translators: Discord shows these option names in its commands: lowercase
        # letters, digits, - or _ only (no spaces), at most 32 characters.
        "selfie": pgettext("a Discord option name: lowercase letters, no spaces", "selfie"),
        "style": pgettext("a Discord option name: lowercase letters, no spaces", "style"),
        "variants": pgettext("a Discord option name: lowercase letters, no spaces", "variants"),
        "image": pgettext("a Discord option name: lowercase letters, no spaces", "image"),
    }
    return names.get(name)


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


# --------------------------------------------------------------------------- the web chat page


def web_page() -> dict[str, str]:
    """The web chat page's own words (index.html and app.js), by key."""
    return {
        "connecting": _("connecting…"),
        "online": _("online"),
        "reconnecting": _("reconnecting…"),
        "ai_note": _("Avatars are made by AI and labelled as such."),
        "send_photo": _("Send a photo"),
        "placeholder": _("Type /avatar, or drop a selfie here"),
        "message": _("Message"),
        "send": _("Send"),
        "drop": _("Drop your selfie to send it"),
        "variants": _("Variants:"),
        "failed": _("Sorry, that didn't work. Please try again."),
        "upload_failed": _("The upload failed. Please try again."),
        "sending": _("sending…"),
        "your_photo": _("Your photo"),
        "avatar_alt": _("AI-made avatar"),
    }


# --- operators: the access policy and admin commands -------------------------------------
# Plain templates with {placeholders}, filled with str.format where used, so a translation
# can move them around. Admin replies are shared by the chat commands and `avatarbot admin`.


def denied() -> str:
    return _("🚫 Sorry, this bot isn't available to you.")


def not_allowed() -> str:
    return _("🔒 This bot is private: only people and groups its operator invited can use it.")


def paused_plain() -> str:
    return _("⏸ I'm taking a short break. Back soon!")


def paused_with_message() -> str:
    return _("⏸ I'm taking a short break. Back soon! {message}")


def chat_off() -> str:
    return _("The admins of this group have turned me off here.")


def no_quota() -> str:
    return _("You can't make avatars on this bot today.")


def variants_capped() -> str:
    return _("This group allows up to {limit} variant(s) per avatar, so I'm making {limit}.")


def paused(message: str) -> str:
    """What a user asking for an avatar is told while the bot is paused."""
    return paused_with_message().format(message=message) if message else paused_plain()


def bad_scope() -> str:
    return _("{text} is not a scope (for example {examples}).")


def bad_user() -> str:
    return _("{text} is not a user: write platform:user_id, for example telegram:42.")


def admin_usage() -> str:
    return _("Usage: {usage}")


def banned() -> str:
    return _("Banned {user}: they can't use the bot any more. Jobs cancelled: {jobs}.")


def ban_already() -> str:
    return _("{user} was already banned. Jobs cancelled: {jobs}.")


def ban_admin() -> str:
    return _("{user} is an admin (AVATARBOT_ADMINS): remove them there first.")


def unbanned() -> str:
    return _("Unbanned {user}.")


def unban_not_banned() -> str:
    return _("{user} wasn't banned.")


def allow_added() -> str:
    return _("Added {scope} to the allow list.")


def allow_had() -> str:
    return _("{scope} is already on the allow list.")


def allow_removed() -> str:
    return _("Removed {scope} from the allow list.")


def allow_lacked() -> str:
    return _("{scope} isn't on the allow list.")


def allow_list() -> str:
    return _("Allow list ({count}): {scopes}")


def allow_empty() -> str:
    return _("The allow list is empty.")


def allow_open_hint() -> str:
    return _("The bot is open to everyone: the allow list applies once /mode restricted.")


def deny_added() -> str:
    return _("Added {scope} to the deny list.")


def deny_had() -> str:
    return _("{scope} is already on the deny list.")


def deny_removed() -> str:
    return _("Removed {scope} from the deny list.")


def deny_lacked() -> str:
    return _("{scope} isn't on the deny list.")


def deny_list() -> str:
    return _("Deny list ({count}): {scopes}")


def deny_empty() -> str:
    return _("The deny list is empty.")


def mode_open() -> str:
    return _("Access: open to everyone not denied.")


def mode_restricted() -> str:
    return _("Access: restricted to admins and the allow list.")


def quota_own() -> str:
    return _("{user} may make {limit} avatar(s) a day (their own quota).")


def quota_default_for() -> str:
    return _("{user} may make {limit} avatar(s) a day (the default).")


def quota_set() -> str:
    return _("{user} may now make {limit} avatar(s) a day.")


def quota_reset() -> str:
    return _("{user} is back on the default quota: {limit} avatar(s) a day.")


def quota_default() -> str:
    return _("Everyone may make {limit} avatar(s) a day unless given a quota of their own.")


def quota_default_set() -> str:
    return _("The default daily quota is now {limit} avatar(s).")


def admin_paused() -> str:
    return _("Paused. New requests are told: {line} Jobs already queued still finish.")


def admin_resumed() -> str:
    return _("Resumed: new requests are welcome again.")


def admin_not_paused() -> str:
    return _("The bot wasn't paused.")


def stats() -> str:
    return _(
        "Queue: {queued} waiting, {running} running, {workers} worker(s) live.\n"
        "Today (UTC): {avatars} avatar(s), {failures} failure(s).\n"
        "Time to avatar, median: {p50}.\n"
        "Likeness, median: {likeness}.\n"
        "{access}{paused}"
    )


def stats_none() -> str:
    return _("n/a")


def stats_paused() -> str:
    return _(" Paused since {since}Z.")


def log_empty() -> str:
    return _("The audit log is empty.")


def group_on() -> str:
    return _("I'm on in this group; up to {limit} variant(s) per avatar.")


def group_off() -> str:
    return _("I'm off in this group. A group admin can send /group on.")


def group_turned_on() -> str:
    return _("Done: I'm on in this group again.")


def group_turned_off() -> str:
    return _("Done: I'm off in this group. A group admin can send /group on.")


def group_variants() -> str:
    return _("Done: up to {limit} variant(s) per avatar in this group.")


def group_only() -> str:
    return _("/group works in group chats.")


# --------------------------------------------------------------------------- under load


def busy_try_later() -> str:
    """Refused because this deployment is full for the moment (memory, decodes in flight)."""
    return _("I'm very busy right now. Please try again in a minute.")


def too_many_uploads(retry_after_s: float) -> str:
    unit, n = _unit(max(1.0, retry_after_s))
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


def admin_descriptions() -> dict[str, str]:
    """Discord's /admin command and its subcommands, described (at most 100 characters)."""
    return {
        "admin": _("Run this bot (its admins only)"),
        "stats": _("The queue now and today's work"),
        "ban": _("Ban a user: they can't use the bot, their waiting jobs are cancelled"),
        "unban": _("Lift a ban"),
        "quota": _("Show or set a user's daily quota, or the default"),
        "pause": _("Pause new requests (jobs already queued still finish)"),
        "resume": _("Take new requests again"),
        "allow": _("Show the allow list, or add or remove a scope"),
        "deny": _("Show the deny list, or add or remove a scope"),
        "mode": _("Show or set who may use the bot"),
        "log": _("The newest entries of the audit trail"),
    }


def admin_options() -> dict[str, str]:
    """The options of Discord's /admin subcommands, described (at most 100 characters)."""
    return {
        "user": _("platform:user_id (e.g. discord:123), a mention or a Discord user id"),
        "quota_user": _("platform:user_id, a mention, or default (everyone's quota)"),
        "limit": _("Avatars a day, or reset (back to the default); empty: show"),
        "message": _("Told to everyone who asks meanwhile"),
        "scope": _("A user, a chat (discord-chat:ID), a server (discord-guild:ID) or discord:*"),
        "remove": _("Remove it from the list instead of adding it"),
        "mode": _("open: everyone not denied; restricted: admins and the allow list"),
        "count": _("How many entries (1-200)"),
    }
