#!/usr/bin/env bash
# Quality run: train labels -> photo (BtoA) on the facades train split at 128x128 for a fixed number of
# iterations, test on the test split in train mode (the paper's) and --eval mode, and print L1, PSNR
# and SSIM with the training wall-clock time and the machine's load.
#
# Usage: bash scripts/quality_facades.sh DATAROOT [--iters N] [--name NAME] [--checkpoints_dir DIR]
#                                        [--results_dir DIR] [--segmenter PATH] [--untrained] [train.py options...]
#   DATAROOT   the facades folder (train/ and test/, photo left, labels right)
#   --iters    training iterations at batch size 1 (default 2000, or $ITERS), rounded to whole epochs of
#              the train split: the first epochs at the paper's constant rate, the last half (rounded
#              down) decaying to zero, e.g. 2000 on 400 images = 3 + 2 epochs
#   --segmenter  a file from scripts/train_segmenter.py: also the semantic score (pixel accuracy, mean class
#              accuracy, mean IoU against the input labels; the real photos' score is the ceiling)
#   --untrained  skip training and test the freshly initialised generator (a baseline)
#   With --ema_decay D (e.g. 0.999), the average of the generator's weights is tested too.
# Other options go to train.py after the paper's settings, so they override them, e.g.
#   --lambda_GAN 0 (the L1-only baseline) or --seed 1. PYTHON=... overrides the interpreter.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/project_python.sh"  # REPO_ROOT and PYTHON

usage() { sed -n '6,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
dataroot="$1"; shift
iters="${ITERS:-2000}"
name=
checkpoints_dir=./checkpoints
results_dir=./results
untrained=
segmenter=()
train_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --iters) iters="${2:?--iters needs a number}"; shift 2 ;;
        --name) name="${2:?--name needs a value}"; shift 2 ;;
        --checkpoints_dir) checkpoints_dir="${2:?--checkpoints_dir needs a folder}"; shift 2 ;;
        --results_dir) results_dir="${2:?--results_dir needs a folder}"; shift 2 ;;
        --segmenter) segmenter=(--segmenter "$(realpath "${2:?--segmenter needs a file}")"); shift 2 ;;
        --untrained) untrained=1; shift ;;
        -h|--help) usage ;;
        *) train_args+=("$1"); shift ;;
    esac
done
for split in train test; do
    if [ ! -d "$dataroot/$split" ]; then
        echo "error: $dataroot/$split is not a folder; DATAROOT must hold the facades train/ and test/ splits" >&2
        exit 2
    fi
done
if ! [[ "$iters" =~ ^[0-9]+$ ]] || [ "$iters" -lt 1 ]; then
    echo "error: --iters $iters: give a positive number of iterations" >&2
    exit 2
fi
name="${name:-facades_quality_${iters}}"
# Absolute paths: train.py and test.py run from the repository root.
mkdir -p "$checkpoints_dir" "$results_dir"
dataroot="$(cd "$dataroot" && pwd)"
checkpoints_dir="$(cd "$checkpoints_dir" && pwd)"
results_dir="$(cd "$results_dir" && pwd)"
cd "$REPO_ROOT"

images=$(find "$dataroot/train" -maxdepth 1 -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) | wc -l)
[ "$images" -gt 0 ] || { echo "error: no images in $dataroot/train" >&2; exit 2; }
epochs=$(( (iters + images / 2) / images ))
[ "$epochs" -ge 1 ] || epochs=1
n_epochs_decay=$(( epochs / 2 ))
n_epochs=$(( epochs - n_epochs_decay ))

# The paper's settings at 128x128: U-Net 128, random jitter (resize to 143, crop 128) and mirroring. The rest
# of them are train.py's defaults (70x70 PatchGAN, batch 1, lr 0.0002, beta1 0.5, lambda_L1 100) and are not
# typed here, so that --recipe, which only sets what was not typed, can change them.
common=(--dataroot "$dataroot" --name "$name" --checkpoints_dir "$checkpoints_dir" --model pix2pix
        --direction BtoA)
train_opts=("${common[@]}" --netG unet_128 --load_size 143 --crop_size 128
            --n_epochs "$n_epochs" --n_epochs_decay "$n_epochs_decay" --display_id 0 --seed 0 "${train_args[@]}")

if [ -n "$untrained" ]; then
    echo "== $name: untrained generator"
else
    echo "== $name: $((epochs * images)) iterations ($images images x $epochs epochs: $n_epochs constant, $n_epochs_decay decaying)"
fi
load_before="$(uptime)"
start=$(date +%s.%N)
if [ -n "$untrained" ]; then
    # The freshly initialised networks, saved as train.py would save them.
    "$PYTHON" - "${train_opts[@]}" <<'PY'
import sys
import torch
from models import create_model
from options.train_options import TrainOptions
opt = TrainOptions().parse(sys.argv[1:])
torch.manual_seed(opt.seed)
create_model(opt).save_networks('latest')
PY
else
    "$PYTHON" train.py "${train_opts[@]}"
fi
end=$(date +%s.%N)
load_after="$(uptime)"

# Test on the whole 256x256 images resized to 128x128 (no crop, no flip), in both BatchNorm/dropout modes:
# the trained generator and, when training kept one (--ema_decay), the average of its weights.
suffixes=("")
ema="$checkpoints_dir/$name/latest_net_G_ema.pth"
# Not one left from an earlier run of the same name: saving writes the average after the generator.
[ -f "$ema" ] && ! [ "$checkpoints_dir/$name/latest_net_G.pth" -nt "$ema" ] && suffixes+=(_ema)
for suffix in "${suffixes[@]}"; do
    for mode in train eval; do
        flag=(); [ "$mode" = eval ] && flag=(--eval)
        "$PYTHON" test.py "${common[@]}" --load_size 128 --crop_size 128 --model_suffix "$suffix" \
            --results_dir "$results_dir/${mode}_mode$suffix" "${segmenter[@]}" "${flag[@]}"
    done
done

"$PYTHON" - "$results_dir" "$name" "$start" "$end" "$untrained" "$load_before" "$load_after" "${suffixes[@]}" <<'PY'
import json
import os
import sys

results_dir, name, start, end, untrained, load_before, load_after, *suffixes = sys.argv[1:]
print(f'\n== quality of {name} on the facades test split (labels -> photo, 128x128)')
print(f'{"generator":<14} {"test mode":<10} {"images":>6} {"L1":>7} {"PSNR (dB)":>10} {"SSIM":>7} '
      f'{"pixel acc":>9} {"class acc":>9} {"mean IoU":>8}')
ceiling = None
for suffix in suffixes:
    generator = 'G_ema (EMA)' if suffix else 'G'
    for mode in ('train', 'eval'):
        with open(os.path.join(results_dir, f'{mode}_mode{suffix}', name, 'test_latest', 'metrics.json')) as f:
            report = json.load(f)
        mean = report['mean']
        semantic = report.get('semantic')
        figures = ''
        if semantic:
            figures = ' '.join(f'{semantic["output"][k]:>9.4f}' for k in ('pixel_accuracy', 'class_accuracy', 'mean_iou'))
            ceiling = semantic['target']
        print(f'{generator:<14} {mode:<10} {report["count"]:>6} {mean["l1"]:>7.4f} {mean["psnr"]:>10.2f} '
              f'{mean["ssim"]:>7.4f} {figures}')
if ceiling:
    print(f'{"real photos":<14} {"(ceiling)":<10} {"":>6} {"":>7} {"":>10} {"":>7} ' +
          ' '.join(f'{ceiling[k]:>9.4f}' for k in ('pixel_accuracy', 'class_accuracy', 'mean_iou')))
seconds = float(end) - float(start)
what = 'initialising (untrained)' if untrained else 'training'
print(f'{what}: {seconds:.0f} s = {seconds / 60:.1f} min wall clock')
print(f'load before: {load_before.strip()}')
print(f'load after:  {load_after.strip()}')
PY
