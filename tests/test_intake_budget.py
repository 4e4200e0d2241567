"""Pixel bombs inside the upload limits (issue #19, defect 1): the selfie decodes of one
bot process share a memory budget (`bot.decode_budget`), so N parallel 7000 x 7000 plain
PNGs (156 KB each on the wire, ~340 MB each once decoded) keep the process's peak RSS
under the budget, where before each ran at once and the process grew by GBs."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from avatarbot.wiring import build_intake
from bot import texts
from bot.config import load_settings
from bot.decode_budget import (
    BYTES_PER_PIXEL,
    DecodeBudget,
    DecodesBusy,
    decode_cost,
    pixel_budget,
)
from bot.selfie import ImageTooLarge, IntakeError, IntakeLimits
from tests.bombs import png
from tests.conftest import DATA

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024


# A bot process's intake, fed N bombs at once on N threads (as `asyncio.to_thread` would);
# prints the peak resident memory added while they ran (VmHWM reset before they start).
_FLOOD = """
import json, sys, threading
from avatarbot.wiring import build_intake
from bot.config import load_settings
from bot.selfie import IntakeError
from tests.bombs import plain_png

def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024

n, memory_mb = int(sys.argv[1]), sys.argv[2]
intake = build_intake(load_settings({"AVATARBOT_INTAKE_MEMORY_MB": memory_mb}))
bomb = plain_png(7000)
intake.process(open("tests/data/astronaut.jpg", "rb").read())  # detector loaded, warm
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # VmHWM := VmRSS
base = peak_mb()
outcomes = []
def one():
    try:
        intake.process(bomb)
    except IntakeError as exc:
        outcomes.append(type(exc).__name__)
threads = [threading.Thread(target=one) for _ in range(n)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"growth_mb": peak_mb() - base, "outcomes": outcomes, "bytes": len(bomb)}))
"""


def flood(n: int, memory_mb: int) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _FLOOD, str(n), str(memory_mb)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
def test_parallel_pixel_bombs_stay_within_the_memory_budget() -> None:
    budget_mb = 700
    result = flood(4, budget_mb)
    assert result["bytes"] < 200_000  # inside every upload limit
    assert result["outcomes"] == ["NoFaceFound"] * 4  # each decoded in its turn, none dropped
    growth = result["growth_mb"]
    assert isinstance(growth, float)
    assert growth < budget_mb, result  # unbudgeted, four at once: ~1,400 MB


# --------------------------------------------------------------------------- the budget


def test_a_decode_waits_its_turn_then_is_told_busy() -> None:
    budget = DecodeBudget(100, max_parallel=4)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with budget.reserve(80, wait_s=1):
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(5)
        started = time.monotonic()
        with pytest.raises(DecodesBusy) as busy, budget.reserve(30, wait_s=0.2):
            pass
        assert 0.15 < time.monotonic() - started < 2
        assert busy.value.user_message == texts.busy_try_later()
        assert isinstance(busy.value, IntakeError)  # answered in one line by the conversation
        with budget.reserve(20, wait_s=0):  # what still fits runs at once
            assert budget.in_use == 100
    finally:
        release.set()
        holder.join()
    assert budget.in_use == 0


def test_turns_are_first_come_first_served() -> None:
    budget = DecodeBudget(100, max_parallel=4)
    order: list[str] = []
    first_in = threading.Event()
    release = threading.Event()

    def run(name: str, nbytes: int, hold: bool) -> None:
        with budget.reserve(nbytes, wait_s=5):
            order.append(name)
            if hold:
                first_in.set()
                release.wait(5)

    threads = [threading.Thread(target=run, args=("big-1", 90, True))]
    threads[0].start()
    assert first_in.wait(5)
    threads.append(threading.Thread(target=run, args=("big-2", 90, False)))
    threads[1].start()
    time.sleep(0.1)  # big-2 waits at the head of the line
    threads.append(threading.Thread(target=run, args=("small", 5, False)))
    threads[2].start()
    time.sleep(0.1)
    assert order == ["big-1"]  # small would fit, but it is behind big-2
    release.set()
    for thread in threads:
        thread.join(5)
    assert order == ["big-1", "big-2", "small"]


def test_a_decode_costs_the_pixels_it_will_decode() -> None:
    limits = IntakeLimits()
    assert decode_cost(png(7000), limits) == 7000 * 7000 * BYTES_PER_PIXEL
    # A JPEG decodes at its draft size: a 4000 px photo at 1/2 (never below 1024 px).
    photo = io.BytesIO()
    Image.new("RGB", (4000, 3000), "white").save(photo, "JPEG")
    assert decode_cost(photo.getvalue(), limits) == 2000 * 1500 * BYTES_PER_PIXEL
    # Refused from the header (too many pixels) or before it (too many bytes): free.
    assert decode_cost(png(8000), IntakeLimits(max_pixels=50_000_000)) == 0
    assert decode_cost(b"x" * 100, IntakeLimits(max_bytes=1024)) > 0  # unreadable: the worst
    assert decode_cost(b"x" * 2048, IntakeLimits(max_bytes=1024)) == 0


def test_the_pixel_limit_fits_the_budget() -> None:
    assert pixel_budget(1024 * MB, 50_000_000) == 50_000_000
    small = pixel_budget(256 * MB, 50_000_000)
    assert small * BYTES_PER_PIXEL <= 256 * MB
    intake = build_intake(load_settings({"AVATARBOT_INTAKE_MEMORY_MB": "256"}))
    assert intake.limits.max_pixels == small
    with pytest.raises(ImageTooLarge):
        intake.process(png(5000))  # 25 Mpx: more than 256 MB could ever decode
    assert intake.process((DATA / "astronaut.jpg").read_bytes()).width > 0
