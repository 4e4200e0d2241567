"""Ending a child process when the process that started it is gone.

`avatarbot run` starts its workers in their own session, so a Ctrl-C in the terminal
reaches only `run`, which then stops them in order. If `run` itself is killed (SIGKILL:
an OOM killer, `docker kill`, a supervisor's last resort) nothing would stop them, and
each would keep its GPU memory for ever. A worker started with `--parent-pid` calls
`exit_with_parent` first thing:

- on Linux, the kernel's parent-death signal (`prctl(PR_SET_PDEATHSIG, SIGTERM)` through
  ctypes) sends SIGTERM the moment the parent dies; the worker takes it as a stop (finish
  the batch in hand, exit);
- everywhere, a daemon thread checks every `poll_s` whether the parent is still its parent
  (an orphan is re-parented, so `os.getppid()` changes). When it is not, it sends that
  SIGTERM itself (the portable fallback, and the case of a parent that died before the
  signal was armed), and if the process is still alive `grace_s` later, SIGKILL.

The kernel ties the parent-death signal to the *thread* that started the child: start
such children from the main thread (`avatarbot run` does).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time

log = logging.getLogger(__name__)

#: linux/prctl.h
_PR_SET_PDEATHSIG = 1


def exit_with_parent(
    parent_pid: int, *, grace_s: float = 30.0, poll_s: float = 1.0, use_prctl: bool = True
) -> threading.Thread:
    """Make this process end when `parent_pid` is no longer its parent; returns the watch."""
    if use_prctl:
        set_parent_death_signal(signal.SIGTERM)
    watch = threading.Thread(
        target=_watch, args=(parent_pid, grace_s, poll_s), name="parent-watch", daemon=True
    )
    watch.start()
    return watch


def set_parent_death_signal(sig: signal.Signals) -> bool:
    """Ask Linux to send `sig` when the parent dies; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    return bool(prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0)


def _watch(parent_pid: int, grace_s: float, poll_s: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(poll_s)
    log.warning("the process that started this one (%d) is gone: stopping", parent_pid)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace_s)
    log.warning("still running %.0f s after the parent died: killing", grace_s)
    os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
