"""`avatarbot admin ...` and the policy for `avatarbot submit`, run as real subprocesses."""

from __future__ import annotations

import getpass
import subprocess
from collections.abc import Callable

import pytest

from bot import operator_texts
from tests.conftest import DATA
from tests.test_cli import run_cli  # noqa: F401  # the fixture `cli` builds on

Run = Callable[..., subprocess.CompletedProcess[str]]
ME = f"cli:{getpass.getuser()}"


@pytest.fixture
def cli(run_cli: Run) -> Run:  # noqa: F811  # the fixture imported above
    return run_cli


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout.strip()


def one_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.strip().endswith(errors[0])
    assert "Traceback" not in result.stderr
    return errors[0].removeprefix("error: ")


def submit(cli: Run) -> subprocess.CompletedProcess[str]:
    return cli("submit", str(DATA / "astronaut.jpg"), "--style", "sketch")


def test_ban_allow_deny_and_the_log(cli: Run) -> None:
    assert ok(cli("admin", "stats")).startswith("Queue: 0 waiting")  # a Redis never used
    assert ok(cli("admin", "ban", "telegram:42")) == operator_texts.banned("telegram:42", 0)
    assert ok(cli("admin", "deny")) == operator_texts.deny_list(["telegram:42"])
    assert ok(cli("admin", "allow", "discord-guild:987")).startswith(
        operator_texts.allow_added("discord-guild:987")
    )
    assert ok(cli("admin", "allow", "remove", "discord-guild:987")) == (
        operator_texts.allow_removed("discord-guild:987")
    )
    assert ok(cli("admin", "unban", "telegram:42")) == operator_texts.unbanned("telegram:42")
    log = ok(cli("admin", "log", "10")).splitlines()
    assert [line.split("  ")[1:3] for line in log] == [
        [ME, "unban"], [ME, "unallow"], [ME, "allow"], [ME, "ban"],
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("admin", "ban"), "Usage: avatarbot admin ban PLATFORM:USER_ID"),
        (("admin", "ban", "42"), "is not a user"),
        (("admin", "quota", "telegram:42", "lots"), "Usage: avatarbot admin quota"),
        (("admin", "allow", "telegram-group:1"), "is not a scope"),
        (("admin", "mode", "closed"), "Usage: avatarbot admin mode"),
        (("admin", "frobnicate"), "invalid choice"),
    ],
)
def test_bad_input_exits_2_with_one_line(cli: Run, args: tuple[str, ...], needle: str) -> None:
    # REDIS_URL points nowhere: bad words are refused before any connection is tried.
    result = cli(*args, REDIS_URL="redis://127.0.0.1:1/0")
    assert needle in one_error(result, 2)


def test_submit_passes_the_same_gate_as_a_chat_user(cli: Run) -> None:
    paused = ok(cli("admin", "pause", "Back", "at", "18:00"))
    assert paused == operator_texts.admin_paused(operator_texts.paused("Back at 18:00"))
    assert one_error(submit(cli), 3) == operator_texts.paused("Back at 18:00")
    assert ok(cli("admin", "resume")) == operator_texts.admin_resumed()

    assert ok(cli("admin", "mode", "restricted")) == operator_texts.access_mode(restricted=True)
    assert one_error(submit(cli), 3) == operator_texts.not_allowed()
    ok(cli("admin", "allow", "cli:*"))
    assert "queued: position 1" in ok(submit(cli))

    stats = ok(cli("admin", "stats"))
    assert stats.startswith("Queue: 1 waiting, 0 running, 0 workers live.")
    assert operator_texts.access_mode(restricted=True) in stats

    ok(cli("admin", "quota", ME, "0"))
    assert one_error(submit(cli), 3) == operator_texts.no_quota()
    assert ok(cli("admin", "quota", ME)) == operator_texts.quota_of(ME, 0, own=True)
    refusals = [line for line in ok(cli("admin", "log")).splitlines() if "refused" in line]
    assert [line.split("  ")[-1] for line in refusals] == ["no_quota", "not_allowed", "paused"]
