"""The built-in demo dataset: label maps of coloured shapes paired with rendered, shaded scenes.

Generated on first use (a second or two), deterministic, so a fresh machine can train and test
without downloading anything. A is the label map, B the rendering (labels -> photo, AtoB).
"""
import os

import numpy as np
from PIL import Image

from util.files import atomic_write, mkdirs

DEMO_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'datasets', 'demo')
SIZE = 64
SPLITS = {'train': 240, 'test': 30}
LABELS = {'sky': (110, 170, 255), 'ground': (60, 160, 60), 'sphere': (230, 40, 40), 'box': (250, 220, 30),
          'pyramid': (200, 60, 220)}


def ensure_demo_dataset(root=DEMO_ROOT):
    """Create root/{train,test} (aligned pairs) and root/testA (label maps alone) unless complete."""
    marker = os.path.join(root, 'COMPLETE')
    if os.path.exists(marker):
        return root
    rng = np.random.default_rng(0)
    for split, count in SPLITS.items():
        mkdirs(os.path.join(root, split), os.path.join(root, split + 'A'))
        for i in range(count):
            label, photo = render_scene(rng)
            pair = Image.fromarray(np.concatenate([label, photo], axis=1))
            save_png(pair, os.path.join(root, split, f'{i:04d}.png'))
            save_png(Image.fromarray(label), os.path.join(root, split + 'A', f'{i:04d}.png'))
    open(marker, 'w').close()
    return root


def save_png(image, path):
    atomic_write(path, lambda f: image.save(f, format='PNG'))


def render_scene(rng):
    """Return (label map, shaded rendering), both SIZE x SIZE x 3 uint8."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    horizon = rng.integers(SIZE // 3, 2 * SIZE // 3)
    sky = yy < horizon
    label = np.where(sky[..., None], LABELS['sky'], LABELS['ground']).astype(np.float32)
    # Sky: blue gradient getting lighter toward the horizon; ground: grass with stripes and noise.
    t = (yy / max(horizon, 1))[..., None]
    sky_colour = (1 - t) * np.array([40, 90, 200]) + t * np.array([200, 220, 255])
    stripes = 0.85 + 0.15 * np.sin(yy * 1.3 + xx * 0.2)[..., None]
    ground_colour = np.array([70, 130, 40]) * stripes + rng.normal(0, 6, (SIZE, SIZE, 1))
    photo = np.where(sky[..., None], sky_colour, ground_colour)
    for _ in range(rng.integers(1, 4)):
        kind = rng.choice(['sphere', 'box', 'pyramid'])
        r = rng.integers(6, 14)
        cx, cy = rng.integers(r, SIZE - r), rng.integers(horizon - r // 2, SIZE - r)
        dx, dy = (xx - cx) / r, (yy - cy) / r
        if kind == 'sphere':
            mask = dx ** 2 + dy ** 2 <= 1
            nz = np.sqrt(np.clip(1 - dx ** 2 - dy ** 2, 0, 1))
            light = np.clip(-0.5 * dx - 0.6 * dy + 0.6 * nz, 0.15, 1)  # light from the upper left
            colour = light[..., None] * np.array([255, 120, 40]) + (light ** 8)[..., None] * 120
        elif kind == 'box':
            mask = (np.abs(dx) <= 1) & (np.abs(dy) <= 1)
            shade = np.where(dx > 0.4, 0.55, 1.0) * (1.0 - 0.25 * (dy + 1) / 2)
            colour = shade[..., None] * np.array([240, 200, 60])
        else:
            mask = (dy <= 1) & (np.abs(dx) <= (dy + 1) / 2)
            shade = np.where(dx < 0, 1.0, 0.6)
            colour = shade[..., None] * np.array([190, 80, 230])
        # A shadow on the ground to the lower right, so the rendering holds more than the labels.
        shadow = np.roll(np.roll(mask, 2, axis=0), 3, axis=1) & ~mask & ~sky
        photo = np.where(shadow[..., None], photo * 0.55, photo)
        photo = np.where(mask[..., None], colour, photo)
        label = np.where(mask[..., None], LABELS[kind], label)
    return label.astype(np.uint8), np.clip(photo, 0, 255).astype(np.uint8)
