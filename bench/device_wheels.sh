#!/usr/bin/env bash
# Fetch into .whl/ the wheels that bench/diffusers_bench.py needs on a GPU machine without
# network access whose image has python3 3.12, torch (CUDA), numpy and pillow but no
# diffusers: the Hugging Face stack travels there with the checkout, as wheels in .whl/,
# and bench/device_bench.sh installs them.
#
# Run here, in any directory, after `make install` (the versions come from .venv):
#
#     bash bench/device_wheels.sh
#
# What goes in: diffusers, transformers, huggingface-hub, tokenizers, safetensors, peft
# and accelerate (tests/tiny_diffusion.py imports peft; diffusers loads through
# accelerate) plus everything they require on CPython 3.12 / Linux x86_64, each pinned to
# the version installed in .venv: the combination the test suite passed with. Left out:
# torch and everything CUDA (the image's own build must be used) and numpy/pillow
# (compiled against by the image's torch, torchvision and opencv).
# The set must stay under MAX_MIB (small enough to copy along with the checkout).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
DEST=.whl
MAX_MIB=${MAX_MIB:-50}
ROOTS="diffusers transformers huggingface-hub tokenizers safetensors peft accelerate"
SKIP="torch triton numpy pillow nvidia-* cuda-*"

[ -x "$PYTHON" ] || { echo "device_wheels: $PYTHON not found: run 'make install' first" >&2; exit 1; }

# Keep .whl/ out of git (the working tree's .gitignore is tracked; info/exclude is not).
if [ -d .git ]; then
  mkdir -p .git/info
  grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
else
  echo "device_wheels: .git is not a folder here; add /.whl/ to this checkout's exclude file" >&2
fi

# The dependency closure, from the metadata installed in .venv, with environment markers
# evaluated for the device's interpreter (not this venv's).
pins=$("$PYTHON" - "$ROOTS" "$SKIP" <<'EOF'
import fnmatch
import importlib.metadata as md
import sys

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

roots, skip = sys.argv[1].split(), sys.argv[2].split()
env = default_environment() | {
    "python_version": "3.12",
    "python_full_version": "3.12.3",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "extra": "",
}
installed = {canonicalize_name(d.metadata["Name"]): d for d in md.distributions()}
seen: dict[str, str] = {}
missing: list[str] = []
queue = [canonicalize_name(r) for r in roots]
while queue:
    name = queue.pop()
    if name in seen or any(fnmatch.fnmatch(name, s) for s in skip):
        continue
    dist = installed.get(name)
    if dist is None:
        missing.append(name)
        continue
    seen[name] = dist.version
    for line in dist.requires or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(env):
            queue.append(canonicalize_name(req.name))
# Each pinned version must satisfy every requirement on it (an older venv could hold a
# version that works on 3.11 only by accident of markers).
for name in seen:
    for line in installed[name].requires or []:
        req = Requirement(line)
        dep = canonicalize_name(req.name)
        if dep in seen and (req.marker is None or req.marker.evaluate(env)):
            if not req.specifier.contains(seen[dep], prereleases=True):
                missing.append(f"{dep}=={seen[dep]} (but {name} wants {req})")
if missing:
    sys.exit("device_wheels: not installed in the venv or inconsistent: " + ", ".join(missing))
print("\n".join(f"{n}=={v}" for n, v in sorted(seen.items())))
EOF
)

rm -rf "$DEST"
mkdir -p "$DEST"
# shellcheck disable=SC2086  # one argument per pin
"$PYTHON" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 \
  -d "$DEST" $pins

# Exactly one wheel per pin, nothing else (two versions of one package stop the install).
"$PYTHON" - "$DEST" "$MAX_MIB" "$pins" <<'EOF'
import sys
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename

dest, max_mib, pins = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3].split()
wanted = dict(p.split("==") for p in pins)
got: dict[str, list[Path]] = {}
for wheel in sorted(dest.glob("*.whl")):
    name, version, _, tags = parse_wheel_filename(wheel.name)
    got.setdefault(canonicalize_name(name), []).append(wheel)
    if wanted.get(canonicalize_name(name)) != str(version):
        sys.exit(f"device_wheels: unexpected wheel {wheel.name}")
    print(f"{wheel.stat().st_size / 2**20:8.2f} MiB  {wheel.name}")
problems = [n for n in wanted if len(got.get(n, [])) != 1]
if problems:
    sys.exit(f"device_wheels: want one wheel each of {', '.join(problems)}")
total = sum(w.stat().st_size for ws in got.values() for w in ws) / 2**20
print(f"{total:8.2f} MiB  total, {len(got)} wheels in {dest}/ (limit {max_mib:.0f} MiB)")
if total > max_mib:
    sys.exit(f"device_wheels: {total:.1f} MiB is over {max_mib:.0f} MiB")
EOF
