"""Everything the bot says, in one place (so wording is reviewed and translated together).

Plain text with a few emoji; no Markdown or HTML, so every adapter can send it as is.
Messages with values in them are whole sentences with `{placeholder}` fields, filled
with `str.format` by the functions below (never an f-string around words): a translator
sees the whole sentence and may move the placeholders. Counts pick between a singular
and a plural message (`_plural`), the shape gettext's `ngettext` takes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bot.jobs import FailureReason


def _plural(n: int, one: str, many: str, **values: object) -> str:
    return (one if n == 1 else many).format(n=n, **values)


def _duration(seconds: float) -> str:
    """A human duration: "30 seconds", "2 minutes", "1 hour"."""
    s = max(0, round(seconds))
    if s < 60:
        return _plural(s, "{n} second", "{n} seconds")
    m = round(s / 60)
    if m < 60:
        return _plural(m, "{n} minute", "{n} minutes")
    return _plural(round(m / 60), "{n} hour", "{n} hours")


# --------------------------------------------------------------------------- commands

COMMAND_AVATAR = "Make an avatar from a selfie"
COMMAND_STYLES = "See the styles"
COMMAND_CANCEL = "Cancel the avatar you're waiting for"
COMMAND_VERIFY = "Check whether I made an image"
COMMAND_FORGETME = "Delete your selfie and everything else I keep about you"
COMMAND_HELP = "What I can do"
COMMAND_START = "Start over"

WELCOME = (
    "👋 Hi! I turn a selfie into an avatar in the art style you pick: pencil sketch, "
    "watercolor, oil painting and more.\n"
    "Send /avatar to begin, then a photo of your face.\n"
    "🤖 Every avatar is made by AI and labelled as AI-made inside the file "
    "(a signed content credential, metadata and an invisible watermark).\n"
    "🔒 I keep your selfie for at most {duration} so you can try other "
    "styles, then delete it. /forgetme deletes everything I hold about you at once."
)
HELP_INTRO = "Here's what I can do:"
HELP_LINE = "/{name} — {summary}"
HELP_RETENTION = "Selfies are deleted after {duration} at the latest."


def welcome(bot_name: str, selfie_ttl_s: int) -> str:
    return WELCOME.format(duration=_duration(selfie_ttl_s))


def help_text(selfie_ttl_s: int, commands: Iterable[tuple[str, str]]) -> str:
    """The /help answer: one line per (command name, summary), then the retention."""
    lines = [HELP_INTRO]
    lines += [HELP_LINE.format(name=name, summary=summary) for name, summary in commands]
    lines.append(HELP_RETENTION.format(duration=_duration(selfie_ttl_s)))
    return "\n".join(lines)


# --------------------------------------------------------------------------- buttons

BUTTON_MAKE_AVATAR = "📸 Make an avatar"
BUTTON_NEW_AVATAR = "📸 New avatar"
BUTTON_NEW_SELFIE = "📸 Send a new selfie"
BUTTON_ANOTHER_PHOTO = "📸 Another photo"
BUTTON_CANCEL = "✖ Cancel"
BUTTON_CANCEL_IT = "✖ Cancel it"
BUTTON_MORE = "🔁 More like this"
BUTTON_TRY_AGAIN = "🔁 Try again"
BUTTON_ANOTHER_STYLE = "🎨 Another style"
BUTTON_ORIGINAL = "📥 Original file"
BUTTON_FORGET_SELFIE = "🗑 Forget my selfie"
VARIANT_CHOSEN = "✓ {n}"
"""The variant count currently picked, on its button."""

# --------------------------------------------------------------------------- the flow

ASK_SELFIE = (
    "📸 Send me a selfie: one face, looking at the camera, in good light. JPEG, PNG, WEBP or HEIC."
)
SELFIE_PLACEHOLDER = "Send your selfie"
"""Shown in the message field while the bot waits for a selfie (Telegram groups)."""
STYLES_INTRO = "These are the styles I can do. Send /avatar to try one."
STYLE_LINE = "{label} (`{style_id}`): {description}"
"""One style in a list of styles (Discord's /styles)."""
PREVIEW_CAPTION = "{label} — {description}"
"""The caption of a style's preview image."""
PICK_STYLE = "Nice photo! Now pick a style (and how many variants you'd like)."
PICK_ANOTHER_STYLE = "Pick another style for the same selfie."
VARIANTS_RANGE = "Pick between {low} and {high} variants."
SELFIE_EXPIRED = (
    "⌛ I no longer have your selfie (I delete it after a while). Please send it again."
)
SELFIE_REPLACED = "Note: you've sent a newer selfie since, so I'm using that one."
SELFIE_FORGOTTEN = "🗑 Done: I deleted your selfie. Send /avatar whenever you want a new one."
NO_SELFIE_TO_FORGET = "I don't have a selfie of yours right now; nothing to delete."
NOT_YOUR_BUTTON = "Only the person who asked for this avatar can use these buttons."
BUTTON_EXPIRED = "That button has expired. Send /avatar to make a new avatar."
NOTHING_TO_CANCEL = "You have nothing waiting in the queue."
CANCELLED = "✋ Cancelled. Send /avatar to start again."
STATUS_CANCELLED = "✖ Cancelled."
CANNOT_CANCEL = "Too late to cancel: your avatar is already being made."
UNKNOWN_COMMAND = "I didn't get that. Send /avatar to make an avatar, or /help for more."
VERIFY_ASK = "Send me the image you want to check (as a file, so it isn't re-compressed)."
VERIFY_UNAVAILABLE = "Image verification isn't available yet on this bot."
RESULT_GONE = (
    "That avatar has expired and I no longer have the file. Send /avatar to make a new one."
)
ORIGINAL_CAPTION = (
    "The original file, with its content credentials (C2PA) saying it was made by AI."
)
YOUR_PHOTO = "📷 Photo"
"""How the web chat shows a photo the user sent."""
NOT_A_PHOTO = "a file that isn't a photo"
NON_IMAGE_KINDS = {
    "application/pdf": "a PDF document",
    "application/zip": "an archive",
    "application/x-zip-compressed": "an archive",
    "text/html": "a web page",
    "text/plain": "a text file",
}
"""What a file clearly not an image is, by its MIME type ("That looks like {kind}...")."""

# --------------------------------------------------------------------------- a job's progress

QUEUED_NEXT = "⏳ You're next for a {style} avatar — ready in about {duration}."
QUEUED_AT = (
    "⏳ You're number {position} in the queue for a {style} avatar — ready in about {duration}."
)
RUNNING = "🎨 Making your {style} avatar now…"
RUNNING_PERCENT = "🎨 Making your {style} avatar now ({percent}%)…"
AVATAR_CAPTION_ONE = "✨ Here's your avatar in {style}. Made by AI and labelled as such."
AVATAR_CAPTION_MANY = "✨ Here's your {n} avatars in {style}. Made by AI and labelled as such."
LIKENESS_LINE = "\n🔍 Likeness to your selfie: {scores}"
CHECKING_PHOTO = "📥 Got it, checking your photo…"
ON_IT = "⏳ On it…"
RESULT_READY = "✅ Your avatar is ready: see below."
SEE_BELOW = "See my message below."
FINISHED_DONE = "✅ Done."
FINISHED_NOT_DONE = "⚠️ Not done."
ANSWERED = "👍"
"""The answer to a request that needs no words (Discord must show something)."""
DOWNLOAD_FAILED = "I couldn't download that file from Discord. Please try again."
LEFT_OUT = "({n} more didn't fit in one Discord message.)"
LEFT_OUT_ORIGINAL = (
    "({n} more didn't fit in one Discord message: press 📥 Original file to get them.)"
)

# --------------------------------------------------------------------------- Discord options

OPTION_SELFIE = "A photo of your face"
OPTION_STYLE = "The art style"
OPTION_VARIANTS = "How many (1-4)"
OPTION_IMAGE = "The image to check (send it as a file)"


def queued(style_label: str, position: int, eta_s: float) -> str:
    duration = _duration(eta_s)
    if position <= 1:
        return QUEUED_NEXT.format(style=style_label, duration=duration)
    return QUEUED_AT.format(position=position, style=style_label, duration=duration)


def running(style_label: str, progress: float) -> str:
    if 0 < progress < 1:
        return RUNNING_PERCENT.format(style=style_label, percent=round(progress * 100))
    return RUNNING.format(style=style_label)


def avatar_caption(style_label: str, count: int, likeness: Sequence[str] = ()) -> str:
    """The caption under a result; `likeness`: each image's score ("72%") or "no face",
    shown when the operator turned it on."""
    caption = _plural(count, AVATAR_CAPTION_ONE, AVATAR_CAPTION_MANY, style=style_label)
    if likeness:
        caption += LIKENESS_LINE.format(scores=", ".join(likeness))
    return caption


def variants_range(low: int, high: int) -> str:
    return VARIANTS_RANGE.format(low=low, high=high)


def left_out(count: int, *, original_button: bool) -> str:
    """A note under a result some of whose images did not fit in one message."""
    return (LEFT_OUT_ORIGINAL if original_button else LEFT_OUT).format(n=count)


def failure(reason: FailureReason | None) -> str:
    match reason:
        case FailureReason.UNKNOWN_STYLE:
            return "That style isn't available any more. Please pick another one."
        case FailureReason.SELFIE_EXPIRED:
            return "Your selfie expired before I could use it. Please send it again."
        case FailureReason.BLOCKED_CONTENT:
            return "I can't make an avatar from that photo. Please try a different one."
        case FailureReason.DEAD_LETTER:
            return (
                "Sorry, I couldn't finish your avatar after several tries. "
                "Please try again in a little while."
            )
        case FailureReason.CANCELLED:
            return "Your avatar was cancelled."
        case _:
            return "Sorry, something went wrong while making your avatar. Please try again."


FORGOT_EVERYTHING = "🗑 Done. I deleted your selfie, your results and your history with me."
FORGOT_CANCELLED = "I also cancelled {n} waiting job(s)."
FORGOT_NO_SELFIE = "(I wasn't holding a selfie of yours.)"


def forgot_everything(jobs_cancelled: int, had_selfie: bool) -> str:
    parts = [FORGOT_EVERYTHING]
    if jobs_cancelled:
        parts.append(FORGOT_CANCELLED.format(n=jobs_cancelled))
    if not had_selfie:
        parts.append(FORGOT_NO_SELFIE)
    return " ".join(parts)


VERDICT_OURS_INTACT = "✅ I made this image, and it hasn't been changed since."
VERDICT_OURS_CHANGED = (
    "⚠️ I made this image, but it has been changed since (re-saved, edited or "
    "re-compressed), so its content credentials no longer match."
)
VERDICT_NOT_OURS = "❌ I didn't make this image: it carries none of my labels."
VERDICT_ORIGIN = "\n{origin}."
"""Where an image of ours came from, under the verdict."""


def verdict(ours: bool, intact: bool, origin: str | None = None) -> str:
    if not ours:
        return VERDICT_NOT_OURS
    detail = VERDICT_ORIGIN.format(origin=origin[0].upper() + origin[1:]) if origin else ""
    return (VERDICT_OURS_INTACT if intact else VERDICT_OURS_CHANGED) + detail


# --- operators: the access policy and admin commands -------------------------------------
# Plain templates with {placeholders}, filled with str.format where used, so a translation
# can move them around. Admin replies are shared by the chat commands and `avatarbot admin`.

DENIED = "🚫 Sorry, this bot isn't available to you."
NOT_ALLOWED = "🔒 This bot is private: only people and groups its operator invited can use it."
PAUSED = "⏸ I'm taking a short break. Back soon!"
PAUSED_WITH_MESSAGE = "⏸ I'm taking a short break. Back soon! {message}"
CHAT_OFF = "The admins of this group have turned me off here."
NO_QUOTA = "You can't make avatars on this bot today."
VARIANTS_CAPPED = "This group allows up to {limit} variant(s) per avatar, so I'm making {limit}."


def paused(message: str) -> str:
    """What a user asking for an avatar is told while the bot is paused."""
    return PAUSED_WITH_MESSAGE.format(message=message) if message else PAUSED


BAD_SCOPE = "{text} is not a scope (for example {examples})."
BAD_USER = "{text} is not a user: write platform:user_id, for example telegram:42."
ADMIN_USAGE = "Usage: {usage}"

BANNED = "Banned {user}: they can't use the bot any more. Jobs cancelled: {jobs}."
BAN_ALREADY = "{user} was already banned. Jobs cancelled: {jobs}."
BAN_ADMIN = "{user} is an admin (AVATARBOT_ADMINS): remove them there first."
UNBANNED = "Unbanned {user}."
UNBAN_NOT_BANNED = "{user} wasn't banned."

ALLOW_ADDED = "Added {scope} to the allow list."
ALLOW_HAD = "{scope} is already on the allow list."
ALLOW_REMOVED = "Removed {scope} from the allow list."
ALLOW_LACKED = "{scope} isn't on the allow list."
ALLOW_LIST = "Allow list ({count}): {scopes}"
ALLOW_EMPTY = "The allow list is empty."
ALLOW_OPEN_HINT = "The bot is open to everyone: the allow list applies once /mode restricted."
DENY_ADDED = "Added {scope} to the deny list."
DENY_HAD = "{scope} is already on the deny list."
DENY_REMOVED = "Removed {scope} from the deny list."
DENY_LACKED = "{scope} isn't on the deny list."
DENY_LIST = "Deny list ({count}): {scopes}"
DENY_EMPTY = "The deny list is empty."

MODE_OPEN = "Access: open to everyone not denied."
MODE_RESTRICTED = "Access: restricted to admins and the allow list."

QUOTA_OWN = "{user} may make {limit} avatar(s) a day (their own quota)."
QUOTA_DEFAULT_FOR = "{user} may make {limit} avatar(s) a day (the default)."
QUOTA_SET = "{user} may now make {limit} avatar(s) a day."
QUOTA_RESET = "{user} is back on the default quota: {limit} avatar(s) a day."
QUOTA_DEFAULT = "Everyone may make {limit} avatar(s) a day unless given a quota of their own."
QUOTA_DEFAULT_SET = "The default daily quota is now {limit} avatar(s)."

ADMIN_PAUSED = "Paused. New requests are told: {line} Jobs already queued still finish."
ADMIN_RESUMED = "Resumed: new requests are welcome again."
ADMIN_NOT_PAUSED = "The bot wasn't paused."

STATS = (
    "Queue: {queued} waiting, {running} running, {workers} worker(s) live.\n"
    "Today (UTC): {avatars} avatar(s), {failures} failure(s).\n"
    "Time to avatar, median: {p50}.\n"
    "Likeness, median: {likeness}.\n"
    "{access}{paused}"
)
STATS_NONE = "n/a"
STATS_PAUSED = " Paused since {since}Z."
LOG_EMPTY = "The audit log is empty."

GROUP_ON = "I'm on in this group; up to {limit} variant(s) per avatar."
GROUP_OFF = "I'm off in this group. A group admin can send /group on."
GROUP_TURNED_ON = "Done: I'm on in this group again."
GROUP_TURNED_OFF = "Done: I'm off in this group. A group admin can send /group on."
GROUP_VARIANTS = "Done: up to {limit} variant(s) per avatar in this group."
GROUP_ONLY = "/group works in group chats."

# Discord's /admin command: its subcommands and options, as Discord lists them.
ADMIN_COMMAND = "Run this bot (its admins only)"
ADMIN_STATS = "The queue now and today's work"
ADMIN_BAN = "Ban a user: they can't use the bot, their waiting jobs are cancelled"
ADMIN_UNBAN = "Lift a ban"
ADMIN_QUOTA = "Show or set a user's daily quota, or the default"
ADMIN_PAUSE = "Pause new requests (jobs already queued still finish)"
ADMIN_RESUME = "Take new requests again"
ADMIN_ALLOW = "Show the allow list, or add or remove a scope"
ADMIN_DENY = "Show the deny list, or add or remove a scope"
ADMIN_MODE = "Show or set who may use the bot"
ADMIN_LOG = "The newest entries of the audit trail"
OPTION_USER = "platform:user_id (e.g. discord:123), a mention or a Discord user id"
OPTION_QUOTA_USER = "platform:user_id, a mention, or default (everyone's quota)"
OPTION_LIMIT = "Avatars a day, or reset (back to the default); empty: show"
OPTION_PAUSE_MESSAGE = "Told to everyone who asks meanwhile"
OPTION_SCOPE = "A user, a chat (discord-chat:ID), a server (discord-guild:ID) or discord:*"
OPTION_REMOVE = "Remove it from the list instead of adding it"
OPTION_MODE = "open: everyone not denied; restricted: admins and the allow list"
OPTION_COUNT = "How many entries (1-200)"
