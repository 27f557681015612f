#!/usr/bin/env bash
# Train labels -> photo on facades, as in the paper (bash datasets/download_pix2pix_dataset.sh facades first).
# Extra arguments are passed on, e.g. --dataroot DIR or --gpu_ids -1.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/project_python.sh"
cd "$REPO_ROOT"
exec "$PYTHON" train.py --dataroot ./datasets/facades --name facades_pix2pix --model pix2pix --netG unet_256 --direction BtoA --lambda_L1 100 --dataset_mode aligned --norm batch --pool_size 0 "$@"
