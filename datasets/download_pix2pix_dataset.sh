#!/usr/bin/env bash
# Usage: bash datasets/download_pix2pix_dataset.sh NAME
# Downloads NAME.tar.gz and extracts it to datasets/NAME. Works from any
# directory. Environment overrides (used by the tests, handy for mirrors):
#   PIX2PIX_DATASET_URL   base URL (default: the Berkeley server)
#   PIX2PIX_DATASETS_DIR  where NAME/ is created (default: datasets/ of this repo)
set -euo pipefail

NAMES="facades maps edges2shoes edges2handbags night2day cityscapes"
NAME="${1:-}"
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/project_python.sh"  # REPO_ROOT and PYTHON
BASE_URL="${PIX2PIX_DATASET_URL:-http://efrosgans.eecs.berkeley.edu/pix2pix/datasets}"
DATASETS_DIR="${PIX2PIX_DATASETS_DIR:-$REPO_ROOT/datasets}"

if [[ ! "$NAME" =~ ^[a-z0-9_]+$ || " $NAMES " != *" $NAME "* ]]; then
    echo "Unknown dataset '$NAME'. Available datasets are: ${NAMES// /, }" >&2
    exit 1
fi

if [[ "$NAME" == cityscapes ]]; then
    cat >&2 <<'EOF'
The Cityscapes licence does not allow us to redistribute it; download it yourself:
 1. Register at https://www.cityscapes-dataset.com and download
    gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip; unzip both.
 2. Make folders A (photos) and B (label maps) with matching file names, resized
    to 256x256 as in the paper, using Cityscapes' val split as test, e.g.
      A/train/aachen_000000_000019.png <- leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png
      B/train/aachen_000000_000019.png <- gtFine/train/aachen/aachen_000000_000019_gtFine_color.png
 3. python datasets/combine_A_and_B.py --fold_A A --fold_B B --fold_AB datasets/cityscapes
Then train labels->photo with --dataroot ./datasets/cityscapes --direction BtoA.
EOF
    exit 1
fi

if [[ -e "$DATASETS_DIR/$NAME" ]]; then
    echo "$DATASETS_DIR/$NAME already exists; delete it to download again."
    exit 0
fi

made_datasets_dir=
[[ -d "$DATASETS_DIR" ]] || made_datasets_dir=1
mkdir -p "$DATASETS_DIR"
# Absolute, because the extraction step runs from the repo root.
DATASETS_DIR="$(cd "$DATASETS_DIR" && pwd)"
TARGET="$DATASETS_DIR/$NAME"
# Everything in flight lives in WORK (same file system as TARGET, so the final
# mv is an atomic rename); it goes whatever happens, and so does a datasets
# folder we had to create, so a failure leaves nothing behind.
WORK="$(mktemp -d "$DATASETS_DIR/.$NAME.download.XXXXXX")"
cleanup() {
    rm -rf "$WORK"
    [[ -z "$made_datasets_dir" ]] || rmdir "$DATASETS_DIR" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    echo "error: $*" >&2
    exit 1
}

URL="$BASE_URL/$NAME.tar.gz"
echo "Downloading $URL"
command -v curl >/dev/null || fail "curl is needed to download; install it first"
curl -fL --progress-bar -o "$WORK/$NAME.tar.gz" "$URL" || fail "download of $URL failed"

echo "Checking and extracting $NAME.tar.gz"
(cd "$REPO_ROOT" && "$PYTHON" -m util.archives "$WORK/$NAME.tar.gz" "$WORK/extracted") ||
    fail "$URL is not a complete, safe archive; nothing was extracted"
[[ -d "$WORK/extracted/$NAME" ]] || fail "$URL has no top-level folder $NAME/"
# Into the folder, not onto TARGET: should a parallel run have created TARGET
# meanwhile, this fails instead of nesting NAME inside it.
mv "$WORK/extracted/$NAME" "$DATASETS_DIR/"
echo "Dataset ready in $TARGET"
