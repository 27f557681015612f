"""Finding image files, and opening 8-bit pictures in the mode a network expects (other data: util.arrays)."""
import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from util.arrays import PIL_ARRAY_MODES, is_colour_png16, to_picture_mode
from util.errors import UserError

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.tif', '.tiff', '.webp', '.npy')
SPLITS = ('train', 'val', 'test')  # a dataset's splits: DATAROOT/SPLIT, or DATAROOT/SPLITA and SPLITB


def is_image_file(filename):
    return filename.lower().endswith(IMG_EXTENSIONS)


def make_dataset(directory, max_dataset_size=float('inf')):
    """Every image under directory (recursively), in sorted order; directory may also be one image file."""
    if os.path.isfile(directory):
        if not is_image_file(directory):
            raise UserError(f'{directory} is not an image ({", ".join(IMG_EXTENSIONS)}). Give --dataroot an image '
                            f'file or a folder of images.')
        return [directory]
    if not os.path.isdir(directory):
        raise UserError(f'{directory} is not a directory. Check --dataroot (and --phase): pix2pix expects '
                        f'DATAROOT/train and DATAROOT/test folders of A|B pairs.')
    images = []
    for root, _, names in sorted(os.walk(directory, followlinks=True)):
        images += [os.path.join(root, name) for name in sorted(names) if is_image_file(name)]
    if not images:
        raise UserError(f'no images ({", ".join(IMG_EXTENSIONS)}) found in {directory}. Check --dataroot and --phase.')
    return images[:min(max_dataset_size, len(images))]


def folder_of(path):
    """The folder result images are named relative to: path itself, or for one image file its folder."""
    return path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))


def split_layouts(dataroot, split):
    """The folders of a split in each layout of pairs, side by side first: DATAROOT/SPLIT (A|B images), or
    DATAROOT/SPLITA and DATAROOT/SPLITB (A and B in separate folders)."""
    return {'side_by_side': [os.path.join(dataroot, split)],
            'folders': [os.path.join(dataroot, split + 'A'), os.path.join(dataroot, split + 'B')]}


def has_split(dataroot, split):
    """True if DATAROOT holds split in either layout of pairs."""
    return any(all(map(os.path.isdir, folders)) for folders in split_layouts(dataroot, split).values())


def holds_single_images(dataroot, phase):
    """True for one image file, or a folder of images (inside it or in its subfolders) that is not laid out
    as a dataset: no folder of PHASE, train, val or test in either layout of pairs (PHASE, or PHASEA and
    PHASEB; one of the two is enough). Single images to translate, not pairs. A dataset that lacks PHASE is
    then named in an error rather than its pairs translated as single images."""
    if os.path.isfile(dataroot):
        return True
    split_folders = [folder for split in (phase, *SPLITS) for folders in split_layouts(dataroot, split).values()
                     for folder in folders]
    if not os.path.isdir(dataroot) or any(map(os.path.isdir, split_folders)):
        return False
    return any(is_image_file(name) for _, _, names in os.walk(dataroot, followlinks=True) for name in names)


def open_image(path, channels=3, unlike=None):
    """Open any common picture as 8-bit RGB (channels=3) or L (channels=1): alpha dropped, palettes expanded.

    A 16-bit or float file is scaled to 8 bits (65535 -> 255) rather than clipped, or with unlike (a message
    naming the data's first file) refused: it belongs to other data, read in full by util.arrays.
    """
    try:
        with Image.open(path) as image:
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise UserError(f'cannot read image {path}: {e}. Remove or replace the file.')
    if unlike and (image.mode in PIL_ARRAY_MODES or is_colour_png16(image, path)):
        raise UserError(f'{path} holds 16-bit or float values, {unlike}. Convert it, or remove it.')
    if image.mode.startswith('I'):
        array = np.asarray(image, dtype=np.float64)
        # I;16* is 16-bit whatever its values; plain I (32-bit) is taken as 16-bit when it exceeds 8 bits.
        scale = 257.0 if image.mode != 'I' or array.max() > 255 else 1.0
        image = Image.fromarray(np.clip(np.round(array / scale), 0, 255).astype(np.uint8), 'L')
    elif image.mode == 'F':
        array = np.asarray(image, dtype=np.float64)
        scale = 255.0 if array.max() <= 1.0 else 1.0
        image = Image.fromarray(np.clip(np.round(array * scale), 0, 255).astype(np.uint8), 'L')
    image = to_picture_mode(image)
    return image if image.mode == ('RGB' if channels == 3 else 'L') else image.convert('RGB' if channels == 3 else 'L')
