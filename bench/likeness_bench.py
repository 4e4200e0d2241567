"""Likeness per style: how much each CPU style's avatars look like the person, measured.

Run from the repository root: `.venv/bin/python -m bench.likeness_bench [--seeds N] [--write]`.
`--write` replaces the "Likeness per style" section of docs/benchmarks.md.

The people: the four public-domain portraits of tests/data (four different people; see
tests/data/README.md), each through the bot's real intake. For every shipped style, every
person and seeds 1..N, the CPU style engine renders a 512 px avatar and the worker's
embedder (`generation.face_identity.DlibFaceIdentity`, dlib's ResNet) scores it against
the person's selfie crop. Reported per style: median and worst score, the share at or above
"same person" (score 0.5, distance 0.6), images with no face found, and those found only by
the guided second look. Calibration: the distance between every two different people of
the set, and between each intake crop and its original photo. Cost: CPU time of one
image's likeness on one thread (detection, alignment, embedding), with a baseline measured
in the same run (a PNG encode of the same 512 px avatar, which every worker does anyway).
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import dlib
import numpy as np
from PIL import Image

from bench.report import write_section
from bot.likeness import SAME_PERSON_DISTANCE, Likeness
from bot.styles import StyleCatalog
from generation.backends.cpu_engine import CpuStyleEngine
from generation.face_identity import DlibFaceIdentity, Identity, distance
from tests.people import PEOPLE, selfie_image

SECTION = "## Likeness per style"
SIZE = 512
TARGET_MS = 100.0


@dataclass
class StyleRow:
    style: str
    effect: str
    likeness: list[Likeness]
    guided: int
    cpu_ms: list[float]

    def scores(self) -> list[float]:
        return [lk.score for lk in self.likeness if lk.score is not None]

    def cells(self) -> str:
        scores = self.scores()
        no_face = sum(lk.score is None for lk in self.likeness)
        same = sum(lk.same_person for lk in self.likeness)
        median = f"{statistics.median(scores):.2f}" if scores else "-"
        worst = "no face" if no_face else f"{min(scores):.2f}"
        share = f"{same}/{len(self.likeness)} ({100 * same / len(self.likeness):.0f}%)"
        return (
            f"| {self.style} ({self.effect}) | {median} | {worst} | {share} | {no_face} "
            f"| {self.guided} | {statistics.median(self.cpu_ms):.0f} ms |"
        )


def cpu_ms(fn: Callable[[], object]) -> tuple[object, float]:
    """`fn()` and the CPU time it took on this thread (less sensitive to other load)."""
    start = time.thread_time()
    value = fn()
    return value, (time.thread_time() - start) * 1000


def machine() -> str:
    return (
        f"{os.cpu_count()}-core {platform.machine()}, Python {platform.python_version()}, "
        f"dlib {dlib.__version__} (AVX {'on' if dlib.USE_AVX_INSTRUCTIONS else 'off'}, no BLAS), "
        f"NumPy {np.__version__}, no GPU; load average {os.getloadavg()[0]:.1f} at the end "
        "(the machine is shared: other processes were running)"
    )


def calibration(
    identity: DlibFaceIdentity, references: dict[str, Identity], rows: list[StyleRow]
) -> list[str]:
    """Distances between different people, and between each crop and its original."""
    lines = ["| pair | distance | score |", "|---|---:|---:|"]
    apart = []
    for a, b in itertools.combinations(references, 2):
        d = distance(references[a].embedding, references[b].embedding)
        apart.append(d)
        lines.append(f"| {a} / {b} (different people) | {d:.3f} | {Likeness(d).score:.2f} |")
    for name, reference in references.items():
        with Image.open(PEOPLE[name]) as original:
            found = identity.identify(np.asarray(original.convert("RGB")))
        assert found is not None, name
        d = distance(reference.embedding, found.embedding)
        lines.append(
            f"| {name}: intake crop / original photo (same person) | {d:.3f} "
            f"| {Likeness(d).score:.2f} |"
        )
    avatars = [lk.distance for row in rows for lk in row.likeness if lk.distance is not None]
    lines.append(
        f"\nDifferent people: {min(apart):.3f}-{max(apart):.3f} apart (median "
        f"{statistics.median(apart):.3f}). Avatars of the right person, every style: "
        f"{min(avatars):.3f}-{max(avatars):.3f} (median {statistics.median(avatars):.3f}). "
        f"dlib's {SAME_PERSON_DISTANCE} line falls between the two on this set"
        + (
            ""
            if max(avatars) < SAME_PERSON_DISTANCE < min(apart)
            else " for all but the avatars above it (listed per style as below same person)"
        )
        + ". The crop-to-original rows compare two framings of one photo: a floor for the "
        "same person, not the spread between two photos of them."
    )
    return lines


def style_rows(
    identity: DlibFaceIdentity, references: dict[str, Identity], seeds: range
) -> list[StyleRow]:
    engine = CpuStyleEngine()
    rows = []
    for style in StyleCatalog.load():
        row = StyleRow(style.id, style.cpu.effect, [], 0, [])
        for name, seed in itertools.product(references, seeds):
            avatar = engine.render(
                selfie_image(name), style.cpu.effect, style.cpu.params, seed, SIZE
            )
            pixels = np.asarray(avatar)
            likeness, took = cpu_ms(lambda: identity.likeness(references[name], pixels))  # noqa: B023
            assert isinstance(likeness, Likeness)
            row.likeness.append(likeness)
            row.cpu_ms.append(took)
            if likeness.distance is not None and identity.identify(pixels) is None:
                row.guided += 1
        rows.append(row)
        print(row.cells(), flush=True)
    return rows


def png_baseline_ms(identity: DlibFaceIdentity, seeds: range) -> float:
    image = CpuStyleEngine().render(selfie_image("obama"), "oil", {}, 1, SIZE)

    def encode() -> bytes:
        out = io.BytesIO()
        image.save(out, "PNG")
        return out.getvalue()

    return statistics.median(cpu_ms(encode)[1] for _ in range(max(10, len(seeds) * 4)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds per style and person")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    seeds = range(1, args.seeds + 1)

    load_started = time.perf_counter()
    identity = DlibFaceIdentity(max_parallel=1)
    load_s = time.perf_counter() - load_started
    references: dict[str, Identity] = {}
    selfie_ms = []
    for name in PEOPLE:
        pixels = np.asarray(selfie_image(name))
        found, took = cpu_ms(lambda: identity.identify(pixels))  # noqa: B023
        assert isinstance(found, Identity), name
        references[name] = found
        selfie_ms.append(took)

    rows = style_rows(identity, references, seeds)
    baseline = png_baseline_ms(identity, seeds)
    all_ms = [ms for row in rows for ms in row.cpu_ms]
    p50, p90 = statistics.median(all_ms), statistics.quantiles(all_ms, n=10)[8]
    below = [row.style for row in rows if len(row.scores()) and
             sum(lk.same_person for lk in row.likeness) * 2 < len(row.likeness)]  # fmt: skip

    section = "\n".join(
        [
            SECTION,
            "",
            "`bench/likeness_bench.py`: every shipped style's CPU recipe at "
            f"{SIZE} px over {len(PEOPLE)} different people (tests/data, public domain: "
            f"{', '.join(PEOPLE)}) and seeds {seeds.start}-{seeds.stop - 1}, each avatar "
            "scored against its person's intake crop by the worker's embedder (dlib ResNet, "
            "5-point alignment). Score = 1 - distance / 1.2, clamped to 0..1; 0.5 (distance "
            f'{SAME_PERSON_DISTANCE}) is dlib\'s "same person" line.',
            f"Machine: {machine()}. Measured {datetime.now(UTC):%Y-%m-%d}.",
            "",
            "| style | median score | worst | at or above same person | no face "
            "| found by the guided look | likeness CPU time (p50) |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *(row.cells() for row in rows),
            "",
            'Below "same person" on most images: ' + (", ".join(below) if below else "none") + ".",
            "",
            "Embedder cost, CPU time on one thread per 512 px avatar (detect on a 256 px "
            "copy, a 512 px second look only when that finds nothing, align, embed): "
            f"p50 {p50:.0f} ms, p90 {p90:.0f} ms (target < {TARGET_MS:.0f} ms); baseline in "
            f"the same run, a PNG encode of one 512 px avatar: {baseline:.0f} ms "
            f"(ratio {p50 / baseline:.1f}x). A selfie crop, once per job: p50 "
            f"{statistics.median(selfie_ms):.0f} ms. Loading the models: {load_s:.2f} s, once "
            "per process.",
            "",
            "Calibration on the same photos (Euclidean distance of the 128-D embeddings):",
            "",
            *calibration(identity, references, rows),
            "",
        ]
    )
    print(section)
    if args.write:
        write_section(section)


if __name__ == "__main__":
    main()
