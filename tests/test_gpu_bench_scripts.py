"""The GPU benchmark's scripts serve any operator: they name no tool or path outside the
repository, and on a machine without CUDA they stop before measuring, saying why."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
SCRIPTS = [ROOT / "bench" / "device_wheels.sh", ROOT / "bench" / "device_bench.sh"]

#: What would tie the instructions to one machine: an absolute path outside the
#: repository other than the system's own (/usr, /bin, /etc, /dev, /proc).
OUTSIDE = re.compile(r"(?:^|[^\w.$}{-])/(?!usr/|bin/|etc/|dev/|proc/)[A-Za-z][\w.-]*/")


def _gpu_benchmark_section() -> str:
    text = (ROOT / "docs" / "diffusers.md").read_text()
    start = text.index("### Running the GPU benchmark")
    return text[start : text.index("\n## ", start)]


@pytest.mark.parametrize(
    "where",
    [*SCRIPTS, "docs/diffusers.md#running-the-gpu-benchmark"],
    ids=["device_wheels.sh", "device_bench.sh", "docs"],
)
def test_no_tool_or_path_outside_the_repository(where: Path | str) -> None:
    text = where.read_text() if isinstance(where, Path) else _gpu_benchmark_section()
    found = [line.strip() for line in text.splitlines() if OUTSIDE.search(line)]
    assert found == []


def test_docs_give_both_ways_the_command_and_where_results_land() -> None:
    section = _gpu_benchmark_section()
    for needle in (
        "bash bench/device_bench.sh",
        "network access",
        "bash bench/device_wheels.sh",
        ".whl/",
        "docs/benchmarks.md",
        "bench/out/",
    ):
        assert needle in section


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse(script: Path) -> None:
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_wheels_refuse_a_malformed_python_version() -> None:
    result = subprocess.run(
        ["bash", str(SCRIPTS[0])],
        env=dict(os.environ, TARGET_PYTHON="twelve"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "TARGET_PYTHON" in result.stderr


@pytest.mark.slow
def test_bench_stops_before_measuring_without_cuda(tmp_path: Path) -> None:
    pytest.importorskip("diffusers")
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the benchmark would run")
    if (ROOT / ".whl").is_dir():
        pytest.skip(".whl/ is present: the script would install it")
    result = subprocess.run(
        ["bash", str(SCRIPTS[1])],
        env=dict(os.environ, OUT=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1
    assert "torch sees no CUDA device here" in result.stderr + result.stdout
    log = (tmp_path / "bench-sd.log").read_text()
    assert "== versions" in log
    assert "diffusers_bench.py" not in log  # stopped before the benchmark itself
