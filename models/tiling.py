"""Translating an image of any size in overlapping tiles (test.py --tile), blended so that no seam shows.

The generator sees one tile at a time (--tile_batch of them at once), so the memory its activations take
depends on the tile's size, not the image's; only the input and the blended output are whole-image buffers.
Neighbouring tiles share at least --tile_overlap pixels, and each tile's output is weighted by a ramp that
falls to zero across the overlap towards every neighbour (feathering, see ramp): where two tiles overlap, their
outputs cross-fade, so a tile's edge, where the generator saw the least context, weighs least (nothing).

The paper's test mode normalises with the statistics of what the generator sees. Tile by tile, each tile would
get its own, and neighbouring tiles would differ in tone. So in that mode a first pass over every tile gathers
each normalisation layer's statistics over the whole image (each pixel counted once, each layer's input
computed with the tiles' own statistics upstream), and the second pass normalises every tile with them. --eval (running
statistics, the same for every tile) needs one pass and no gathering: the mode for large images.
"""
import contextlib
import math

import torch
import torch.nn.functional as F

from models import networks
from util.display.visualizer import progress_bar


def tile_starts(length, tile, overlap, multiple=1):
    """Start offsets of tiles of `tile` pixels that cover [0, length), spread evenly, neighbours sharing at least
    `overlap` pixels; one tile (of the whole length) when it fits in one. Starts are multiples of `multiple` (with
    length and tile multiples of it): a generator that halves the resolution k times sees each tile on the grid it
    sees the whole image on, so that its strided layers sample the same pixels."""
    if length <= tile:
        return [0]
    steps = (length - tile) // multiple  # in units of multiple
    longest = max(1, (tile - overlap) // multiple)
    count = math.ceil(steps / longest) + 1
    return [round(i * steps / (count - 1)) * multiple for i in range(count)]


def ramp(start, size, length, overlap):
    """The feathering weight along one side of a tile at start, towards each neighbour: 0 over the outer quarter of
    the overlap (where the generator saw least of what lies beyond), rising linearly over its middle half to 1;
    1 elsewhere and along the image's border. A generator whose output reaches no further than a quarter of the
    overlap (a ResNet's, in --eval) then gives exactly its whole-image output."""
    weight = torch.ones(size)
    outer, middle = overlap // 4, overlap - 2 * (overlap // 4)
    rising = torch.cat([torch.zeros(outer), (torch.arange(middle) + 0.5) / middle, torch.ones(outer)])
    if overlap:
        if start > 0:
            weight[:overlap] = rising
        if start + size < length:
            weight[-overlap:] = torch.minimum(weight[-overlap:], rising.flip(0))
    return weight


def translate(generate, net, x, tile, overlap, batch, multiple):
    """generate(x) in tiles: x (N, C, H, W) -> the blended (N, C_out, H, W). generate runs the generator on a
    batch of tiles; `multiple` is the generator's grid of strides (BaseModel.generate pads a whole image to it),
    on which the tiles start; net is the generator, whose normalisation layers gather the whole image's
    statistics first in the paper's test mode."""
    # Padded as generate pads a whole image, so that the tiles cover what the whole image's pass would see.
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    mode = 'reflect' if pad_h < height and pad_w < width else 'replicate'
    x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode) if pad_h or pad_w else x
    outputs = []
    for image in x.split(1):
        layers = [layer for layer in normalisations(net) if layer.training and layer.each_image]
        if layers:
            with whole_image_statistics(layers):
                run_tiles(generate, image, tile, overlap, batch, multiple, 'gathering statistics', layers)
                for layer in layers:
                    layer.gathered.fix()
                outputs.append(run_tiles(generate, image, tile, overlap, batch, multiple, 'tiles'))
        else:
            outputs.append(run_tiles(generate, image, tile, overlap, batch, multiple, 'tiles'))
    output = outputs[0] if len(outputs) == 1 else torch.cat(outputs)  # one image: no copy of it
    return output[..., :height, :width]


def run_tiles(generate, image, tile, overlap, batch, multiple, what, gathering=()):
    """The blended output of one image (1, C, H, W), its tiles starting at multiples of `multiple` (its sides are
    multiples of it), run `batch` at a time. gathering: normalisation layers gathering statistics, told each
    tile's share of every pixel (its weight over all the tiles' weights there), so that each pixel of the image
    counts once."""
    height, width = image.shape[-2:]
    tile_h, tile_w = min(tile, height), min(tile, width)
    boxes = [(y, x) for y in tile_starts(height, tile, overlap, multiple)
             for x in tile_starts(width, tile, overlap, multiple)]
    weights = [ramp(y, tile_h, height, overlap)[:, None] * ramp(x, tile_w, width, overlap)[None] for y, x in boxes]
    coverage = torch.zeros(height, width)
    for (y, x), weight in zip(boxes, weights):
        coverage[y:y + tile_h, x:x + tile_w] += weight
    total = None
    for first in progress_bar(range(0, len(boxes), batch), desc=what, total=math.ceil(len(boxes) / batch),
                              leave=False):
        chunk = range(first, min(first + batch, len(boxes)))
        if gathering:
            shares = torch.stack([weights[i] / coverage[boxes[i][0]:boxes[i][0] + tile_h,
                                                        boxes[i][1]:boxes[i][1] + tile_w] for i in chunk])[:, None]
            for layer in gathering:
                layer.gathered.shares = shares
        results = generate(torch.cat([image[..., y:y + tile_h, x:x + tile_w] for y, x in (boxes[i] for i in chunk)]))
        results = results.float()
        if total is None:
            total = image.new_zeros((1, results.shape[1], height, width), dtype=torch.float32)
        for result, i in zip(results, chunk):
            y, x = boxes[i]
            total[..., y:y + tile_h, x:x + tile_w] += result * weights[i].to(total)
    return total.div_(coverage.to(total))


def normalisations(net):
    return [module for module in net.modules() if isinstance(module, networks.EachImageStatistics)]


@contextlib.contextmanager
def whole_image_statistics(layers):
    """Within: the normalisation layers gather their per-channel mean and variance over everything they see,
    normalising each image with its own meanwhile, until each layer's gathered.fix(); from then on they normalise
    with what they gathered. Afterwards they take each image's own again."""
    for layer in layers:
        layer.gathered = WholeImageStatistics()
    try:
        yield
    finally:
        for layer in layers:
            layer.gathered = None


class WholeImageStatistics:
    """Per-channel sums of a layer's inputs over a whole image's tiles, each pixel weighted by its tile's share of
    it (shares: (N, 1, H, W) at the generator's input, averaged down to the layer's resolution), in float64,
    then their mean and (biased, as normalisation takes it) variance. Exact for a layer whose input depends on
    its pixels alone; deeper layers' inputs were computed with the tiles' own statistics upstream."""

    def __init__(self):
        self.sum = self.squares = self.count = None
        self.shares = None
        self.fixed = None

    def add(self, x):
        shares = F.adaptive_avg_pool2d(self.shares.double(), x.shape[-2:]).to(x.device)
        values = x.detach().double()
        sums = (values * shares).sum((0, 2, 3))
        squares = (values * values * shares).sum((0, 2, 3))
        count = shares.sum()
        if self.sum is None:
            self.sum, self.squares, self.count = sums, squares, count
        else:
            self.sum, self.squares, self.count = self.sum + sums, self.squares + squares, self.count + count

    def fix(self):
        mean = self.sum / self.count
        self.fixed = (mean.float(), (self.squares / self.count - mean * mean).clamp_min(0).float())

    def normalise(self, layer, x):
        """x normalised with the gathered statistics once fixed, else (gathering) with its own per image, as the
        paper's mode does."""
        if self.fixed is not None:
            mean, var = self.fixed
            return F.batch_norm(x, mean.to(x.device), var.to(x.device), layer.weight, layer.bias, False, 0.0,
                                layer.eps)
        self.add(x)
        return F.instance_norm(x, weight=layer.weight, bias=layer.bias, use_input_stats=True, eps=layer.eps)
