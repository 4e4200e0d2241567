"""`avatarbot likeness SELFIE IMAGE`, run as a real subprocess, the way a user runs it."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.people import PEOPLE

CLI = [sys.executable, "-m", "avatarbot.cli"]
SCORE = re.compile(r"likeness (\d{1,3})% \(distance (\d\.\d{3})\): (the same|not the same) person")


def likeness(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AVATARBOT_", "REDIS_"))}
    environ.update({"AVATARBOT_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1"})
    return subprocess.run(
        [*CLI, "likeness", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=environ,
        cwd=tmp_path,
    )


def test_same_person_and_another_person(tmp_path: Path) -> None:
    selfie = str(PEOPLE["obama"])
    same = likeness(tmp_path, selfie, selfie)
    assert same.returncode == 0, same.stderr
    match = SCORE.fullmatch(same.stdout.strip())
    assert match, same.stdout
    assert int(match[1]) > 80
    assert match[3] == "the same"

    other = likeness(tmp_path, selfie, str(PEOPLE["biden"]))
    assert other.returncode == 0, other.stderr
    match = SCORE.fullmatch(other.stdout.strip())
    assert match, other.stdout
    assert float(match[2]) > 0.6
    assert match[3] == "not the same"


def test_an_image_without_a_face_says_so(tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    Image.new("RGB", (512, 512), (90, 140, 200)).save(blank)
    result = likeness(tmp_path, str(PEOPLE["hopper"]), str(blank))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"no face found in {blank}"


@pytest.mark.parametrize(
    ("selfie", "image", "message"),
    [
        ("missing.jpg", "hopper", "missing.jpg: no such file"),
        ("text", "hopper", "text.jpg: That looks like a text file"),
        ("blank", "hopper", "blank.png: I couldn't find a face"),
        ("hopper", "text", "text.jpg: That looks like a text file"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(
    tmp_path: Path, selfie: str, image: str, message: str
) -> None:
    (tmp_path / "text.jpg").write_text("not a photo\n" * 20)
    buffer = io.BytesIO()
    Image.new("RGB", (512, 512), (90, 140, 200)).save(buffer, "PNG")
    (tmp_path / "blank.png").write_bytes(buffer.getvalue())
    named = {"hopper": str(PEOPLE["hopper"]), "text": "text.jpg", "blank": "blank.png"}
    result = likeness(tmp_path, named.get(selfie, selfie), named.get(image, image))
    assert result.returncode == 2, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {message}"), lines[0]
