"""What the operator's controls say, in the language of the moment (`bot.i18n`): to a user
the gate refuses (`bot.gate`), and to the admins who run them (`bot.admin`,
`bot.admin_commands`, the same replies in a chat and on `avatarbot admin`, which speaks
English).

The conventions of `bot.texts` hold: whole sentences with `{placeholder}` fields filled
after translation, `ngettext` wherever a count is shown. What stays in English on purpose:
command words and their grammar (`/ban PLATFORM:USER_ID`), scopes (`telegram:42`) and the
audit trail's records, which are data.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.i18n import _, ngettext, pgettext
from bot.job_texts import percent

if TYPE_CHECKING:
    from bot.operator_stats import StatsReport

# --------------------------------------------------------------------------- refusals


def denied() -> str:
    return _("🚫 Sorry, this bot isn't available to you.")


def not_allowed() -> str:
    return _("🔒 This bot is private: only people and groups its operator invited can use it.")


def paused(message: str) -> str:
    """What a user asking for an avatar is told while the bot is paused (`message`: the
    operator's own words, as they wrote them)."""
    if not message:
        return _("⏸ I'm taking a short break. Back soon!")
    # Translators: {message} is the operator's own note (e.g. "Back at 18:00 UTC"),
    # shown as they wrote it.
    return _("⏸ I'm taking a short break. Back soon! {message}").format(message=message)


def chat_off() -> str:
    return _("The admins of this group have turned me off here.")


def no_quota() -> str:
    return _("You can't make avatars on this bot today.")


def variants_capped(limit: int) -> str:
    return ngettext(
        "This group allows up to {limit} variant per avatar, so I'm making {limit}.",
        "This group allows up to {limit} variants per avatar, so I'm making {limit}.",
        limit,
    ).format(limit=limit)


# --------------------------------------------------------------------------- admin words


def bad_scope(text: str, examples: str) -> str:
    # Translators: {text} is what the admin typed; {examples} lists scopes such as
    # telegram:42, telegram-chat:-100123 (keep them as they are).
    return _("{text} is not a scope (for example {examples}).").format(text=text, examples=examples)


def bad_user(text: str) -> str:
    # Translators: keep "platform:user_id" and "telegram:42" as they are: the admin types them.
    return _("{text} is not a user: write platform:user_id, for example telegram:42.").format(
        text=text
    )


def admin_usage(usage: str) -> str:
    # Translators: {usage} is a command's grammar, e.g. "/ban PLATFORM:USER_ID" (in English).
    return _("Usage: {usage}").format(usage=usage)


# --------------------------------------------------------------------------- bans


def banned(user: str, jobs: int) -> str:
    return _("Banned {user}: they can't use the bot any more. Jobs cancelled: {jobs}.").format(
        user=user, jobs=jobs
    )


def ban_already(user: str, jobs: int) -> str:
    return _("{user} was already banned. Jobs cancelled: {jobs}.").format(user=user, jobs=jobs)


def ban_admin(user: str) -> str:
    # Translators: AVATARBOT_ADMINS is a setting's name: keep it as it is.
    return _("{user} is an admin (AVATARBOT_ADMINS): remove them there first.").format(user=user)


def unbanned(user: str) -> str:
    return _("Unbanned {user}.").format(user=user)


def unban_not_banned(user: str) -> str:
    return _("{user} wasn't banned.").format(user=user)


# --------------------------------------------------------------------------- allow and deny lists


def allow_added(scope: str) -> str:
    return _("Added {scope} to the allow list.").format(scope=scope)


def allow_had(scope: str) -> str:
    return _("{scope} is already on the allow list.").format(scope=scope)


def allow_removed(scope: str) -> str:
    return _("Removed {scope} from the allow list.").format(scope=scope)


def allow_lacked(scope: str) -> str:
    return _("{scope} isn't on the allow list.").format(scope=scope)


def allow_list(scopes: Sequence[str]) -> str:
    if not scopes:
        return _("The allow list is empty.")
    return _("Allow list ({count}): {scopes}").format(count=len(scopes), scopes=", ".join(scopes))


def allow_open_hint() -> str:
    # Translators: "/mode restricted" is a command: keep it as it is.
    return _("The bot is open to everyone: the allow list applies once /mode restricted.")


def deny_added(scope: str) -> str:
    return _("Added {scope} to the deny list.").format(scope=scope)


def deny_had(scope: str) -> str:
    return _("{scope} is already on the deny list.").format(scope=scope)


def deny_removed(scope: str) -> str:
    return _("Removed {scope} from the deny list.").format(scope=scope)


def deny_lacked(scope: str) -> str:
    return _("{scope} isn't on the deny list.").format(scope=scope)


def deny_list(scopes: Sequence[str]) -> str:
    if not scopes:
        return _("The deny list is empty.")
    return _("Deny list ({count}): {scopes}").format(count=len(scopes), scopes=", ".join(scopes))


def access_mode(restricted: bool) -> str:
    if restricted:
        return _("Access: restricted to admins and the allow list.")
    return _("Access: open to everyone not denied.")


# --------------------------------------------------------------------------- quotas


def quota_of(user: str, limit: int, *, own: bool) -> str:
    """A user's daily quota: their own (`own`), or the default they are on."""
    if own:
        text = ngettext(
            "{user} may make {limit} avatar a day (their own quota).",
            "{user} may make {limit} avatars a day (their own quota).",
            limit,
        )
    else:
        text = ngettext(
            "{user} may make {limit} avatar a day (the default).",
            "{user} may make {limit} avatars a day (the default).",
            limit,
        )
    return text.format(user=user, limit=limit)


def quota_set(user: str, limit: int) -> str:
    return ngettext(
        "{user} may now make {limit} avatar a day.",
        "{user} may now make {limit} avatars a day.",
        limit,
    ).format(user=user, limit=limit)


def quota_reset(user: str, limit: int) -> str:
    return ngettext(
        "{user} is back on the default quota: {limit} avatar a day.",
        "{user} is back on the default quota: {limit} avatars a day.",
        limit,
    ).format(user=user, limit=limit)


def quota_default(limit: int) -> str:
    return ngettext(
        "Everyone may make {limit} avatar a day unless given a quota of their own.",
        "Everyone may make {limit} avatars a day unless given a quota of their own.",
        limit,
    ).format(limit=limit)


def quota_default_set(limit: int) -> str:
    return ngettext(
        "The default daily quota is now {limit} avatar.",
        "The default daily quota is now {limit} avatars.",
        limit,
    ).format(limit=limit)


# --------------------------------------------------------------------------- pause


def admin_paused(line: str) -> str:
    # Translators: {line} is the whole sentence users are told while paused.
    return _("Paused. New requests are told: {line} Jobs already queued still finish.").format(
        line=line
    )


def admin_resumed() -> str:
    return _("Resumed: new requests are welcome again.")


def admin_not_paused() -> str:
    return _("The bot wasn't paused.")


# --------------------------------------------------------------------------- /stats, /log


def stats(report: StatsReport, *, restricted: bool, paused_since: float | None) -> str:
    """/stats: the queue now, today's work, the access mode and the pause (if any)."""
    day = report.today
    queue = ngettext(
        "Queue: {queued} waiting, {running} running, {n} worker live.",
        "Queue: {queued} waiting, {running} running, {n} workers live.",
        report.workers,
    ).format(queued=report.queued, running=report.running, n=report.workers)
    # Translators: {avatars} and {failures} are the two counts below ("3 avatars").
    today = _("Today (UTC): {avatars}, {failures}.").format(
        avatars=ngettext("{n} avatar", "{n} avatars", day.avatars).format(n=day.avatars),
        failures=ngettext("{n} failure", "{n} failures", day.failures).format(n=day.failures),
    )
    p50 = day.p50_time_to_avatar_s
    lines = [
        queue,
        today,
        _("Time to avatar, median: {time}.").format(
            time=not_available() if p50 is None else seconds(p50)
        ),
        _("Likeness, median: {likeness}.").format(
            likeness=not_available()
            if day.likeness_median is None
            else percent(day.likeness_median)
        ),
    ]
    access = access_mode(restricted)
    if paused_since is not None:
        since = time.strftime("%Y-%m-%d %H:%M", time.gmtime(paused_since))
        access += " " + _("Paused since {since} UTC.").format(since=since)
    return "\n".join([*lines, access])


def seconds(value: float) -> str:
    """A duration to a tenth of a second, with the language's decimal mark ("12,3 s")."""
    # Translators: the mark between a number's whole and decimal parts: "." or ",".
    mark = pgettext("decimal mark", ".")
    # Translators: a duration in seconds, abbreviated ("12.3 s").
    return _("{seconds} s").format(seconds=f"{value:.1f}".replace(".", mark))


def not_available() -> str:
    # Translators: no value to show yet (no avatar today, likeness not measured).
    return _("n/a")


def log_empty() -> str:
    return _("The audit log is empty.")


# --------------------------------------------------------------------------- /group


def group_state(enabled: bool, limit: int) -> str:
    """/group: whether the bot works in this group, and its variant limit."""
    if not enabled:
        return _("I'm off in this group. A group admin can send /group on.")
    return ngettext(
        "I'm on in this group; up to {limit} variant per avatar.",
        "I'm on in this group; up to {limit} variants per avatar.",
        limit,
    ).format(limit=limit)


def group_turned(on: bool) -> str:
    if on:
        return _("Done: I'm on in this group again.")
    return _("Done: I'm off in this group. A group admin can send /group on.")


def group_variants(limit: int) -> str:
    return ngettext(
        "Done: up to {limit} variant per avatar in this group.",
        "Done: up to {limit} variants per avatar in this group.",
        limit,
    ).format(limit=limit)


def group_only() -> str:
    return _("/group works in group chats.")
