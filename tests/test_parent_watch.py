"""A child told its parent's pid ends when that parent is killed, however it is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent

#: The parent: starts the child in its own session (as `avatarbot run` starts workers),
#: passes on what the child prints, then waits to be killed.
PARENT = textwrap.dedent(
    """
    import subprocess, sys, time
    subprocess.Popen([sys.executable, "-c", sys.argv[1], *sys.argv[2:]], start_new_session=True)
    time.sleep(600)
    """
)

#: The child: watches its parent, says so, sleeps. Argument: prctl | poll, then
#: "ignore" to make it ignore SIGTERM (a stuck worker).
CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    from avatarbot.parent_watch import exit_with_parent
    if sys.argv[2:] == ["ignore"]:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    exit_with_parent(os.getppid(), grace_s=1.0, poll_s=0.1, use_prctl=sys.argv[1] == "prctl")
    print(os.getpid(), flush=True)
    time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize(
    "how",
    [
        pytest.param(("prctl",), marks=pytest.mark.skipif(
            not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")),
        ("poll",),
        ("poll", "ignore"),
    ],
    ids=["parent-death-signal", "watch-thread", "stuck-child-killed-after-grace"],
)  # fmt: skip
def test_child_ends_when_its_parent_is_killed(how: tuple[str, ...]) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, CHILD, *how],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    child = 0
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _alive(child)
        time.sleep(0.3)
        assert _alive(child), "the child must live while its parent does"
        parent.kill()  # SIGKILL: the parent gets no chance to stop anything
        parent.wait(10)
        assert _gone_within(child, 5.0), f"child {child} outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        if parent.stdout is not None:
            parent.stdout.close()
        if child and _alive(child):
            os.kill(child, signal.SIGKILL)
