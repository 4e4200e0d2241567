"""Intake + CPU style engine: milliseconds per avatar for every shipped style at 512 px.

Run from the repository root: `.venv/bin/python -m bench.styles_bench [--runs N] [--write]`.
`--write` replaces the "Intake + CPU style (512 px)" section of docs/benchmarks.md.

Per style, each run does what the bot and a worker do for one avatar on the CPU path:
intake of the upload (safe decode, dlib HOG face detection, portrait crop, JPEG encode:
`bot.selfie.SelfieIntake`), the worker's load of that JPEG, and the style at 512 px.
The baseline row, measured in the same run, is a plain JPEG decode + re-encode of the
same upload; the ratio column is p50 / baseline p50.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import PIL
from PIL import Image

from bench.report import write_section
from bot.faces import DlibHogDetector
from bot.selfie import SelfieIntake, load_selfie
from bot.styles import CpuRecipe, StyleCatalog
from generation.backends.cpu_engine import CpuStyleEngine

ROOT = Path(__file__).resolve().parent.parent

SECTION = "## Intake + CPU style (512 px)"
UPLOAD = ROOT / "tests" / "data" / "astronaut.jpg"
SIZE = 512
TARGET_MS = 150.0


def timings_ms(fn: Callable[[], object], runs: int) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU milliseconds (all threads) of each run."""
    fn()  # warm-up: first-call allocations and lazy initialisation
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return wall, cpu


def p50_p90(times: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(times, n=10, method="inclusive")
    return statistics.median(times), q[8]


def machine() -> str:
    return (
        f"{os.cpu_count()}-core {platform.machine()}, Python {platform.python_version()}, "
        f"OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads), NumPy {np.__version__}, "
        f"Pillow {PIL.__version__}, no GPU; load average {os.getloadavg()[0]:.1f} at the "
        "end (the machine is shared: other processes were running)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()

    upload = UPLOAD.read_bytes()
    intake = SelfieIntake(DlibHogDetector())
    engine = CpuStyleEngine()
    catalog = StyleCatalog.load()

    def baseline() -> bytes:
        with Image.open(io.BytesIO(upload)) as image:
            out = io.BytesIO()
            image.convert("RGB").save(out, "JPEG", quality=90)
        return out.getvalue()

    def intake_only() -> Image.Image:
        return load_selfie(intake.process(upload).jpeg)

    selfie = intake_only()
    rows: list[tuple[str, float, float, float, float]] = []  # name, p50, p90, cpu, style p50
    base_wall, base_cpu = timings_ms(baseline, args.runs)
    base_p50, base_p90 = p50_p90(base_wall)
    intake_wall, intake_cpu = timings_ms(intake_only, args.runs)
    intake_p50, intake_p90 = p50_p90(intake_wall)
    for style in catalog:
        recipe = style.cpu

        def full(recipe: CpuRecipe = recipe) -> Image.Image:
            face = load_selfie(intake.process(upload).jpeg)
            return engine.render(face, recipe.effect, recipe.params, 7, SIZE)

        def style_only(recipe: CpuRecipe = recipe) -> Image.Image:
            return engine.render(selfie, recipe.effect, recipe.params, 7, SIZE)

        wall, cpu = timings_ms(full, args.runs)
        p50, p90 = p50_p90(wall)
        only, _ = p50_p90(timings_ms(style_only, args.runs)[0])
        rows.append((f"{style.id} ({recipe.effect})", p50, p90, statistics.median(cpu), only))

    table = [
        "| step | p50 | p90 | CPU time (p50) | style alone (p50) | ratio to baseline (p50) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| baseline: JPEG decode + encode q90 | {base_p50:.1f} ms | {base_p90:.1f} ms "
        f"| {statistics.median(base_cpu):.1f} ms | - | 1.0x |",
        f"| intake alone | {intake_p50:.1f} ms | {intake_p90:.1f} ms "
        f"| {statistics.median(intake_cpu):.1f} ms | - | {intake_p50 / base_p50:.1f}x |",
    ]
    for name, p50, p90, cpu_p50, only in rows:
        mark = "" if p50 < TARGET_MS else " (over target)"
        table.append(
            f"| intake + {name} | {p50:.1f} ms{mark} | {p90:.1f} ms | {cpu_p50:.1f} ms "
            f"| {only:.1f} ms | {p50 / base_p50:.1f}x |"
        )
    section = "\n".join(
        [
            SECTION,
            "",
            f"`bench/styles_bench.py`: per avatar, intake of the upload "
            f"(tests/data/astronaut.jpg, 512 px; decode, dlib HOG face, portrait crop, JPEG) "
            f"plus the CPU style at {SIZE} px, p50/p90 of {args.runs} runs; seed fixed. "
            f"Target: p50 < {TARGET_MS:.0f} ms per style including intake. CPU time is the "
            "process's, summed over OpenCV's threads; it is less sensitive than wall time to "
            "other load on the machine.",
            f"Machine: {machine()} Measured {datetime.now(UTC):%Y-%m-%d}.",
            "",
            *table,
            "",
        ]
    )
    print(section)
    if args.write:
        write_section(section)


if __name__ == "__main__":
    main()
