"""The `avatarbot` CLI, run as a real subprocess, the way a user runs it."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests import hostile
from tests.conftest import DATA, RedisServer

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


# --- hostile files through every command that takes a file --------------------------------

#: The commands that read a file the user names, with the file's place marked.
FILE_COMMANDS = {
    "generate": ("generate", "{file}", "--style", "sketch", "-o", "{out}"),
    "submit": ("submit", "{file}", "--style", "sketch"),
    "verify": ("verify", "{file}"),
    "likeness": ("likeness", "{file}", str(DATA / "astronaut.jpg")),  # a hostile selfie
    "likeness-image": ("likeness", str(DATA / "astronaut.jpg"), "{file}"),  # a hostile image
}


#: (command, exit code) of a readable image judged rather than refused: how the last line
#: of what it prints starts.
JUDGED = {
    ("verify", 1): ("Verdict: not made by this avatarbot instance",),
    ("likeness-image", 0): ("no face found in ", "likeness "),
}


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("command", list(FILE_COMMANDS))
def test_hostile_files_get_one_error_line_and_exit_2(
    run_cli: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path, command: str
) -> None:
    """Every file of the hostile corpus, as its own process: stderr holds one `error:` line
    and nothing else (no library warning, such as Pillow's on the 144 Mpx PNG bomb), exit 2.
    A readable image that is no selfie may instead be judged: `verify` prints its verdict
    (exit 1, not ours), `likeness` its score or that it found no face (exit 0), and
    nothing is on stderr."""
    files = {}
    for name, case in hostile.BAD_FILES.items():
        files[name] = tmp_path / f"{name}.jpg"
        files[name].write_bytes(case.make())

    def run(name: str) -> tuple[str, subprocess.CompletedProcess[str]]:
        out = str(tmp_path / f"{name}-out.png")
        return name, run_cli(*(a.format(file=files[name], out=out) for a in FILE_COMMANDS[command]))

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(pool.map(run, files))
    judged = 0
    for name, result in results.items():
        seen = f"{name}: exit {result.returncode}, stderr {result.stderr!r}"
        if (command, result.returncode) in JUDGED:
            assert result.stderr == "", seen
            last = result.stdout.splitlines()[-1]
            assert last.startswith(JUDGED[command, result.returncode]), seen
            judged += 1
            continue
        assert result.returncode == 2, seen
        assert result.stdout == "", seen
        lines = result.stderr.splitlines()
        assert len(lines) == 1, seen
        assert lines[0].startswith("error: "), seen
    assert judged < len(results) / 2  # most of the corpus is no image at all


def test_library_warnings_go_to_the_debug_log(
    run_cli: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    """The bomb's DecompressionBombWarning is not lost: at DEBUG it is a log record."""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(hostile.png_bomb())
    quiet = run_cli("generate", str(bomb), "--style", "sketch", "-o", "out.png")
    assert quiet.returncode == 2
    assert quiet.stderr.splitlines() == [quiet.stderr.strip()]
    assert "Warning" not in quiet.stderr

    debug = run_cli(
        "generate", str(bomb), "--style", "sketch", "-o", "out.png", AVATARBOT_LOG_LEVEL="DEBUG"
    )
    assert debug.returncode == 2
    [warning] = [line for line in debug.stderr.splitlines() if "DecompressionBombWarning" in line]
    assert "py.warnings" in warning
    assert debug.stderr.splitlines()[-1] == quiet.stderr.strip()


# --- verify's exit codes ---------------------------------------------------------------


def test_verify_exit_codes_tell_intact_altered_foreign_and_bad_input(
    run_cli: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    avatar = tmp_path / "avatar.png"
    made = run_cli("generate", str(DATA / "astronaut.jpg"), "--style", "oil", "--seed", "3",
                   "-o", str(avatar))  # fmt: skip
    assert made.returncode == 0, made.stderr
    reencoded = tmp_path / "reencoded.jpg"  # what a chat app does to a photo
    with Image.open(avatar) as image:
        image.convert("RGB").save(reencoded, "JPEG", quality=85)
    text = tmp_path / "notes.png"
    text.write_text("not an image\n")

    expected = {avatar: 0, DATA / "astronaut.jpg": 1, text: 2, reencoded: 3}
    for path, code in expected.items():
        result = run_cli("verify", str(path))
        assert result.returncode == code, (path.name, result.stdout, result.stderr)
    verdict = run_cli("verify", str(reencoded)).stdout.splitlines()[-1]
    assert verdict.startswith("Verdict: ours (re-encoded")


def test_verify_help_documents_the_exit_codes(
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    result = run_cli("verify", "--help")
    assert result.returncode == 0
    codes = result.stdout[result.stdout.index("exit status:") :]
    for code, words in (("0", "intact"), ("1", "not made"), ("2", "bad input"), ("3", "altered")):
        assert any(line.split()[:1] == [code] and words in line for line in codes.splitlines()), (
            result.stdout
        )


# --- Redis out of reach -------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [("queue",), ("dead-letters", "list"), ("submit", "{face}", "--style", "sketch")],
    ids=["queue", "dead-letters", "submit"],
)
def test_unreachable_redis_is_named_with_the_reason_never_the_password(
    run_cli: Callable[..., subprocess.CompletedProcess[str]], args: tuple[str, ...]
) -> None:
    face = str(DATA / "astronaut.jpg")
    for url, shown in (
        ("redis://127.0.0.1:1/0", "redis://127.0.0.1:1/0"),
        ("redis://avatarbot:hunter2-secret@127.0.0.1:1/0", "redis://avatarbot:***@127.0.0.1:1/0"),
    ):
        result = run_cli(*(a.format(face=face) for a in args), REDIS_URL=url)
        assert result.returncode == 2, result.stderr
        assert result.stderr.splitlines() == [
            f"error: cannot reach Redis at {shown} (connection refused)"
        ]
        assert "hunter2" not in result.stdout + result.stderr


def test_redis_lost_midway_is_named_too(tmp_path: Path, key_prefix: str) -> None:
    """`submit --wait` whose Redis dies while it waits: the same one line, exit 2."""
    server = RedisServer(tmp_path / "redis").start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AVATARBOT_", "REDIS_URL"))}
    env.update(AVATARBOT_DATA_DIR=str(tmp_path / "data"), AVATARBOT_KEY_PREFIX=key_prefix,
               REDIS_URL=server.url, HF_HUB_OFFLINE="1")  # fmt: skip
    submit = subprocess.Popen(
        [*CLI, "submit", str(DATA / "astronaut.jpg"), "--style", "sketch", "--wait",
         "--timeout", "60"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert submit.stdout is not None
        assert "queued" in submit.stdout.readline()  # no worker: it waits
        server.kill()
        _, err = submit.communicate(timeout=60)
    finally:
        server.kill()
        if submit.poll() is None:
            submit.kill()
            submit.communicate(timeout=10)
    assert submit.returncode == 2, err
    assert err.splitlines() == [f"error: cannot reach Redis at {server.url} (connection refused)"]
