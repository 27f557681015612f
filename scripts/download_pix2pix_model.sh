#!/usr/bin/env bash
# Usage: bash scripts/download_pix2pix_model.sh NAME
# Downloads a pretrained pix2pix generator to checkpoints/NAME_pretrained/latest_net_G.pth,
# where `python test.py --model test --name NAME_pretrained ...` looks for it.
# Works from any directory. Environment overrides (used by the tests, handy for mirrors):
#   PIX2PIX_MODEL_URL         base URL (default: the Berkeley server)
#   PIX2PIX_CHECKPOINTS_DIR   checkpoints folder (default: checkpoints/ of this repo)
set -euo pipefail

NAMES="facades_label2photo edges2shoes sat2map map2sat day2night"
NAME="${1:-}"
source "$(dirname "${BASH_SOURCE[0]}")/project_python.sh"  # REPO_ROOT and PYTHON
BASE_URL="${PIX2PIX_MODEL_URL:-http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch}"
CHECKPOINTS_DIR="${PIX2PIX_CHECKPOINTS_DIR:-$REPO_ROOT/checkpoints}"

if [[ ! "$NAME" =~ ^[a-z0-9_]+$ || " $NAMES " != *" $NAME "* ]]; then
    echo "Unknown model '$NAME'. Available models are: ${NAMES// /, }" >&2
    exit 1
fi

made_checkpoints_dir=
[[ -d "$CHECKPOINTS_DIR" ]] || made_checkpoints_dir=1
mkdir -p "$CHECKPOINTS_DIR"
# The download waits in WORK (same file system, so the final mv is an atomic
# rename that never exposes a partial file); WORK goes whatever happens, and so
# does a checkpoints folder we had to create, so a failure leaves nothing behind
# and an earlier good download untouched.
WORK="$(mktemp -d "$CHECKPOINTS_DIR/.$NAME.download.XXXXXX")"
cleanup() {
    rm -rf "$WORK"
    [[ -z "$made_checkpoints_dir" ]] || rmdir "$CHECKPOINTS_DIR" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    echo "error: $*" >&2
    exit 1
}

URL="$BASE_URL/$NAME.pth"
DOWNLOAD="$WORK/latest_net_G.pth"
echo "Downloading $URL"
command -v curl >/dev/null || fail "curl is needed to download; install it first"
curl -fL --progress-bar -o "$DOWNLOAD" "$URL" || fail "download of $URL failed"

# weights_only refuses pickled code, so checking an untrusted file is safe.
if ! problem="$("$PYTHON" -c 'import sys, torch
try:
    state = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
except Exception as error:
    sys.exit(f"{type(error).__name__}: {str(error).strip().partition(chr(10))[0]}")
if not isinstance(state, dict):
    sys.exit(f"it holds a {type(state).__name__}, not a state_dict")' "$DOWNLOAD" 2>&1)"; then
    fail "$URL is not a loadable PyTorch state_dict: ${problem##*$'\n'}"
fi

TARGET_DIR="$CHECKPOINTS_DIR/${NAME}_pretrained"
mkdir -p "$TARGET_DIR"
mv -f "$DOWNLOAD" "$TARGET_DIR/latest_net_G.pth"
echo "Model ready at $TARGET_DIR/latest_net_G.pth"
