#!/usr/bin/env bash
# Train colorization on any folder of photos (DATAROOT/train, or DATAROOT itself).
# Extra arguments are passed on, e.g. --dataroot DIR or --gpu_ids -1.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/project_python.sh"
cd "$REPO_ROOT"
exec "$PYTHON" train.py --dataroot ./datasets/colorization --name color_pix2pix --model colorization "$@"
