"""`avatarbot run` as a user runs it: embedded Redis, a worker, the web chat; Ctrl-C stops all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from avatarbot.embedded_redis import EmbeddedRedis
from tests.conftest import DATA, free_port


def _env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AVATARBOT_", "REDIS_URL"))}
    env.update(
        {
            "AVATARBOT_DATA_DIR": str(data_dir),
            "AVATARBOT_WEB_PORT": str(port),
            "AVATARBOT_RECLAIM_IDLE_S": "3",
            "HF_HUB_OFFLINE": "1",
        }
    )
    return env


def _children(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True, check=True
    ).stdout
    return [int(line.split()[0]) for line in out.splitlines() if line.split()[1] == str(pid)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _processes_of(data_dir: Path) -> list[int]:
    """Live processes whose command line or environment names `data_dir`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if str(data_dir).encode() in text and _alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _start_run(env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    """`avatarbot run`, once its web chat answers /healthz (a worker has registered)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "avatarbot.cli", "run"],
        env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{env['AVATARBOT_WEB_PORT']}/healthz"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url) as response:
                if response.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
        if proc.poll() is not None:
            break
    proc.kill()
    output, _ = proc.communicate(timeout=10)
    raise AssertionError(f"avatarbot run never got healthy:\n{output}")


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    """The pids still alive after up to `seconds`."""
    deadline = time.monotonic() + seconds
    while (alive := [pid for pid in pids if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_killed_run_leaves_no_worker_and_the_next_run_stops_its_redis(tmp_path: Path) -> None:
    """SIGKILL of `avatarbot run` (OOM killer, `docker kill`): its workers end with it; its
    embedded Redis, left behind, is adopted by the next run and stopped with it."""
    data_dir = tmp_path / "data"
    env = _env(data_dir, free_port())
    env["AVATARBOT_WORKERS"] = "2"
    try:
        _kill_run_then_run_again(tmp_path, data_dir, env)
    finally:  # whatever failed, leave no process of this test behind
        for pid in _processes_of(data_dir):
            os.kill(pid, signal.SIGKILL)
    assert not EmbeddedRedis(data_dir).is_running()


def _kill_run_then_run_again(tmp_path: Path, data_dir: Path, env: dict[str, str]) -> None:
    first = _start_run(env, tmp_path)
    try:
        children = _children(first.pid)
        [redis_pid] = [pid for pid in children if "redis-server" in _cmdline(pid)]
        workers = [pid for pid in children if " worker" in _cmdline(pid)]
        assert len(workers) == 2, [_cmdline(pid) for pid in children]
        first.kill()
        first.wait(10)
        assert _wait_gone(workers, 20) == [], "workers outlived the killed avatarbot run"
        assert _alive(redis_pid)  # left behind: nothing could stop it
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)
        assert first.stdout is not None
        first.stdout.close()

    second = _start_run(dict(env, AVATARBOT_WEB_PORT=str(free_port())), tmp_path)
    try:
        assert _alive(redis_pid)  # adopted and serving, not replaced by a new server
        assert not [pid for pid in _children(second.pid) if "redis-server" in _cmdline(pid)]
        second.send_signal(signal.SIGINT)
        rest, _ = second.communicate(timeout=60)
        assert second.returncode == 0, rest
        assert "adopted the embedded Redis" in rest
    finally:
        if second.poll() is None:
            second.kill()
            second.communicate(timeout=10)
    assert not _alive(redis_pid)
    assert _processes_of(data_dir) == [], "a process of the data dir outlived both runs"


@pytest.mark.slow
def test_run_serves_web_chat_takes_jobs_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    env = _env(data_dir, port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "avatarbot.cli", "run"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("avatarbot web chat: "):
                break
        assert any(f"http://127.0.0.1:{port}/" in line for line in lines), "".join(lines)

        status = 0
        while time.monotonic() < deadline:  # healthy once the worker has registered
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz") as response:
                    status = response.status
                break
            except OSError:
                time.sleep(0.2)
        assert status == 200

        # A second command attaches to the running embedded Redis and goes through the queue.
        out = tmp_path / "queued.png"
        submit = subprocess.run(
            [sys.executable, "-m", "avatarbot.cli", "submit", str(DATA / "astronaut.jpg"),
             "--style", "sketch", "--wait", "-o", str(out)],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert submit.returncode == 0, submit.stderr
        with Image.open(out) as im:
            assert im.size == (512, 512)
        verify = subprocess.run(
            [sys.executable, "-m", "avatarbot.cli", "verify", str(out)],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert "made by this avatarbot instance" in verify.stdout

        children = _children(proc.pid)
        assert len(children) >= 2  # the embedded Redis and a worker
        proc.send_signal(signal.SIGINT)  # what Ctrl-C does
        rest, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, "".join(lines) + rest
        assert "Traceback" not in rest
        for child in children:
            assert not _alive(child), f"process {child} outlived avatarbot run"
        assert not EmbeddedRedis(data_dir).is_running()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
