#!/usr/bin/env bash
# Measure the diffusers backend at full size on a CUDA machine: `python -m
# bench.diffusers_bench --write` prints its tables and writes them into docs/benchmarks.md,
# replacing only its own family's part ("SD-Turbo, full size (GPU)" or "SDXL, full size
# (GPU)").
#
# The one command, from the repository on the CUDA machine:
#
#     bash bench/device_bench.sh                  # FAMILY=sd (default), sdxl or both
#
# The Python packages come from whichever of these the checkout has:
# - .whl/ (built by bench/device_wheels.sh on a machine with network access, for a CUDA
#   machine without it): installed into $SITE, inside the repository, never into the
#   interpreter's own packages; $PYTHON (default python3) must have a CUDA build of torch;
# - .venv (`make install` on the CUDA machine itself, when it has network access; on Linux
#   PyPI's torch==2.13.0, which constraints.txt pins, is a CUDA build): used as it is.
#
# Where the results land:
#   docs/benchmarks.md            updated in place (the family's section), ready to commit
#   $OUT/bench-$FAMILY.log        everything printed: versions, the GPU, the tables
#   $OUT/benchmarks-$FAMILY.md    a copy of docs/benchmarks.md as this run left it
#
# Knobs (environment): FAMILY=sd|sdxl|both, COMPILE=0 (eager rows only, --no-compile),
# RUNS=N (timed runs per row; 10 by default), TIME_LIMIT=seconds (stop the benchmark after
# that long, with a message; none by default), PYTHON, SITE (default .bench-site),
# OUT (default bench/out). $SITE and $OUT are kept out of git through the checkout's
# info/exclude file.
set -euo pipefail
cd "$(dirname "$0")/.."

FAMILY=${FAMILY:-sd}
COMPILE=${COMPILE:-1}
RUNS=${RUNS:-}
TIME_LIMIT=${TIME_LIMIT:-}
SITE=${SITE:-.bench-site}
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
log="$OUT/bench-$FAMILY.log"

case "$FAMILY" in
  sd | sdxl | both) ;;
  *) echo "device_bench: FAMILY must be sd, sdxl or both, not '$FAMILY'" >&2; exit 2 ;;
esac
if exclude=$(git rev-parse --git-path info/exclude 2>/dev/null); then
  mkdir -p "$(dirname "$exclude")"
  for path in "/$SITE/" "/$OUT/"; do
    grep -qxF "$path" "$exclude" 2>/dev/null || echo "$path" >>"$exclude"
  done
fi

shopt -s nullglob
wheels=(.whl/*.whl)
if [ "${#wheels[@]}" -gt 0 ]; then
  PYTHON=${PYTHON:-python3}
  {
    echo "== install ${#wheels[@]} wheels from .whl/ into $SITE"
    "$PYTHON" -m pip install -q --disable-pip-version-check --root-user-action=ignore \
      --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "${wheels[@]}"
  } 2>&1 | tee "$log"
  export PYTHONPATH="$PWD/$SITE${PYTHONPATH:+:$PYTHONPATH}"
elif [ -x .venv/bin/python ]; then
  PYTHON=${PYTHON:-.venv/bin/python}
  SITE=""
  echo "== packages from .venv" | tee "$log"
else
  echo "device_bench: no Python packages: either 'make install' here (needs network access)," \
    "or 'bash bench/device_wheels.sh' on a machine with network access and bring its .whl/" \
    "folder here (see docs/diffusers.md, 'Running the GPU benchmark')" >&2
  exit 1
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1

{
  echo "== versions"
  # Fails unless CUDA is there and, with .whl/, the wheels' packages are the ones imported.
  "$PYTHON" - "$SITE" <<'EOF'
import sys
from pathlib import Path

import diffusers
import huggingface_hub
import tokenizers
import torch
import transformers

site = sys.argv[1]
for module in (diffusers, transformers, huggingface_hub, tokenizers):
    if site and not Path(str(module.__file__)).resolve().is_relative_to(Path(site).resolve()):
        sys.exit(f"device_bench: {module.__name__} comes from {module.__file__}, not {site}")
print(
    f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
    f"diffusers {diffusers.__version__}, transformers {transformers.__version__}, "
    f"huggingface_hub {huggingface_hub.__version__}, tokenizers {tokenizers.__version__}"
)
if not torch.cuda.is_available():
    sys.exit("device_bench: torch sees no CUDA device here")
print("GPU:", ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())))
EOF
} 2>&1 | tee -a "$log"

args=(--family "$FAMILY" --write)
[ "$COMPILE" = 0 ] && args+=(--no-compile)
[ -n "$RUNS" ] && args+=(--runs "$RUNS")
limit=()
[ -n "$TIME_LIMIT" ] && limit=(timeout -k 10 "$TIME_LIMIT")
echo "== $PYTHON -m bench.diffusers_bench ${args[*]}${TIME_LIMIT:+ (stopped after $TIME_LIMIT s)}" |
  tee -a "$log"
rc=0
${limit[@]+"${limit[@]}"} "$PYTHON" -m bench.diffusers_bench "${args[@]}" 2>&1 | tee -a "$log" || rc=$?
if [ "$rc" -ne 0 ]; then
  if [ -n "$TIME_LIMIT" ] && { [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; }; then
    echo "device_bench: stopped after TIME_LIMIT=$TIME_LIMIT s: run one family at a time" \
      "(FAMILY=sd, then FAMILY=sdxl), or try COMPILE=0 or RUNS=5" | tee -a "$log" >&2
  else
    echo "device_bench: the benchmark failed (exit $rc); see $log" | tee -a "$log" >&2
  fi
  exit "$rc"
fi
cp docs/benchmarks.md "$OUT/benchmarks-$FAMILY.md"
echo "== done in ${SECONDS} s: docs/benchmarks.md updated; $log, $OUT/benchmarks-$FAMILY.md" |
  tee -a "$log"
