"""The segmentation network of the semantic score: photo -> one class per pixel (util/evaluation/semantic.py).

A small U-Net (Ronneberger et al. 2015): two 3x3 convolutions with batch norm and ReLU at each of four
scales, 2x2 max pooling down, bilinear upsampling up, skip connections between the scales, a 1x1
convolution to the class scores. At width 16 it has 0.5 M parameters; a 128x128 photo costs 1.3 GFLOP
to segment and 4 GFLOP to train on (forward and backward), so an epoch of facades' 400 photos takes
well under a minute on 2 CPU cores (scripts/train_segmenter.py, docs/quality.md).

A segmenter file holds the weights with what is needed to use them: the palette (class i is the colour
palette[i] of the label maps), the size it was trained at, and its width.
"""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from util.errors import UserError
from util.files import atomic_torch_save

KIND = 'pix2pix semantic-score segmenter'
VERSION = 1


def conv_block(in_channels, out_channels):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(True))


class SegmenterNet(nn.Module):
    """U-Net with `width` channels at full resolution, doubling at each of the 3 lower scales."""

    def __init__(self, num_classes, width=16, scales=4):
        super().__init__()
        channels = [width * 2 ** k for k in range(scales)]
        self.down = nn.ModuleList(conv_block(c_in, c_out) for c_in, c_out in zip([3] + channels, channels))
        self.up = nn.ModuleList(conv_block(c_low + c_skip, c_skip)
                                for c_low, c_skip in zip(channels[:0:-1], channels[-2::-1]))
        self.classify = nn.Conv2d(width, num_classes, 1)
        self.scales = scales

    def forward(self, x):
        """Class scores (N, K, H, W) of photos (N, 3, H, W) in [-1, 1]; H and W multiples of 2^(scales-1)."""
        skips = []
        for k, block in enumerate(self.down):
            x = block(x if k == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for block, skip in zip(self.up, skips[-2::-1]):
            x = F.interpolate(x, size=skip.shape[-2:], mode='bilinear', align_corners=False)
            x = block(torch.cat([x, skip], 1))
        return self.classify(x)


class Segmenter:
    """A trained SegmenterNet with its palette, in eval mode on a device: what the semantic score uses."""

    def __init__(self, net, palette, size, device='cpu', path=None, info=None):
        self.net = net.to(device).eval()
        self.palette = torch.as_tensor(palette, dtype=torch.uint8).cpu()
        self.size = size
        self.device = torch.device(device)
        self.path = path
        self.info = info or {}

    @torch.inference_mode()
    def classes(self, photos):
        """Class indices (N, H, W) of photos (N, 3, H, W) in [-1, 1] of any size: each is resized to the
        size the network was trained at, and its class scores back to the photo's size."""
        photos = photos.to(self.device, torch.float32)
        size = photos.shape[-2:]
        if tuple(size) != (self.size, self.size):
            photos = F.interpolate(photos, size=(self.size, self.size), mode='bilinear', antialias=True,
                                   align_corners=False)
        scores = self.net(photos)
        if tuple(size) != (self.size, self.size):
            scores = F.interpolate(scores, size=size, mode='bilinear', align_corners=False)
        return scores.argmax(1)


def save_segmenter(path, net, palette, size, info):
    """Write a segmenter file (crash-safe): the weights on the CPU, the palette, the size, the width and
    `info` (a dict of plain values: how it was trained, its scores)."""
    state = {'kind': KIND, 'version': VERSION,
             'weights': {k: v.detach().cpu() for k, v in net.state_dict().items()},
             'palette': torch.as_tensor(palette, dtype=torch.uint8).cpu(), 'size': int(size),
             'width': net.classify.in_channels, 'info': info}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_torch_save(state, path)


def load_segmenter(path, device='cpu'):
    """The Segmenter saved at path; a UserError names the file and the fix when it is not one."""
    make_one = 'make one with scripts/train_segmenter.py --dataroot DATAROOT --direction ...'
    if not os.path.isfile(path):
        raise UserError(f'--segmenter {path}: no such file; {make_one}')
    try:
        # weights_only: a crafted file cannot run code when loaded.
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # torch raises several types for truncated zips, bad pickles and refused globals
        raise UserError(f'--segmenter {path}: cannot read it ({str(e).splitlines()[0]}); it is truncated or '
                        f'not a segmenter file: {make_one}')
    if not isinstance(state, dict) or state.get('kind') != KIND:
        raise UserError(f'--segmenter {path} is not a segmenter file (a generator checkpoint?); {make_one}')
    if state.get('version') != VERSION:
        raise UserError(f'--segmenter {path} is a segmenter file of version {state.get("version")}; this code '
                        f'reads version {VERSION}: train it again with scripts/train_segmenter.py')
    missing = [key for key in ('weights', 'palette', 'size', 'width') if key not in state]
    if missing:
        raise UserError(f'--segmenter {path} lacks its {", ".join(missing)}; the file is damaged: {make_one}')
    palette = state['palette']
    net = SegmenterNet(len(palette), state['width'])
    try:
        net.load_state_dict(state['weights'])
    except (RuntimeError, KeyError, TypeError) as e:
        raise UserError(f'--segmenter {path}: its weights do not fit its own description '
                        f'({str(e).splitlines()[0]}); the file is damaged: {make_one}')
    return Segmenter(net, palette, state['size'], device, path, state.get('info'))
