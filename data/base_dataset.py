"""Base class of datasets and the preprocessing shared by all of them.

A and B of a pair must get the same random crop and flip: get_params() draws them once per pair and
transform() applies exactly those. They are drawn from a generator seeded by (seed, epoch, sample index),
so a sample is cut and flipped the same way in the training process, in any DataLoader worker under any
start method, on any DDP rank, and in a resumed run.
"""
import numpy as np
import torch
import torch.utils.data as data
from PIL import Image

from data.image_folder import folder_of, open_image
from util.arrays import check_finite, file_kind, read_array
from util.errors import UserError
from util.value_mapping import ValueMapping


class BaseDataset(data.Dataset):
    """A dataset defines load_sample(index, rng), __len__ and, if it needs options, modify_commandline_options
    (and validate_options to check them).

    The loader's sampler (data/__init__.py) asks for dataset[(epoch, index)]; a plain index is epoch 0.

    A dataset of the users' images in their own values (aligned, single) also defines
        sides                  {'input': 'A' or 'B', 'target': ...}: which side of the data is G's input
        files(index)           {side: path} of the sample at index
        read(index, readers)   {side: PIL picture or array} of the sample, each read by readers()[side]
    The configuration's channel counts and value mappings are then resolved from its files.
    """
    sides = None

    def __init__(self, opt):
        self.opt = opt
        self.root = opt.dataroot
        self.image_dir = folder_of(opt.dataroot)  # results are named by their path relative to this folder

    @staticmethod
    def modify_commandline_options(parser, is_train):
        return parser

    @staticmethod
    def validate_options(opt):
        """Raise UserError for an impossible setting of the flags this dataset adds or relies on."""

    def __getitem__(self, key):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        return self.load_sample(index, np.random.default_rng((self.opt.seed or 0, epoch, index)))

    def load_sample(self, index, rng):
        """The sample at index as a dict of tensors and paths; rng (numpy) draws its augmentation."""
        raise NotImplementedError

    @staticmethod
    def value_mappings(opt):
        """{'A': ValueMapping, 'B': ValueMapping}: how the values of A and of B map to the network's (the
        configuration's, resolved from the data, --range_A/--range_B or the checkpoint)."""
        return {side: ValueMapping.from_dict(getattr(opt, f'mapping_{side}')) for side in 'AB'}

    def readers(self):
        """{side: SideReader} for each side of the samples, made on first use (in each loader worker)."""
        if getattr(self, '_readers', None) is None:
            mappings = self.value_mappings(self.opt)
            self._readers = {side: SideReader(mappings[side], path, self.opt) for side, path in self.files(0).items()}
        return self._readers


class SideReader:
    """Reads the files of one side (A or B) and turns them into the network's values through the side's mapping.

    8-bit gray and colour pictures, TIFFs included, take the reference's path (Pillow; --input_nc 1 on colour
    pictures makes them gray, and 3 on gray ones RGB, as there). Everything else (16-bit, float, other channel
    counts, .npy) is read as an array of its own values, and must be of the type and channel count of the
    side's first file.
    """

    def __init__(self, mapping, first_path, opt):
        """mapping None: a reader of the files' values, for measuring them (options/resolution.py)."""
        self.mapping, self.first_path, self.opt = mapping, first_path, opt
        self.kind = None

    def expected_kind(self):
        if self.kind is None:
            self.kind = file_kind(self.first_path)
        return self.kind

    def is_picture_path(self, path):
        return (self.mapping is not None and self.mapping.dtype == 'uint8' and self.mapping.channels in (1, 3)
                and not path.lower().endswith('.npy'))

    def read(self, path):
        """A PIL picture (8-bit data) or an H x W x C array of the file's own values."""
        if self.is_picture_path(path):
            return open_image(path, self.mapping.channels, unlike=f'unlike the 8-bit data of {self.first_path}')
        array = read_array(path)
        check_finite(array, path)
        kind = (array.dtype.name, array.shape[2])
        if path != self.first_path and kind != self.expected_kind():
            dtype, channels = self.expected_kind()
            raise UserError(f'{path} holds {kind[0]} values in {kind[1]} channels, but {self.first_path} (the first '
                            f'file of its side) {dtype} values in {channels}. Files of one side must be alike: '
                            f'convert it, or remove it.')
        if self.mapping is not None and array.shape[2] != self.mapping.channels:
            raise UserError(f'{path} has {array.shape[2]} channels, but the network takes {self.mapping.channels} on '
                            f'this side (--input_nc/--output_nc, typed or saved with the checkpoint). Drop the flag, '
                            f'or give data of {self.mapping.channels} channels.')
        return array

    def conform(self, image):
        """An 8-bit picture in this side's mode: half of an A|B image read by the other side's reader."""
        if isinstance(image, np.ndarray) or self.mapping is None:
            return image
        mode = 'RGB' if self.mapping.channels == 3 else 'L'
        return image if image.mode == mode else image.convert(mode)

    def to_network(self, image, params, keep_units):
        """(the network's tensor, the same in the data's units or with keep_units False None) of a picture or
        array, augmented as params say."""
        units = augment(image, self.opt, params)
        return self.mapping.to_network(units, in_place=not keep_units).float(), units if keep_units else None


def image_size(image):
    """(width, height) of a PIL picture or an H x W x C array."""
    return (image.shape[1], image.shape[0]) if isinstance(image, np.ndarray) else image.size


def get_params(opt, size, rng):
    """The random crop position and flip of a pair whose images are size (width, height)."""
    w, h = size
    new_w, new_h = w, h
    if opt.preprocess == 'resize_and_crop':
        new_w = new_h = opt.load_size
    elif opt.preprocess == 'scale_width_and_crop':
        new_w = opt.load_size
        new_h = opt.load_size * h // w
    x = int(rng.integers(0, max(0, new_w - opt.crop_size), endpoint=True))
    y = int(rng.integers(0, max(0, new_h - opt.crop_size), endpoint=True))
    flip = bool(rng.random() > 0.5)
    return {'crop_pos': (x, y), 'flip': flip}


def transform(image, opt, params, grayscale=False):
    """8-bit PIL image -> tensor in [-1, 1] (x / 127.5 - 1, the reference's), augmented as augment() says."""
    return augment(image, opt, params, grayscale).div_(127.5).sub_(1.0)


def augment(image, opt, params, grayscale=False):
    """An 8-bit PIL image or an H x W x C array of any type -> a float (C, H, W) tensor of the same values
    resized, cropped and flipped as params and opt say.

    --preprocess none keeps the size exactly (no resampling to a multiple of 4 as in the reference):
    BaseModel.generate pads to a size the generator takes and crops its output back.
    """
    if isinstance(image, np.ndarray):
        return augment_array(image, opt, params)
    return augment_picture(image, opt, params, grayscale).float()


def augment_picture(image, opt, params, grayscale=False, method=Image.BICUBIC):
    """The 8-bit path, as the reference's: Pillow's resampling (in 8 bits) and a uint8 tensor."""
    if grayscale:
        image = image.convert('L')
    if 'resize' in opt.preprocess:
        image = image.resize((opt.load_size, opt.load_size), method)
    elif 'scale_width' in opt.preprocess:
        image = scale_width(image, opt.load_size, opt.crop_size, method)
    if 'crop' in opt.preprocess:
        x, y = params['crop_pos']
        image = image.crop((x, y, x + opt.crop_size, y + opt.crop_size))
    if not opt.no_flip and params['flip']:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    return pil_to_tensor(image)


def augment_array(array, opt, params):
    """Data of any type and channel count: torchvision's tensor transforms on float values, so nothing is
    rounded (a 16-bit value, or a float, keeps what float32 holds of it: all of a 16-bit one)."""
    from torchvision.transforms.v2 import InterpolationMode, functional  # 1.3 s to import: only for such data
    # float32 holds every 8- and 16-bit value, and a float32 one, exactly.
    dtype = np.float64 if array.dtype.itemsize > 4 or array.dtype.name == 'int32' else np.float32
    units = torch.from_numpy(array.astype(dtype)).permute(2, 0, 1)
    h, w = units.shape[1:]
    size = None
    if 'resize' in opt.preprocess:
        size = (opt.load_size, opt.load_size)
    elif 'scale_width' in opt.preprocess:
        size = scale_width_size(w, h, opt.load_size, opt.crop_size)
    if size is not None and size != (w, h):
        units = functional.resize(units, [size[1], size[0]], InterpolationMode.BICUBIC, antialias=True)
    if 'crop' in opt.preprocess:
        x, y = params['crop_pos']
        units = functional.crop(units, y, x, opt.crop_size, opt.crop_size)
    if not opt.no_flip and params['flip']:
        units = functional.horizontal_flip(units)
    return units


def pil_to_tensor(image):
    """uint8 CxHxW tensor of a PIL image (as torchvision's, without importing torchvision: 1.3 s per process)."""
    return torch.from_numpy(np.array(image, np.uint8).reshape(image.height, image.width, -1)).permute(2, 0, 1)


def scale_width(image, target_width, crop_size, method=Image.BICUBIC):
    size = scale_width_size(*image.size, target_width, crop_size)
    return image if size == image.size else image.resize(size, method)


def scale_width_size(width, height, target_width, crop_size):
    """(width, height) scaled to target_width, keeping the aspect ratio but at least crop_size tall."""
    if width == target_width and height >= crop_size:
        return width, height
    return target_width, int(max(target_width * height / width, crop_size))
