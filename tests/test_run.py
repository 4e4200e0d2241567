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
