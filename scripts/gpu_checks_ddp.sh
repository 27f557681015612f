#!/usr/bin/env bash
# Multi-process training on CUDA (issue 5), for a machine with GPUs: torchrun + DistributedDataParallel
# with nccl, --norm batch and --norm syncbatch, a few iterations on 8 of the demo dataset's 64x64 pairs; then
# test.py on the CPU with the syncbatch checkpoint. Prints what happened; exits non-zero if a check failed.
#   bash scripts/gpu_checks_ddp.sh          # about 1-2 minutes; files under $OUT (or /tmp/gpu_checks_ddp)
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/project_python.sh"
cd "$REPO_ROOT"
WORK="${OUT:-/tmp/gpu_checks_ddp}"
mkdir -p "$WORK"
FAILED=0

GPUS=$("$PYTHON" -c 'import torch; print(torch.cuda.device_count())')
"$PYTHON" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "NCCL",
    ".".join(map(str, torch.cuda.nccl.version())) if torch.cuda.is_available() else None)'
echo "GPUs: $GPUS"; nvidia-smi -L 2>/dev/null
if [ "$GPUS" -lt 1 ]; then echo "FAIL: no CUDA device"; exit 1; fi
# The demo pairs (64x64), made here once rather than by the processes of the first run side by side.
DATA=$("$PYTHON" -c "from data.demo import ensure_demo_dataset; print(ensure_demo_dataset())")

# train NAME NPROC ARGS...: one torchrun run, its exit code and its key lines.
train() {
    local name=$1 nproc=$2; shift 2
    echo; echo "== torchrun --standalone --nproc_per_node=$nproc train.py $*"
    local start=$SECONDS
    timeout 300 "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node="$nproc" train.py \
        --dataroot "$DATA" --max_dataset_size 8 --name "$name" --checkpoints_dir "$WORK/checkpoints" \
        --netG unet_64 --ngf 16 --ndf 16 --load_size 64 --crop_size 64 --display_id 0 --n_epochs 2 \
        --n_epochs_decay 0 --batch_size 2 --print_freq 8 --seed 1 --dist_timeout 120 "$@" > "$WORK/$name.log" 2>&1
    local code=$?
    echo "   exit $code after $((SECONDS - start)) s"
    grep -E "training on|^\(epoch|End of epoch|error|Error" "$WORK/$name.log" | tail -8 | sed 's/^/   /'
    return $code
}

check() {  # check DESCRIPTION COMMAND...: run COMMAND, print PASS or FAIL
    if "${@:2}"; then echo "PASS: $1"; else echo "FAIL: $1"; FAILED=1; fi
}

checkpoint_is_plain() {  # the saved state_dict has the single-process keys (no 'module.') and holds no NaN
    "$PYTHON" - "$WORK/checkpoints/$1/latest_net_G.pth" <<'EOF'
import sys, torch
state = torch.load(sys.argv[1], weights_only=True)
bad = [k for k in state if k.startswith('module.')] + [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
norms = sorted({k.rsplit('.', 1)[1] for k in state if 'running' in k})
print(f'   {sys.argv[1]}: {len(state)} tensors, batch-norm statistics {norms}, bad keys {bad[:3]}')
sys.exit(1 if bad else 0)
EOF
}

train nccl_batch 1 --norm batch
check "nccl, 1 process, --norm batch trains" test $? -eq 0
check "its checkpoint is a plain state_dict" checkpoint_is_plain nccl_batch
grep -q "(nccl)" "$WORK/nccl_batch.log"; check "the nccl backend was used" test $? -eq 0

train nccl_syncbatch 1 --norm syncbatch --verbose
check "nccl, 1 process, --norm syncbatch trains" test $? -eq 0
check "its checkpoint is a plain state_dict" checkpoint_is_plain nccl_syncbatch
echo "   SyncBatchNorm layers printed by --verbose: $(grep -c SyncBatchNorm "$WORK/nccl_syncbatch.log")"

if [ "$GPUS" -ge 2 ]; then
    train nccl_syncbatch_all "$GPUS" --norm syncbatch
    check "nccl, $GPUS processes, --norm syncbatch trains" test $? -eq 0
    check "its checkpoint is a plain state_dict" checkpoint_is_plain nccl_syncbatch_all
else
    # More processes than GPUs: the extra process must say so, and torchrun end the job.
    train too_many 2 --norm batch
    code=$?
    grep -q "has no GPU of its own" "$WORK/too_many.log"
    check "2 processes on 1 GPU end with a clear error (exit $code)" test $? -eq 0 -a $code -ne 0
fi

echo; echo "== test.py --device cpu on the syncbatch checkpoint"
"$PYTHON" test.py --dataroot "$DATA" --max_dataset_size 8 --name nccl_syncbatch --checkpoints_dir "$WORK/checkpoints" \
    --results_dir "$WORK/results" --device cpu > "$WORK/test_cpu.log" 2>&1
check "a syncbatch checkpoint is tested on the CPU" test $? -eq 0
tail -2 "$WORK/test_cpu.log" | sed 's/^/   /'

echo; if [ $FAILED -eq 0 ]; then echo "ALL PASSED"; else echo "SOME CHECKS FAILED (logs in $WORK)"; fi
exit $FAILED
