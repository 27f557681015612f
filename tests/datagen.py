"""Tiny generated datasets for tests (users don't have facades; the suite makes its own data)."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable


def make_aligned_pairs(root, count=4, size=32, phases=('train', 'test'), seed=0):
    """root/<phase>/NNN.png, each an A|B pair: A is a label map, B a smooth function of it, so a
    generator can learn A -> B."""
    rng = np.random.default_rng(seed)
    for phase in phases:
        os.makedirs(os.path.join(root, phase), exist_ok=True)
        for i in range(count):
            A = np.zeros((size, size, 3), np.uint8)
            x0, y0 = rng.integers(0, size // 2, 2)
            A[y0:y0 + size // 2, x0:x0 + size // 2] = rng.integers(60, 255, 3)
            yy = np.linspace(0, 1, size)[:, None, None]
            B = np.clip(255 - A.astype(np.float64) * 0.8 - 40 * yy, 0, 255).astype(np.uint8)
            Image.fromarray(np.concatenate([A, B], axis=1)).save(os.path.join(root, phase, f'{i:03d}.png'))
    return root


# What train.py checks before --compile on the CPU (options/base_options.py); .ci/run installs g++.
needs_cxx = pytest.mark.skipif(not shutil.which(os.environ.get('CXX', 'g++')),
                               reason='torch.compile on the CPU needs a C++ compiler: apt-get install g++')

TINY_NET = ['--netG', 'unet_32', '--ngf', '8', '--ndf', '8', '--load_size', '32', '--crop_size', '32',
            '--display_id', '0', '--num_threads', '0']


def run(script, *args, check=True, timeout=300, env=None):
    """Run train.py/test.py as a user would, from the repo root; returns the CompletedProcess."""
    full_env = dict(os.environ, OMP_NUM_THREADS='1', **(env or {}))
    proc = subprocess.run([PYTHON, os.path.join(REPO, script), *map(str, args)], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'{script} exited {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\n'
                             f'stderr:\n{proc.stderr[-3000:]}')
    return proc
