#!/usr/bin/env bash
# Test the facades model of train_pix2pix.sh on all 106 test images (architecture read from its checkpoint folder).
# Extra arguments are passed on, e.g. --dataroot DIR or --gpu_ids -1.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/project_python.sh"
cd "$REPO_ROOT"
exec "$PYTHON" test.py --dataroot ./datasets/facades --name facades_pix2pix --model pix2pix --direction BtoA "$@"
