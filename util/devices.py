"""Which device runs the networks, and how the process keeps its memory."""
import ctypes
import sys

import torch

from util.errors import UserError


def resolve(requested):
    """The torch device for --device: auto picks CUDA, then Apple's GPU (MPS), then the CPU."""
    if requested == 'auto':
        if torch.cuda.is_available():
            return 'cuda'
        return 'mps' if torch.backends.mps.is_available() else 'cpu'
    if requested.startswith('cuda'):
        if not torch.cuda.is_available():
            raise UserError(f'--device {requested}: CUDA is not available on this machine; use --device cpu')
        index = requested.partition(':')[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise UserError(f'--device {requested}: this machine has {torch.cuda.device_count()} CUDA device(s)')
        return requested
    if requested == 'mps':
        if not torch.backends.mps.is_available():
            why = ('this PyTorch was built without it' if not torch.backends.mps.is_built() else
                   'it needs an Apple silicon Mac with macOS 12.3 or later')
            raise UserError(f'--device mps: Apple\'s GPU (MPS) is not available here ({why}); use --device cpu')
        return requested
    if requested != 'cpu':
        raise UserError(f'--device {requested}: choose auto, cpu, cuda, cuda:N or mps')
    return requested


def cpu_has_bf16_instructions():
    """Whether this CPU has bfloat16 arithmetic (AVX512-BF16 or AMX), which oneDNN uses for --amp bf16.
    Without it torch emulates bfloat16, far slower than float32 (1.4 against 60 GFLOP/s measured on an
    AMD EPYC with AVX2 only)."""
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


def keep_freed_memory(keep=True):
    """Let glibc keep freed memory for reuse instead of handing it back to the kernel (Linux only).

    A training iteration frees and allocates the same large buffers every time. glibc returns buffers
    over 32 MB (a U-Net weight's gradient is 33 MB) to the kernel at once, and the next allocation then
    pays a page fault for every 4 kB of fresh zeroed memory: 4-6% of an iteration on a CPU. keep=False
    restores glibc's defaults. The process keeps its peak memory until it exits (a few percent above
    what it would otherwise peak at).
    """
    if not sys.platform.startswith('linux'):
        return
    try:
        mallopt = ctypes.CDLL('libc.so.6').mallopt
    except (OSError, AttributeError):  # another C library: nothing to tune
        return
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    mallopt(M_MMAP_MAX, 0 if keep else 65536)  # 0: large buffers come from the heap too, and return to it
    mallopt(M_TRIM_THRESHOLD, -1 if keep else 128 * 1024)  # -1: never shrink the heap
