#!/usr/bin/env bash
# Run bench/diffusers_bench.py on a GPU machine (H100 class) without network access. First,
# on a machine with the checkout's .venv: `bash bench/device_wheels.sh` (fills .whl/ with
# diffusers, transformers and their needs; the GPU image has torch but no diffusers). Then,
# on the GPU machine, in a copy of the checkout that includes .whl/, one run per family:
#
#     FAMILY=sd bash bench/device_bench.sh
#     FAMILY=sdxl bash bench/device_bench.sh
#
# Rough, not yet measured: sd 4-6 min, sdxl 6-9 min (building and saving the random
# weights about 1-2 min, eager rows about 1 min, torch.compile and its warm-up for batches
# 1 and 2 most of the rest). The bench is stopped after CALL_LIMIT seconds with a message
# (for machines lent for a limited time); the log, written into $OUT as it goes, is kept.
# If sdxl runs out of time, COMPILE=0 gives its eager rows in about 3 min, and RUNS=5
# trims the timed runs (10 per row by default).
#
# Knobs (environment): FAMILY=sd|sdxl|both (default sd), COMPILE=0 (pass --no-compile),
# RUNS=N (timed runs per row), CALL_LIMIT=seconds (default 590).
#
# Writes into $OUT (/tmp/out where OUT is unset):
#   bench-$FAMILY.log      everything printed, versions and GPU first
#   benchmarks-$FAMILY.md  docs/benchmarks.md after `--write`, which replaces only this
#                          run's family's part ("SD-Turbo, full size (GPU)" / "SDXL, ...")
set -euo pipefail
cd "$(dirname "$0")/.."

FAMILY=${FAMILY:-sd}
COMPILE=${COMPILE:-1}
RUNS=${RUNS:-}
CALL_LIMIT=${CALL_LIMIT:-590}
OUT=${OUT:-/tmp/out}
SITE=/tmp/site
mkdir -p "$OUT"
log="$OUT/bench-$FAMILY.log"

case "$FAMILY" in
  sd | sdxl | both) ;;
  *) echo "device_bench: FAMILY must be sd, sdxl or both, not '$FAMILY'" >&2; exit 2 ;;
esac

shopt -s nullglob
wheels=(.whl/*.whl)
if [ "${#wheels[@]}" -eq 0 ]; then
  echo "device_bench: no wheels in .whl/: run 'bash bench/device_wheels.sh' where the" \
    "checkout's .venv is, then copy the checkout with .whl/ here" >&2
  exit 1
fi

{
  echo "== install ${#wheels[@]} wheels into $SITE"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-index --no-deps --no-compile \
    --no-cache-dir --upgrade --target "$SITE" "${wheels[@]}"
} 2>&1 | tee "$log"
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1

{
  echo "== versions"
  # Fails unless the carried diffusers/transformers shadow the image's and CUDA is there.
  python3 - "$SITE" <<'EOF'
import sys

import diffusers
import huggingface_hub
import tokenizers
import torch
import transformers

site = sys.argv[1]
for module in (diffusers, transformers, huggingface_hub, tokenizers):
    if not str(module.__file__).startswith(site):
        sys.exit(f"device_bench: {module.__name__} comes from {module.__file__}, not {site}")
print(
    f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
    f"diffusers {diffusers.__version__}, transformers {transformers.__version__}, "
    f"huggingface_hub {huggingface_hub.__version__}, tokenizers {tokenizers.__version__}"
)
if not torch.cuda.is_available():
    sys.exit("device_bench: torch sees no CUDA device here")
EOF
  nvidia-smi -L
} 2>&1 | tee -a "$log"

args=(--family "$FAMILY" --write)
[ "$COMPILE" = 0 ] && args+=(--no-compile)
[ -n "$RUNS" ] && args+=(--runs "$RUNS")
left=$((CALL_LIMIT - SECONDS))
if [ "$left" -lt 30 ]; then
  echo "device_bench: only ${left} s left of CALL_LIMIT=${CALL_LIMIT}" | tee -a "$log" >&2
  exit 1
fi
echo "== python3 -m bench.diffusers_bench ${args[*]} (stopped after ${left} s)" | tee -a "$log"
rc=0
timeout -k 10 "$left" python3 -m bench.diffusers_bench "${args[@]}" 2>&1 | tee -a "$log" || rc=$?
if [ "$rc" -ne 0 ]; then
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "device_bench: stopped after ${left} s, before CALL_LIMIT: split the work" \
      "(FAMILY=sd / FAMILY=sdxl), or try COMPILE=0 or RUNS=5" | tee -a "$log" >&2
  else
    echo "device_bench: the benchmark failed (exit $rc); see $log" | tee -a "$log" >&2
  fi
  exit "$rc"
fi
cp docs/benchmarks.md "$OUT/benchmarks-$FAMILY.md"
echo "== done in ${SECONDS} s: $log, $OUT/benchmarks-$FAMILY.md" | tee -a "$log"
