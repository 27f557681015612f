"""How the values of one side of the data (A or B), in the data's own units, map to the network's [-1, 1].

Per channel, [low, high] maps linearly to [-1, 1]: the type's full range (8-bit: 0..255, today's and the
reference's mapping), a range the user gives (a CT window of -1000:3000 HU), or one measured over the training
set. Inputs are mapped without clipping. The generator's tanh output reaches [low, high] only, so an output
written back in units lies in that range; it is then clipped to what the file's type holds and, for integer
types, rounded.

A mapping is saved as a dict (architecture.json, export metadata): {'type': 'uint16', 'ranges': [[0, 4095]],
'how': 'measured'}.
"""
import numpy as np
import torch

from util.arrays import TYPE_RANGES
from util.errors import UserError


class ValueMapping:
    def __init__(self, dtype, ranges, how):
        self.dtype, self.how = dtype, how
        self.ranges = [(float(low), float(high)) for low, high in ranges]
        # (x - low) / half - 1 with low = 0, half = 127.5 is exactly the reference's x / 127.5 - 1.
        self.low = torch.tensor([low for low, _ in self.ranges], dtype=torch.float32).view(-1, 1, 1)
        self.half = torch.tensor([(high - low) / 2 for low, high in self.ranges], dtype=torch.float32).view(-1, 1, 1)

    @property
    def channels(self):
        return len(self.ranges)

    @classmethod
    def full(cls, dtype, channels):
        if dtype not in TYPE_RANGES:
            raise UserError(f'{dtype} data has no full range to map; measure it (--range_A/--range_B measured) or '
                            f'give one (LOW:HIGH)')
        return cls(dtype, [TYPE_RANGES[dtype]] * channels, 'full')

    @classmethod
    def from_dict(cls, saved):
        return cls(saved['type'], saved['ranges'], saved['how'])

    def to_dict(self):
        return {'type': self.dtype, 'ranges': [list(r) for r in self.ranges], 'how': self.how}

    def is_8bit_full(self):
        return self.dtype == 'uint8' and self.how == 'full'

    def to_network(self, units, in_place=False):
        """(C, H, W) or (N, C, H, W) float tensor in the data's units -> the network's values (in_place: in units
        itself, which saves the loader three passes over fresh memory per image)."""
        values = units if in_place else units.clone()
        if len(set(self.ranges)) == 1:  # one range for all channels: scalars, the reference's x / 127.5 - 1
            low, high = self.ranges[0]
            return (values.sub_(low) if low else values).div_((high - low) / 2).sub_(1)
        return values.sub_(self.low).div_(self.half).sub_(1)

    def to_units(self, values):
        """The network's (C, H, W) or (N, C, H, W) values -> the data's units: float64, or for 8-bit data float32
        as util.images.tensor2im computes it ((y + 1) / 2 * 255), so that 8-bit files are as before."""
        precision = torch.float32 if self.dtype == 'uint8' else torch.float64
        # One fresh copy, then in place: out of place, each step would hold another image-sized buffer, which at
        # 8192x8192 is 0.8 GB a step.
        units = values.detach().to('cpu', precision, copy=True)
        # From the ranges themselves rather than their float32 copies, so that a measured range's low and width
        # are exact: the formula export.py's description states, (y + 1) / 2 * (high - low) + low.
        low = torch.tensor([low for low, _ in self.ranges], dtype=precision).view(-1, 1, 1)
        width = torch.tensor([high - low for low, high in self.ranges], dtype=precision).view(-1, 1, 1)
        if self.dtype == 'uint8':
            units.clamp_(-1, 1)
        return units.add_(1).div_(2).mul_(width).add_(low)

    def to_array(self, values):
        """The network's (C, H, W) values -> an H x W x C array of the data's type (units_to_array)."""
        return self.units_to_array(self.to_units(values))

    def units_to_array(self, units):
        """(C, H, W) values in the data's units -> an H x W x C array of the data's type: clipped to what the type
        holds, and rounded for integer types."""
        units = units.detach().cpu().permute(1, 2, 0).numpy()
        if np.dtype(self.dtype).kind in 'iu':
            info = np.iinfo(self.dtype)
            rounded = np.round(units)
            return np.clip(rounded, info.min, info.max, out=rounded).astype(self.dtype)
        return units.astype(self.dtype)

    def preview(self, values, channels=(0, 1, 2)):
        """An 8-bit H x W x 3 picture of the network's (C, H, W) values: each shown channel through its range's
        window (so a depth of 0..4000 mm in a 16-bit file is not near-black), one channel as gray, and of more
        than three the ones named (the first three by default)."""
        values = values.detach().float().cpu()
        if values.shape[0] > 3:
            values = values[list(channels)]
        elif values.shape[0] == 2:
            values = torch.cat([values, values[:1]])  # two channels: red and green, with the first again as blue
        if values.shape[0] == 1:
            values = values.repeat(3, 1, 1)
        image = (values.clamp(-1, 1).permute(1, 2, 0).numpy() + 1.0) / 2.0 * 255.0
        return np.round(image).astype(np.uint8)

    def describe(self):
        ranges = ', '.join(f'{low:g}..{high:g}' for low, high in self.ranges)
        return f'{self.dtype}, {self.channels} channel{"s" if self.channels > 1 else ""}, {self.how}: {ranges}'


def parse_channels(text):
    """The channel numbers that --preview_channels names ('4,2,0' -> (4, 2, 0)); ValueError unless whole numbers
    separated by commas (options/checks.py says what the flag needs)."""
    return tuple(int(part) for part in text.split(','))


def parse_given(text, channels, flag):
    """LOW:HIGH for every channel, or one LOW:HIGH per channel separated by commas."""
    try:
        ranges = [tuple(float(v) for v in part.split(':')) for part in text.split(',')]
        if any(len(r) != 2 for r in ranges):
            raise ValueError
    except ValueError:
        raise UserError(f'{flag} {text}: give auto, full, measured, LOW:HIGH, or one LOW:HIGH per channel separated '
                        f'by commas (for example -1000:3000)')
    if len(ranges) == 1:
        ranges *= channels
    if len(ranges) != channels:
        raise UserError(f'{flag} {text}: {len(ranges)} ranges for {channels} channels; give one, or one per channel')
    empty = [f'{low:g}:{high:g}' for low, high in ranges if not high > low]
    if empty:
        raise UserError(f'{flag} {text}: the range {empty[0]} is empty; HIGH must be above LOW')
    return ranges


def measure(samples, percentile, what):
    """Per channel, the [percentile, 100 - percentile] range of samples (N x C values drawn from the training
    set): robust, so that a few hot pixels do not squash the rest. A constant channel is an error."""
    low = np.percentile(samples, percentile, axis=0)
    high = np.percentile(samples, 100 - percentile, axis=0)
    for channel, (lo, hi) in enumerate(zip(low, high)):
        if not hi > lo:
            raise UserError(f'{what}: channel {channel} is {lo:g} nearly everywhere in the training set, so its '
                            f'measured range is empty. Give its range, for example --range_A/--range_B '
                            f'{lo - 1:g}:{lo + 1:g}, or drop the channel.')
    return [(float(lo), float(hi)) for lo, hi in zip(low, high)]
