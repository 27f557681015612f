"""Image files as arrays of the values they hold, read and written without loss.

8- and 16-bit PNG and the other picture formats through Pillow (16-bit colour PNG through imagecodecs, optional:
Pillow reads 8 of its bits); TIFF of any band count and type through
tifffile (the library scientific imaging uses: GDAL, ImageJ and microscopes write what it reads); NumPy .npy
arrays (H x W or H x W x C) with pickles refused. Nothing is scaled or rounded: a 16-bit file gives uint16, a
float TIFF float32, 13 bands 13 channels. Arrays are H x W x C.
"""
import contextlib
import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from util.errors import UserError
from util.files import atomic_write

TIFF_EXTENSIONS = ('.tif', '.tiff')
# The value types read and written; the ranges of the integer types are their "full" ranges (--range_A full).
TYPES = ('uint8', 'uint16', 'int16', 'int32', 'float32', 'float64')
TYPE_RANGES = {'uint8': (0, 255), 'uint16': (0, 65535), 'int16': (-32768, 32767)}
PICTURE_MODES = {'1': 'L', 'L': 'L', 'LA': 'L', 'La': 'L'}  # Pillow's 8-bit modes that are gray; the rest are RGB
PIL_ARRAY_MODES = {'I;16': 'uint16', 'I;16L': 'uint16', 'I;16B': 'uint16', 'I;16N': 'uint16', 'I': 'int32',
                   'F': 'float32'}


def read_array(path):
    """The values of the image file at path as an H x W x C array of its own type (see TYPES)."""
    lower = path.lower()
    with read_errors(path):
        if lower.endswith('.npy'):
            array = read_npy(path)
        elif lower.endswith(TIFF_EXTENSIONS):
            array = read_tiff(path)
        else:
            array = read_picture(path)
    return as_image_array(array, path)


def file_kind(path):
    """(type, channels) of the image at path, as read_array would give them, from the file's header: no pixels are
    decoded or loaded, which matters for scenes of 10,000 pixels a side."""
    lower = path.lower()
    with read_errors(path):
        if lower.endswith('.npy'):
            shape, dtype = npy_header(path)
        elif lower.endswith(TIFF_EXTENSIONS):
            shape, dtype = tiff_header(path)
        else:
            with Image.open(path) as image:
                if is_colour_png16(image, path):
                    return 'uint16', 3
                if image.mode in PIL_ARRAY_MODES:
                    return ('uint16' if image.format == 'PNG' else PIL_ARRAY_MODES[image.mode]), 1
                return 'uint8', 1 if PICTURE_MODES.get(image.mode) == 'L' else 3
    return image_type(dtype, path), image_channels(shape, path)


@contextlib.contextmanager
def read_errors(path):
    """A file that cannot be read becomes a one-line error naming it."""
    try:
        yield
    except UserError:
        raise
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError, EOFError) as e:
        raise UserError(f'cannot read image {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}. '
                        f'Remove or replace the file.')


def npy_header(path):
    """(shape, dtype) of a .npy file, memory-mapped rather than read."""
    try:
        array = np.load(path, mmap_mode='r', allow_pickle=False)
    except ValueError:  # not mappable (an object array, a broken header): read_npy says why
        array = read_npy(path)
    return array.shape, array.dtype


def read_npy(path):
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as e:
        if 'allow_pickle' in str(e):  # an object array: loading it would unpickle, which can run code
            raise UserError(f'{path} holds Python objects, not numbers; it is refused, as unpickling it could run '
                            f'code. Save a numeric array (np.save with a uint8, uint16, int16 or float32 array).')
        raise


def tiff_header(path):
    """(shape, dtype) of a TIFF's first series, bands last, from its tags."""
    import tifffile
    with tifffile.TiffFile(path) as tiff:
        series = first_series(tiff, path)
        shape = series.shape
        return (shape[1:] + shape[:1] if is_planar(len(shape), series.axes) else shape), series.dtype


def first_series(tiff, path):
    if not tiff.series:
        raise UserError(f'cannot read image {path}: the TIFF holds no image. Remove or replace the file.')
    return tiff.series[0]


def is_planar(ndim, axes):
    """Whether a TIFF series holds its bands first (SYX, CYX, QYX), to be moved last."""
    return ndim == 3 and axes[-1] not in 'SC'


def read_tiff(path):
    import tifffile  # 0.2 s to import, only for TIFFs
    with tifffile.TiffFile(path) as tiff:
        series = first_series(tiff, path)
        try:
            array = series.asarray()
        except (KeyError, ValueError, RuntimeError, ImportError) as e:
            # tifffile decodes zlib and LZW itself; other compressions need imagecodecs (or, for some, a newer
            # Python), and tifffile says so in a KeyError or an ImportError.
            if 'imagecodecs' in str(e) or isinstance(e, ImportError):
                compression = tiff.pages[0].compression
                raise UserError(f'{path} is compressed with {getattr(compression, "name", compression)}, which needs '
                                f'the imagecodecs package: pip install imagecodecs, or save it uncompressed, with '
                                f'deflate or with LZW.')
            raise
        axes = series.axes
    if is_planar(array.ndim, axes):
        array = np.moveaxis(array, 0, -1)
    return array


def read_picture(path):
    with Image.open(path) as image:
        image.load()
        if is_colour_png16(image, path):
            return read_colour_png16(path)
        if image.mode in PIL_ARRAY_MODES:
            dtype = PIL_ARRAY_MODES[image.mode]
            # Older Pillows open a 16-bit gray PNG as mode I (32-bit).
            return np.asarray(image, dtype='uint16' if image.format == 'PNG' else dtype)
        return np.asarray(to_picture_mode(image))


def to_picture_mode(image):
    """An 8-bit Pillow image as L or RGB: alpha dropped, palettes expanded (a palette with transparency via RGBA)."""
    if image.mode == 'P' and 'transparency' in image.info:
        image = image.convert('RGBA')
    return image.convert(PICTURE_MODES.get(image.mode, 'RGB'))


def is_colour_png16(image, path):
    """True for a 16-bit colour PNG (with or without alpha), which Pillow would read as 8 bits."""
    return image.format == 'PNG' and image.mode not in PIL_ARRAY_MODES and png_bit_depth(path) == 16


def read_colour_png16(path):
    """A 16-bit colour PNG as uint16 RGB (alpha dropped), through imagecodecs: Pillow keeps only 8 of its bits."""
    try:
        import imagecodecs
    except ImportError:
        raise UserError(f'{path} is a 16-bit colour PNG, which Pillow reads as 8 bits: pip install imagecodecs to '
                        f'read it in full, or save it as a 16-bit TIFF.')
    with open(path, 'rb') as f:
        return imagecodecs.png_decode(f.read())[:, :, :3]


def png_bit_depth(path):
    with open(path, 'rb') as f:
        header = f.read(25)
    return header[24] if len(header) == 25 else 8


def as_image_array(array, path):
    """array as H x W x C of a type of TYPES, or an error naming path."""
    image_channels(array.shape, path)
    if array.ndim == 2:
        array = array[:, :, None]
    dtype = image_type(array.dtype, path)
    return array if array.dtype.name == dtype else array.astype(dtype)


# Types held as a wider one of TYPES: booleans as 0/1 bytes, int8 as int16, half floats as float32, and uint32
# (beyond int32) as float64, which holds every value exactly.
WIDENED = {'bool': 'uint8', 'int8': 'int16', 'float16': 'float32', 'uint32': 'float64'}


def image_type(dtype, path):
    """The type of TYPES an image of this dtype is read as, or an error naming path."""
    name = WIDENED.get(np.dtype(dtype).name, np.dtype(dtype).name)
    if name not in TYPES:
        raise UserError(f'{path} holds {np.dtype(dtype)} values; the types read are {", ".join(TYPES)}. Convert it.')
    return name


def image_channels(shape, path):
    """The channel count of an image array of this shape (H x W or H x W x C), or an error naming path."""
    if len(shape) not in (2, 3):
        raise UserError(f'{path} holds an array of shape {tuple(shape)}; an image is H x W or H x W x C (bands last, '
                        f'or bands first in a TIFF).')
    return shape[2] if len(shape) == 3 else 1


def check_finite(array, path):
    """Float data with NaN or infinity cannot be learnt from: an error saying how many and where the first is."""
    if array.dtype.kind != 'f':
        return
    bad = ~np.isfinite(array)
    if bad.any():
        y, x, c = np.argwhere(bad)[0]
        raise UserError(f'{path} holds {int(bad.sum())} NaN or infinite values (the first at row {y}, column {x}, '
                        f'channel {c}). Replace them (for example with np.nan_to_num) or remove the file.')


def file_extension(dtype, channels):
    """The file type that holds an array of this type and channel count as it is: PNG for 8-bit gray, RGB and
    RGBA and for 16-bit gray (what Pillow writes), TIFF for everything else (float, multi-band, 16-bit colour)."""
    if (dtype == 'uint8' and channels in (1, 3, 4)) or (dtype == 'uint16' and channels == 1):
        return '.png'
    return '.tif'


def write_array(path, array):
    """Write an H x W x C array to path (.png, .tif or .npy) exactly, atomically."""
    lower = path.lower()
    if lower.endswith('.npy'):
        atomic_write(path, lambda f: np.save(f, array), durable=False)
    elif lower.endswith(TIFF_EXTENSIONS):
        import tifffile
        photometric = 'rgb' if array.shape[2] == 3 and array.dtype == np.uint8 else 'minisblack'
        # Into memory first: tifffile takes a file object's name for a path, and atomic_write's (os.fdopen's) is
        # a number, which it fails on.
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, array if array.shape[2] > 1 else array[:, :, 0], photometric=photometric,
                         planarconfig='contig')
        atomic_write(path, lambda f: f.write(buffer.getbuffer()), durable=False)
    else:
        image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
        # Level 1 of 9: 4x faster to write than PIL's default 6, files about 4% larger, same pixels.
        atomic_write(path, lambda f: image.save(f, format='PNG', compress_level=1), durable=False)
