"""Everything the bot says, in one place (so wording is reviewed and translated together).

Plain text with a few emoji; no Markdown or HTML, so every adapter can send it as is.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.jobs import FailureReason


def _duration(seconds: float) -> str:
    """A human duration: "30 seconds", "2 minutes", "1 hour"."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} second{'s' if s != 1 else ''}"
    m = round(s / 60)
    if m < 60:
        return f"{m} minute{'s' if m != 1 else ''}"
    h = round(m / 60)
    return f"{h} hour{'s' if h != 1 else ''}"


def welcome(bot_name: str, selfie_ttl_s: int) -> str:
    return (
        "👋 Hi! I turn a selfie into an avatar in the art style you pick: pencil sketch, "
        "watercolor, oil painting and more.\n"
        "Send /avatar to begin, then a photo of your face.\n"
        "🤖 Every avatar is made by AI and labelled as AI-made inside the file "
        "(a signed content credential, metadata and an invisible watermark).\n"
        f"🔒 I keep your selfie for at most {_duration(selfie_ttl_s)} so you can try other "
        "styles, then delete it. /forgetme deletes everything I hold about you at once."
    )


def help_text(selfie_ttl_s: int) -> str:
    return (
        "Here's what I can do:\n"
        "/avatar — make an avatar from a selfie\n"
        "/styles — see the styles\n"
        "/cancel — cancel the avatar you're waiting for\n"
        "/verify — send an image and I'll tell you whether I made it\n"
        "/forgetme — delete your selfie and everything else I keep about you\n"
        f"Selfies are deleted after {_duration(selfie_ttl_s)} at the latest."
    )


ASK_SELFIE = (
    "📸 Send me a selfie: one face, looking at the camera, in good light. JPEG, PNG, WEBP or HEIC."
)
STYLES_INTRO = "These are the styles I can do. Send /avatar to try one."
PICK_STYLE = "Nice photo! Now pick a style (and how many variants you'd like)."
PICK_ANOTHER_STYLE = "Pick another style for the same selfie."
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


def queued(style_label: str, position: int, eta_s: float) -> str:
    where = "You're next" if position <= 1 else f"You're number {position} in the queue"
    return f"⏳ {where} for a {style_label} avatar — ready in about {_duration(eta_s)}."


def running(style_label: str, progress: float) -> str:
    pct = f" ({round(progress * 100)}%)" if 0 < progress < 1 else ""
    return f"🎨 Making your {style_label} avatar now{pct}…"


def avatar_caption(style_label: str, count: int, likeness: Sequence[str] = ()) -> str:
    what = "your avatar" if count == 1 else f"your {count} avatars"
    caption = f"✨ Here's {what} in {style_label}. Made by AI and labelled as such."
    if likeness:  # each image's score ("72%") or "no face"
        caption += f"\n🔍 Likeness to your selfie: {', '.join(likeness)}"
    return caption


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


def forgot_everything(jobs_cancelled: int, had_selfie: bool) -> str:
    parts = ["🗑 Done. I deleted your selfie, your results and your history with me."]
    if jobs_cancelled:
        parts.append(f"I also cancelled {jobs_cancelled} waiting job(s).")
    if not had_selfie:
        parts.append("(I wasn't holding a selfie of yours.)")
    return " ".join(parts)


def verdict(ours: bool, intact: bool, origin: str | None = None) -> str:
    detail = f"\n{origin[0].upper()}{origin[1:]}." if origin else ""
    if ours and intact:
        return "✅ I made this image, and it hasn't been changed since." + detail
    if ours:
        return (
            "⚠️ I made this image, but it has been changed since (re-saved, edited or "
            "re-compressed), so its content credentials no longer match." + detail
        )
    return "❌ I didn't make this image: it carries none of my labels."
