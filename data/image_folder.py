"""Finding image files and opening them in the mode a network expects."""
import os

import numpy as np
from PIL import Image, UnidentifiedImageError

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.tif', '.tiff', '.webp')


class DataError(SystemExit):
    """Bad input data: one clear message naming the file and the fix, exit status 1."""

    def __init__(self, message):
        super().__init__(f'error: {message}')


def is_image_file(filename):
    return filename.lower().endswith(IMG_EXTENSIONS)


def make_dataset(directory, max_dataset_size=float('inf')):
    """Every image under directory (recursively), in sorted order."""
    if not os.path.isdir(directory):
        raise DataError(f'{directory} is not a directory. Check --dataroot (and --phase): pix2pix expects '
                        f'DATAROOT/train and DATAROOT/test folders of A|B pairs.')
    images = []
    for root, _, names in sorted(os.walk(directory, followlinks=True)):
        images += [os.path.join(root, name) for name in sorted(names) if is_image_file(name)]
    if not images:
        raise DataError(f'no images ({", ".join(IMG_EXTENSIONS)}) found in {directory}. Check --dataroot and --phase.')
    return images[:min(max_dataset_size, len(images))]


def open_image(path, channels=3):
    """Open any common image as 8-bit RGB (channels=3) or L (channels=1).

    16-bit images are scaled to 8 bits rather than clipped; alpha is dropped; palettes are expanded.
    """
    try:
        with Image.open(path) as image:
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f'cannot read image {path}: {e}. Remove or replace the file.')
    if image.mode in ('I;16', 'I;16B', 'I;16L', 'I'):
        array = np.asarray(image, dtype=np.float64)
        scale = 257.0 if array.max() > 255 else 1.0
        image = Image.fromarray(np.clip(np.round(array / scale), 0, 255).astype(np.uint8), 'L')
    elif image.mode == 'F':
        array = np.asarray(image, dtype=np.float64)
        scale = 255.0 if array.max() <= 1.0 else 1.0
        image = Image.fromarray(np.clip(np.round(array * scale), 0, 255).astype(np.uint8), 'L')
    if image.mode == 'P' and 'transparency' in image.info:
        image = image.convert('RGBA')
    return image.convert('RGB' if channels == 3 else 'L')
