#!/usr/bin/env bash
# The benchmark on a CUDA GPU, briefly: fp32, bf16 (and fp16) with and without torch.compile, at the
# paper's setting and the batch and size sweeps. Writes gpu_benchmark.json (or the path given) and
# prints the table; add the figures, with the GPU's name, to docs/performance.md.
#
#   bash scripts/gpu_benchmark.sh [results.json]
#
# About 5 minutes on a recent GPU, most of it torch.compile's first calls (reported as first_call_s).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/project_python.sh"  # REPO_ROOT and PYTHON
cd "$REPO_ROOT"
OUT=${1:-gpu_benchmark.json}

if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "error: no CUDA device is visible to torch ($PYTHON); run this on a GPU machine" >&2
    exit 1
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$PYTHON" scripts/benchmark.py --devices cuda --amp none,bf16,fp16 --compile --iters 20 --warmup 5 --json "$OUT"
