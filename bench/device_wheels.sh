#!/usr/bin/env bash
# Build a wheelhouse, .whl/, of what bench/diffusers_bench.py needs besides torch, for a
# CUDA machine that cannot download anything (bench/device_bench.sh installs it there).
#
# Run it on a machine with network access and this repository's .venv (`make install`),
# from any directory, naming the CUDA machine's Python and processor when they differ
# from this one's:
#
#     bash bench/device_wheels.sh                       # .venv's Python, x86_64
#     TARGET_PYTHON=3.12 bash bench/device_wheels.sh    # the CUDA machine runs Python 3.12
#     TARGET_ARCH=aarch64 bash bench/device_wheels.sh   # an ARM machine (Grace Hopper)
#
# Then bring the repository with its .whl/ to the CUDA machine (copy the checkout, or
# clone it there and copy .whl/ beside it) and run `bash bench/device_bench.sh` there.
#
# What goes in: diffusers, transformers, huggingface-hub, tokenizers, safetensors, peft
# and accelerate (tests/tiny_diffusion.py imports peft; diffusers loads through
# accelerate) plus everything they require on CPython TARGET_PYTHON / Linux TARGET_ARCH,
# each pinned to the version installed in .venv: the combination the test suite passed
# with. Left out: torch and the CUDA libraries (the CUDA machine's own build of torch is
# used) and numpy/pillow (its torch and other compiled packages are built against its own).
# .whl/ is kept out of git through the checkout's info/exclude file.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
DEST=.whl
ROOTS="diffusers transformers huggingface-hub tokenizers safetensors peft accelerate"
SKIP="torch triton numpy pillow nvidia-* cuda-*"

[ -x "$PYTHON" ] || { echo "device_wheels: $PYTHON not found: run 'make install' first" >&2; exit 1; }
TARGET_PYTHON=${TARGET_PYTHON:-$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')}
TARGET_ARCH=${TARGET_ARCH:-x86_64}
case "$TARGET_PYTHON" in
  3.[0-9] | 3.[0-9][0-9]) ;;
  *) echo "device_wheels: TARGET_PYTHON must look like 3.12, not '$TARGET_PYTHON'" >&2; exit 2 ;;
esac

# Keep .whl/ out of git (.gitignore is tracked; the info/exclude file is this checkout's).
if exclude=$(git rev-parse --git-path info/exclude 2>/dev/null); then
  mkdir -p "$(dirname "$exclude")"
  grep -qxF '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"
else
  echo "device_wheels: not a git checkout: keep $DEST/ out of version control yourself" >&2
fi

# The dependency closure, from the metadata installed in .venv, with environment markers
# evaluated for the CUDA machine's interpreter (not this venv's).
pins=$("$PYTHON" - "$ROOTS" "$SKIP" "$TARGET_PYTHON" "$TARGET_ARCH" <<'EOF'
import fnmatch
import importlib.metadata as md
import sys

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

roots, skip, version, arch = sys.argv[1].split(), sys.argv[2].split(), sys.argv[3], sys.argv[4]
env = default_environment() | {
    "python_version": version,
    "python_full_version": f"{version}.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": arch,
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
platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014; do
  platforms+=(--platform "${tag}_$TARGET_ARCH")
done
[ "$TARGET_ARCH" = x86_64 ] && platforms+=(--platform manylinux1_x86_64)
# shellcheck disable=SC2086  # one argument per pin
"$PYTHON" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version "$TARGET_PYTHON" --implementation cp "${platforms[@]}" \
  -d "$DEST" $pins

# Exactly one wheel per pin, nothing else (two versions of one package stop the install).
"$PYTHON" - "$DEST" "$TARGET_PYTHON" "$TARGET_ARCH" "$pins" <<'EOF'
import sys
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename

dest, python, arch, pins = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4].split()
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
print(f"{total:8.2f} MiB  total, {len(got)} wheels in {dest}/ for CPython {python} on {arch}")
EOF
