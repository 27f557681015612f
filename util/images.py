"""Network tensors to 8-bit pictures, and saving them as PNG; and saving them in the data's own units and type."""
import os

import numpy as np
from PIL import Image

from util.arrays import file_extension, write_array
from util.files import atomic_write


def tensor2im(image_tensor):
    """(C,H,W) or (1,C,H,W) tensor in [-1,1] -> HxWx3 uint8 array (1 channel is repeated to gray RGB)."""
    if image_tensor.dim() == 4:
        image_tensor = image_tensor[0]
    image = image_tensor.detach().float().cpu().clamp(-1, 1)
    if image.shape[0] == 1:
        image = image.repeat(3, 1, 1)
    image = (image.permute(1, 2, 0).numpy() + 1.0) / 2.0 * 255.0
    return np.round(image).astype(np.uint8)


def save_image(image_numpy, image_path, aspect_ratio=1.0):
    """Write an H x W x 3 or H x W (x 1) uint8 picture as PNG, stretched to aspect_ratio (height / width)."""
    image = Image.fromarray(image_numpy[:, :, 0] if image_numpy.ndim == 3 and image_numpy.shape[2] == 1 else image_numpy)
    h, w = image_numpy.shape[:2]
    if aspect_ratio > 1.0:
        image = image.resize((w, int(h * aspect_ratio)), Image.BICUBIC)
    elif aspect_ratio < 1.0:
        image = image.resize((int(w / aspect_ratio), h), Image.BICUBIC)
    # Level 1 of 9: 4x faster to write than PIL's default 6, files about 4% larger, same pixels.
    atomic_write(image_path, lambda f: image.save(f, format='PNG', compress_level=1), durable=False)


def visual_files(mapping, stem):
    """(picture file name, data file name) of a visual that save_visual writes as stem: one PNG for 8-bit gray and
    RGB data with the full mapping (the file is its own picture), else the data's file beside stem_preview.png."""
    data_name = stem + file_extension(mapping.dtype, mapping.channels)
    if mapping.is_8bit_full() and mapping.channels in (1, 3):
        return data_name, data_name
    return stem + '_preview.png', data_name


def save_visual(values, mapping, directory, stem, units=None, aspect_ratio=1.0, preview_channels=(0, 1, 2)):
    """Write one visual of one image (the network's (C, H, W) values) in the data's units and type: 8-bit data as
    before, a PNG that is also its picture; other data as a 16-bit PNG or a TIFF (util.arrays.file_extension)
    beside an 8-bit picture of it, stem_preview.png. units: the values in the data's units when they are the
    data's own (a real image), written as they are. Returns (picture file name, data file name) in directory."""
    array = mapping.to_array(values) if units is None else mapping.units_to_array(units)
    picture_name, data_name = visual_files(mapping, stem)
    if picture_name == data_name:
        save_image(array, os.path.join(directory, data_name), aspect_ratio)
        return picture_name, data_name
    write_array(os.path.join(directory, data_name), array)
    save_image(mapping.preview(values, preview_channels), os.path.join(directory, picture_name), aspect_ratio)
    return picture_name, data_name
