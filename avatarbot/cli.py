"""The `avatarbot` command line.

Every failure the user can fix (bad input, a bad option, a bad setting, a Redis it cannot
reach) exits with code 2 and one line `error: <message>` on stderr; an internal failure
exits 1 with one line (the traceback goes to the log at DEBUG). Never a bare traceback,
and never a library's warning: warnings go to the log (logger `py.warnings`), which shows
them only at AVATARBOT_LOG_LEVEL=DEBUG. Errors that carry an `operator_message` (Redis
unreachable, the embedded Redis failing) print that instead of the chat wording.
`avatarbot verify` has exit codes of its own (see `VERIFY_EPILOG`).
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

VERIFY_EPILOG = """\
exit status:
  0  made by this avatarbot instance and intact (its signed content credentials match)
  1  not made by it: none of its labels found
  2  bad input: no such file, not a PNG, JPEG or WebP image, too large
  3  made by it, but altered or re-encoded since (signed manifest gone or broken,
     invisible watermark found): what a chat app's copy of an avatar gives
"""


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

    worker = sub.add_parser("worker", help="run a generation worker")
    # Given by `avatarbot run` to the workers it starts: end when that process is gone.
    worker.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
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

    verify = sub.add_parser(
        "verify",
        help="check whether an image was made by this avatarbot (exit 0, 1, 2 or 3)",
        description="Check an image for this avatarbot's labels: C2PA manifest, "
        "AI-made metadata, invisible watermark.",
        epilog=VERIFY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("image", type=Path)
    add_admin_parser(sub)

    likeness = sub.add_parser("likeness", help="how much an image looks like a selfie's person")
    likeness.add_argument("selfie", type=Path)
    likeness.add_argument("image", type=Path)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    _route_warnings_to_logging()
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
        return _fail(getattr(exc, "operator_message", None) or exc.user_message, int(code))
    except Exception as exc:
        log.debug("internal error", exc_info=True)
        return _fail(f"internal error ({exc.__class__.__name__}); run with "
                     "AVATARBOT_LOG_LEVEL=DEBUG for details", EXIT_INTERNAL)  # fmt: skip


def _fail(message: str, code: int) -> int:
    line = " ".join(message.split())
    print(f"error: {line}", file=sys.stderr)
    return code


_LONG_RUNNING = frozenset({"worker", "bot", "run"})
_WARNINGS_LOGGER = "py.warnings"


def _route_warnings_to_logging() -> None:
    """Library warnings (Pillow's DecompressionBombWarning on a 144 Mpx upload, a
    deprecation) become log records of `py.warnings`, dropped unless the level is DEBUG:
    the terminal shows the one `error:` line, never a warning beside it."""
    logging.captureWarnings(True)
    logging.getLogger(_WARNINGS_LOGGER).setLevel(logging.ERROR)


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
    if level == "DEBUG":
        logging.getLogger(_WARNINGS_LOGGER).setLevel(logging.DEBUG)


if __name__ == "__main__":
    raise SystemExit(main())
