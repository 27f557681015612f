"""Small generated images for tests (users don't have facades; the suite makes its own data)."""
import os

import numpy as np
from PIL import Image


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


def pair_image(path, width, height, seed=0):
    """A random-noise RGB PNG of width x height at path (folders made); returns its pixels."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels
