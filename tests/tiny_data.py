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


# Facades' 12 label colours (a jet colour map) and Cityscapes' 19: label palettes the semantic score must
# recover from JPEG label maps.
FACADES_PALETTE = ((0, 0, 222), (1, 48, 254), (2, 127, 254), (2, 207, 255), (33, 254, 225), (112, 254, 143),
                   (174, 0, 1), (192, 255, 63), (252, 1, 2), (254, 80, 1), (254, 159, 1), (254, 240, 2))
CITYSCAPES_PALETTE = ((128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
                      (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
                      (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
                      (0, 80, 100), (0, 0, 230), (119, 11, 32))


def class_layout(rng, size, classes):
    """A size x size class map like a facade's: a background, large blocks, rows of windows with thin
    bars and sills (2-4 pixels wide at 128 pixels), so that every class occurs and some regions are thin."""
    layout = np.zeros((size, size), np.int64)
    unit = max(size // 32, 1)
    order = rng.permutation(np.arange(1, classes))
    layout[:, :size - 3 * unit] = order[0]
    for k, c in enumerate(order[1:]):
        h, w = rng.integers(2, 12, 2) * unit
        y, x = rng.integers(0, size - h), rng.integers(0, size - w)
        layout[y:y + h, x:x + w] = c
        if k % 2:  # a thin bar inside it, or beneath it like a sill
            bar = order[(k + 3) % (classes - 1)]
            layout[y + h // 3:y + h // 3 + unit, x:x + w] = bar
    return layout


def make_palette_pairs(root, palette=FACADES_PALETTE, count=4, size=64, quality=90, phases=('train', 'test'),
                       seed=0):
    """root/<phase>/NNN.jpg pairs as facades stores them: the photo left (A), the label map right (B),
    drawn with `palette` at twice the size, shrunk (bicubic: blended edges) and saved as JPEG with 4:2:0
    chroma subsampling at `quality`. A photo's pixels are a class's own colour plus noise, so a segmenter
    can learn it. Returns {phase: class maps (count, size, size)}, the truth, from the layout drawn at
    twice the size and sampled at the centre of each pixel's 2x2 block (one of its four values)."""
    rng = np.random.default_rng(seed)
    palette = np.array(palette, np.uint8)
    looks = rng.integers(0, 256, (len(palette), 3))
    truths = {}
    for phase in phases:
        os.makedirs(os.path.join(root, phase), exist_ok=True)
        truths[phase] = []
        for i in range(count):
            layout = class_layout(rng, 2 * size, len(palette))
            labels = Image.fromarray(palette[layout]).resize((size, size), Image.BICUBIC)
            photo = looks[layout] + rng.normal(0, 40, (2 * size, 2 * size, 3))
            photo = Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).resize((size, size), Image.BICUBIC)
            pair = Image.fromarray(np.concatenate([np.asarray(photo), np.asarray(labels)], axis=1))
            pair.save(os.path.join(root, phase, f'{i:03d}.jpg'), quality=quality, subsampling='4:2:0')
            truths[phase].append(layout[1::2, 1::2])
        truths[phase] = np.stack(truths[phase])
    return truths


def make_16bit_pairs(root, count=3, size=32, phases=('train', 'test'), seed=0):
    """root/<phase>A and <phase>B/NNN.png: one-channel 16-bit PNGs, A of values in 100..4000 (a depth map in
    millimetres, say) and B a smooth function of it, so that the value mappings are measured and far from
    8-bit's. Returns root."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for phase in phases:
        for side in 'AB':
            os.makedirs(os.path.join(root, phase + side), exist_ok=True)
        for i in range(count):
            A = 100 + 3900 * (0.5 + 0.5 * np.sin(6 * xx + rng.uniform(0, 6)) * np.cos(5 * yy + rng.uniform(0, 6)))
            A = np.round(A + rng.normal(0, 30, A.shape)).clip(100, 4000)
            B = np.round(4100 - 0.9 * A - 200 * yy)
            for side, values in (('A', A), ('B', B)):
                Image.fromarray(values.astype(np.uint16)).save(os.path.join(root, phase + side, f'{i:03d}.png'))
    return root
