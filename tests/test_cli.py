"""The `avatarbot` CLI, run as a real subprocess, the way a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import DATA

CLI = [sys.executable, "-m", "avatarbot.cli"]


@pytest.fixture
def run_cli(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        environ = {
            k: v for k, v in os.environ.items() if not k.startswith(("AVATARBOT_", "REDIS_URL"))
        }
        environ.update(
            {
                "AVATARBOT_DATA_DIR": str(tmp_path / "data"),
                "AVATARBOT_KEY_PREFIX": key_prefix,
                "REDIS_URL": redis_url,
                "HF_HUB_OFFLINE": "1",
            }
        )
        environ.update(env)
        return subprocess.run(
            [*CLI, *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
            env=environ,
            cwd=tmp_path,
        )

    return run


def test_styles_lists_the_catalog(run_cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    result = run_cli("styles")
    assert result.returncode == 0, result.stderr
    ids = [line.split()[0] for line in result.stdout.splitlines()]
    assert len(ids) >= 6
    assert "sketch" in ids


def test_generate_end_to_end_writes_labelled_variants(
    run_cli: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    out = tmp_path / "out" / "me.png"
    result = run_cli("generate", str(DATA / "astronaut.jpg"), "--style", "cartoon", "-n", "2",
                     "--seed", "7", "-o", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    paths = [tmp_path / "out" / "me-1.png", tmp_path / "out" / "me-2.png"]
    assert result.stdout.split() == [str(p) for p in paths]
    pixels = []
    for path in paths:
        with Image.open(path) as im:
            assert im.format == "PNG"
            assert im.size == (512, 512)
            pixels.append(np.asarray(im.convert("RGB"), dtype=np.float64))
    variants_apart = float(np.abs(pixels[0] - pixels[1]).mean())
    assert variants_apart > 5  # two distinct variants

    again = run_cli("generate", str(DATA / "astronaut.jpg"), "--style", "cartoon", "-n", "2",
                    "--seed", "7", "-o", str(tmp_path / "again.png"))  # fmt: skip
    assert again.returncode == 0, again.stderr
    with Image.open(tmp_path / "again-1.png") as im:
        again_pixels = np.asarray(im.convert("RGB"), dtype=np.float64)
    # Same seed, same avatar: only the (fresh, invisible) watermark id differs.
    assert float(np.abs(again_pixels - pixels[0]).mean()) < variants_apart / 5

    verify = run_cli("verify", str(paths[0]))
    assert verify.returncode == 0, verify.stdout + verify.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("generate", "{missing}", "--style", "sketch", "-o", "x.png"), "no such file"),
        (("generate", "{text}", "--style", "sketch", "-o", "x.png"), "not a photo"),
        (("generate", "{face}", "--style", "nope", "-o", "x.png"), "unknown style"),
        (("generate", "{face}", "--style", "sketch", "-n", "9", "-o", "x.png"), "1..4"),
        (("generate", "{face}", "--style", "sketch", "-o", "x.gif"), ".png"),
        (("generate", "{face}", "--style", "sketch"), "required"),
        (("frobnicate",), "invalid choice"),
        (("verify", "{text}"), "image"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
    args: tuple[str, ...],
    needle: str,
) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a photo\n")
    names = {"missing": str(tmp_path / "missing.jpg"), "text": str(text),
             "face": str(DATA / "astronaut.jpg")}  # fmt: skip
    result = run_cli(*(a.format(**names) for a in args))
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert needle in lines[0]
    assert "Traceback" not in result.stderr


def test_bad_setting_exits_2_naming_it(
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    result = run_cli("styles", AVATARBOT_DAILY_QUOTA="many")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert "AVATARBOT_DAILY_QUOTA" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_queue_and_dead_letters_show_what_submit_queued(
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    submitted = run_cli("submit", str(DATA / "astronaut.jpg"), "--style", "oil", "-n", "2")
    assert submitted.returncode == 0, submitted.stderr
    assert "queued: position 1" in submitted.stdout  # no worker runs: it waits in the queue

    shown = run_cli("queue")
    assert shown.returncode == 0, shown.stderr
    fields = dict(line.split(":", 1) for line in shown.stdout.splitlines() if ":" in line)
    assert fields["queued"].strip() == "1"
    assert fields["dead letters"].strip() == "0"

    letters = run_cli("dead-letters", "list")
    assert letters.returncode == 0, letters.stderr
    assert letters.stdout.strip().endswith("0 dead letter(s)")
    purged = run_cli("dead-letters", "purge")
    assert purged.stdout.strip() == "purged 0 dead letter(s)"
