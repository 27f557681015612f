#!/usr/bin/env bash
# Colourise DATAROOT/test (or DATAROOT) with the model of train_colorization.sh.
# Extra arguments are passed on, e.g. --dataroot DIR or --gpu_ids -1.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/project_python.sh"
cd "$REPO_ROOT"
exec "$PYTHON" test.py --dataroot ./datasets/colorization --name color_pix2pix --model colorization "$@"
