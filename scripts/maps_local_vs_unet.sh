#!/usr/bin/env bash
# Equal wall clock at 512x512 on maps (aerial -> map): the paper's unet_256 against pix2pixHD's coarse-to-fine
# schedule (--netG global at 256x256, then --netG local at 512x512 with the global part loaded, fixed for the
# first local epoch). Both arms run at once, one thread each, so they share the machine alike; the epoch
# counts are chosen from one-thread iteration costs measured beforehand (docs/performance.md) so that both
# arms take about the same time, and each arm's real wall clock is printed. Then test.py scores both on the
# whole test split at 512x512 in the paper's test mode, and OUTDIR/comparison.jpg shows the middle 256x256 of
# three test images at full resolution: aerial, U-Net, coarse-to-fine, real map. Everything else is the
# paper's recipe (basic D, lsgan, lambda_L1 100, batch 1).
#
# Usage: bash scripts/maps_local_vs_unet.sh MAPS_DATAROOT OUTDIR
#   MAPS_DATAROOT  the maps folder (train/ and test/, aerial left, map right)
#   OUTDIR         checkpoints/, results/ and the logs go here
# TRAIN_IMAGES (default 100) is --max_dataset_size, so that epochs are short enough to split the time;
# UNET_EPOCHS, GLOBAL_EPOCHS, LOCAL_EPOCHS (default 5+4, 2+2, 1+1) are "CONSTANT+DECAY" epoch counts.
# SIZE (default 512; 256, 768, 1024: unet_256 takes multiples of 256) replaces 512 everywhere (the global run
# at half of it).
# NGF (default 32) is the local generator's --ngf; the U-Net and the global generator get twice it (the defaults: 64).
# NUM_TEST (default 100) test images. PYTHON=... overrides the interpreter.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/project_python.sh"  # REPO_ROOT and PYTHON

[ $# -eq 2 ] || { sed -n '10,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
for split in train test; do
    [ -d "$1/$split" ] || { echo "error: $1/$split is not a folder; give the maps dataset's folder" >&2; exit 2; }
done
size="${SIZE:-512}"
if ! [[ "$size" =~ ^[0-9]+$ ]] || [ "$size" -lt 256 ] || [ $((size % 256)) -ne 0 ]; then
    echo "error: SIZE=$size: give a multiple of 256 (the sizes unet_256 takes), e.g. 512" >&2
    exit 2
fi
ngf="${NGF:-32}"
dataroot="$(cd "$1" && pwd)"
mkdir -p "$2"
out="$(cd "$2" && pwd)"
images="${TRAIN_IMAGES:-100}"
IFS=+ read -r unet_constant unet_decay <<< "${UNET_EPOCHS:-5+4}"
IFS=+ read -r global_constant global_decay <<< "${GLOBAL_EPOCHS:-2+2}"
IFS=+ read -r local_constant local_decay <<< "${LOCAL_EPOCHS:-1+1}"
cd "$REPO_ROOT"
export OMP_NUM_THREADS=1

common=(--dataroot "$dataroot" --checkpoints_dir "$out/checkpoints" --direction AtoB --seed 1
        --max_dataset_size "$images" --display_id 0 --print_freq 100 --save_epoch_freq 1000)
# Random crops of a 1.117x resize, the paper's 286/256.
at_full=(--load_size $((size * 286 / 256)) --crop_size "$size")
at_half=(--load_size $((size * 143 / 256)) --crop_size $((size / 2)))

train_unet() {
    "$PYTHON" train.py "${common[@]}" "${at_full[@]}" --name maps_unet --netG unet_256 --ngf $((ngf * 2)) \
        --n_epochs "$unet_constant" --n_epochs_decay "$unet_decay"
}
train_coarse_to_fine() {
    "$PYTHON" train.py "${common[@]}" "${at_half[@]}" --name maps_global --netG global --ngf $((ngf * 2)) \
        --n_epochs "$global_constant" --n_epochs_decay "$global_decay"
    "$PYTHON" train.py "${common[@]}" "${at_full[@]}" --name maps_local --netG local --ngf "$ngf" \
        --load_global "$out/checkpoints/maps_global/latest_net_G.pth" --niter_fix_global "$local_constant" \
        --n_epochs "$local_constant" --n_epochs_decay "$local_decay"
}
timed() {  # NAME FUNCTION: run it, log it, and write its wall clock in seconds to OUT/NAME.seconds
    local start=$SECONDS
    "$2" > "$out/$1.log" 2>&1
    echo $((SECONDS - start)) > "$out/$1.seconds"
}

timed unet train_unet & unet=$!
timed coarse_to_fine train_coarse_to_fine & coarse_to_fine=$!
failed=
wait $unet || failed=1
wait $coarse_to_fine || failed=1
[ -z "$failed" ] || { echo "error: a training run failed; see $out/*.log" >&2; exit 1; }

tests=()
for name in maps_unet maps_local; do
    "$PYTHON" test.py --dataroot "$dataroot" --checkpoints_dir "$out/checkpoints" --results_dir "$out/results" \
        --name "$name" --direction AtoB --load_size "$size" --crop_size "$size" --num_test "${NUM_TEST:-100}" \
        > "$out/$name.test.log" 2>&1 & tests+=($!)
done
wait "${tests[0]}" || failed=1
wait "${tests[1]}" || failed=1
[ -z "$failed" ] || { echo "error: a test run failed; see $out/*.test.log" >&2; exit 1; }
for arm in unet:maps_unet coarse_to_fine:maps_local; do
    echo "${arm%%:*}: trained in $(cat "$out/${arm%%:*}.seconds") s; $(grep '^L1 ' "$out/${arm#*:}.test.log")"
done
"$PYTHON" - "$out" "$size" <<'PICTURE'
import sys
from pathlib import Path
from PIL import Image

out = Path(sys.argv[1])
images = {name: out / 'results' / name / 'test_latest' / 'images' for name in ('maps_unet', 'maps_local')}
stems = sorted((p.name[:-len('_fake_B.png')] for p in images['maps_unet'].glob('*_fake_B.png')),
               key=lambda stem: (len(stem), stem))[:3]  # numbered files in numeric order
panels = [('maps_unet', 'real_A'), ('maps_unet', 'fake_B'), ('maps_local', 'fake_B'), ('maps_unet', 'real_B')]
side = int(sys.argv[2]) // 2  # the middle half of each image, at full resolution
picture = Image.new('RGB', (side * len(panels), side * len(stems)))
for row, stem in enumerate(stems):
    for column, (name, label) in enumerate(panels):
        image = Image.open(images[name] / f'{stem}_{label}.png')
        box = (side // 2, side // 2, side // 2 + side, side // 2 + side)
        picture.paste(image.crop(box), (side * column, side * row))
picture.save(out / 'comparison.jpg', quality=90)
print(f'{out / "comparison.jpg"}: test images {", ".join(stems)}; aerial, U-Net, coarse-to-fine, real map')
PICTURE
