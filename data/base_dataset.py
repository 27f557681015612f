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

from data.image_folder import folder_of


class BaseDataset(data.Dataset):
    """A dataset defines load_sample(index, rng), __len__ and, if it needs options, modify_commandline_options
    (and validate_options to check them).

    The loader's sampler (data/__init__.py) asks for dataset[(epoch, index)]; a plain index is epoch 0.
    """

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


def get_params(opt, size, rng):
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


def transform(image, opt, params, grayscale=False, method=Image.BICUBIC):
    """PIL image -> tensor in [-1, 1], resized, cropped and flipped as params and opt say.

    --preprocess none keeps the size exactly (no resampling to a multiple of 4 as in the reference):
    BaseModel.generate pads to a size the generator takes and crops its output back.
    """
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
    return pil_to_tensor(image).float().div_(127.5).sub_(1.0)


def pil_to_tensor(image):
    """uint8 CxHxW tensor of a PIL image (as torchvision's, without importing torchvision: 1.3 s per process)."""
    return torch.from_numpy(np.array(image, np.uint8).reshape(image.height, image.width, -1)).permute(2, 0, 1)


def scale_width(image, target_width, crop_size, method=Image.BICUBIC):
    ow, oh = image.size
    if ow == target_width and oh >= crop_size:
        return image
    h = int(max(target_width * oh / ow, crop_size))
    return image.resize((target_width, h), method)
