"""The `avatarbot` command line.

Every failure the user can fix (bad input, a bad option, a bad setting) exits with code 2
and one line `error: <friendly message>` on stderr; an internal failure exits 1 with one
line (the traceback goes to the log at DEBUG). Never a bare traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from avatarbot.admin_command import add_admin_parser
from bot import __version__
from bot.config import ConfigError, Settings, load_settings
from bot.errors import AvatarbotError
from bot.jobs import MAX_VARIANTS, MIN_VARIANTS

log = logging.getLogger("avatarbot")

EXIT_INTERNAL = 1
EXIT_USAGE = 2


class UsageError(AvatarbotError):
    """A bad option or argument; exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message, user_message=message)


def _variants(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not MIN_VARIANTS <= value <= MAX_VARIANTS:
        raise argparse.ArgumentTypeError(f"must be {MIN_VARIANTS}..{MAX_VARIANTS}, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError("must be between 0 and 4294967295")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="avatarbot",
        description="Self-hostable AI avatar bot. Every image it makes is labelled as AI-made.",
    )
    parser.add_argument("--version", action="version", version=f"avatarbot {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("styles", help="list the styles")

    gen = sub.add_parser("generate", help="make an avatar in-process (no Redis needed)")
    gen.add_argument("selfie", type=Path)
    gen.add_argument("--style", required=True)
    gen.add_argument("-n", "--variants", type=_variants, default=1)
    gen.add_argument("--seed", type=_seed)
    gen.add_argument("-o", "--output", type=Path, required=True)

    sub.add_parser("worker", help="run a generation worker")
    sub.add_parser("bot", help="run the configured chat adapters (no worker)")
    sub.add_parser("run", help="run everything: Redis (embedded if needed), workers, adapters")

    submit = sub.add_parser("submit", help="queue a selfie through Redis for a worker")
    submit.add_argument("selfie", type=Path)
    submit.add_argument("--style", required=True)
    submit.add_argument("-n", "--variants", type=_variants, default=1)
    submit.add_argument("--seed", type=_seed)
    submit.add_argument("--wait", action="store_true", help="wait for the result")
    submit.add_argument("-o", "--output", type=Path, help="where to write the result (--wait)")
    submit.add_argument("--timeout", type=float, default=300.0, help="seconds to wait")

    sub.add_parser("queue", help="show queue depth, pending jobs, workers, dead letters")

    dead = sub.add_parser("dead-letters", help="inspect or act on dead-lettered jobs")
    dead.add_argument("action", choices=["list", "retry", "purge"])
    dead.add_argument("entry", nargs="?", help="entry id for retry (default: all)")

    sub.add_parser("previews", help="regenerate the style preview images")

    verify = sub.add_parser("verify", help="check whether an image was made by this avatarbot")
    verify.add_argument("image", type=Path)
    add_admin_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        settings = load_settings()
        _setup_logging(settings, quiet=args.command not in _LONG_RUNNING)
        from avatarbot import commands  # noqa: PLC0415  # keeps `--help` fast

        return commands.dispatch(args, settings)
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0)
    except KeyboardInterrupt:
        return 130
    except (UsageError, ConfigError) as exc:
        return _fail(str(exc) if isinstance(exc, ConfigError) else exc.user_message, EXIT_USAGE)
    except AvatarbotError as exc:
        log.debug("command failed", exc_info=True)
        code = getattr(exc, "exit_code", EXIT_USAGE)
        return _fail(exc.user_message, int(code))
    except Exception as exc:
        log.debug("internal error", exc_info=True)
        return _fail(f"internal error ({exc.__class__.__name__}); run with "
                     "AVATARBOT_LOG_LEVEL=DEBUG for details", EXIT_INTERNAL)  # fmt: skip


def _fail(message: str, code: int) -> int:
    line = " ".join(message.split())
    print(f"error: {line}", file=sys.stderr)
    return code


_LONG_RUNNING = frozenset({"worker", "bot", "run"})


def _setup_logging(settings: Settings, *, quiet: bool) -> None:
    """Services log at the configured level; one-shot commands only warnings, unless DEBUG."""
    from bot.logs import setup_logging  # noqa: PLC0415

    secrets = [
        s.get_secret_value()
        for s in (
            settings.telegram_bot_token,
            settings.discord_bot_token,
            settings.telegram_webhook_secret,
        )
        if s is not None
    ]
    level = settings.log_level
    if quiet and level == "INFO":
        level = "WARNING"
    setup_logging(level, json_lines=settings.log_json, secrets=secrets)


if __name__ == "__main__":
    raise SystemExit(main())
