"""The bot's words on each platform's own surfaces, around the conversation, in the
language of the moment (`bot.i18n`): the command menu (Telegram's menu, Discord's slash
commands, /help), Telegram's bot descriptions, Discord's command options and the web
chat page's own words. Each platform caps their length (tests/test_i18n_catalogs.py
checks every language against the caps).

The conventions of `bot.texts` hold.
"""

from __future__ import annotations

from bot.i18n import _, pgettext

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
        # Translators: under each avatar; {score} is "72%" or "no face".
        "likeness": _("Likeness to your selfie: {score}"),
        "likeness_hint": _("Face-recognition score: 50% and above means the same person"),
    }


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
