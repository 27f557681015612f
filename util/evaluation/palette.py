"""Classes of colour-coded label maps: finding the palette, and reading each pixel's class.

Label maps such as facades' are colour images, one colour per class, often resized and stored as JPEG.
JPEG moves every colour a few levels inside a region and blends neighbouring colours along edges and
across thin regions. So the palette is found from the pixels inside regions only (no channel varying by
more than EDGE over 5x5 pixels): their colours form one tight cluster per class, the peaks of the
smoothed 3-D colour histogram, refined to the mean colour around them (mean shift) and merged when they
meet. A pixel's class is the nearest palette colour when it is within `tolerance` of one; the blended
pixels are read as a blend of two classes (label_classes says how). Every pixel ends with a class unless
no pixel near it has one; IGNORE marks those, and they are left out of training and scoring.
"""
import numpy as np
import torch
import torch.nn.functional as F

IGNORE = -1
BIN = 4  # histogram bins of 4 levels per channel: 64^3 bins
EDGE = 24  # see interior_pixels
RADIUS = 12.0  # mean-shift window, and the distance under which two found colours are one class
TOLERANCE = 48.0  # default: a pixel this close to a palette colour has its class
MIN_FRACTION = 0.001  # default: a class holds at least this share of the pixels inside regions
MIN_COVERED = 0.8  # label maps: at least this share of the pixels inside regions has a class colour
MIX_PASSES = 8  # blends are read from the known pixels inwards, this many pixels deep
MIX_WINDOW = 9  # the classes around a blended pixel are those known within this window
YCBCR = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))  # JPEG's (ITU-R BT.601)


def interior_pixels(image):
    """The colours (M, 3) of an HxWx3 uint8 image's pixels inside regions: no channel varies by more than
    EDGE over their 5x5 neighbourhood. (A JPEG blend across an edge spans 2 to 4 pixels, so a 3x3 window
    can see a smooth ramp as uniform.)"""
    image = np.asarray(image, np.uint8)
    spread = (window_extreme(image, np.maximum).astype(np.int16) - window_extreme(image, np.minimum)).max(-1)
    return image[2:-2, 2:-2][spread <= EDGE]


def thin_out(pixels, most=1 << 16):
    """Every k-th pixel, so that at most about `most` remain (large label maps add memory, not colours)."""
    return pixels[::max(1, len(pixels) // most)]


def window_extreme(image, pick, size=5):
    """pick (np.maximum or np.minimum) over each size x size window lying inside the image (separable:
    a few elementwise passes, ten times faster than torch's max_pool2d on a CPU)."""
    h, w = image.shape[:2]
    rows = image[:, :w - size + 1]
    for k in range(1, size):
        rows = pick(rows, image[:, k:w - size + 1 + k])
    out = rows[:h - size + 1]
    for k in range(1, size):
        out = pick(out, rows[k:h - size + 1 + k])
    return out


def discover_palette(images, min_fraction=MIN_FRACTION):
    """The class colours (K, 3) uint8, in RGB order, of an iterable of HxWx3 uint8 label maps. Raises
    ValueError for images that are not colour label maps (photos, say)."""
    pixels = np.concatenate([thin_out(interior_pixels(image)) for image in images])
    if len(pixels) == 0:
        raise ValueError('no uniform regions in the label maps: they hold no class colours')
    # Per histogram bin: its pixel count and their mean colour (exact colours, fewer points than pixels).
    index = ((pixels[:, 0] // BIN).astype(np.int64) * 64 + pixels[:, 1] // BIN) * 64 + pixels[:, 2] // BIN
    counts = np.bincount(index, minlength=64 ** 3).astype(np.float64)
    sums = np.stack([np.bincount(index, weights=pixels[:, c], minlength=64 ** 3) for c in range(3)], 1)
    occupied = counts > 0
    colours = torch.from_numpy(sums[occupied] / counts[occupied, None])
    weights = torch.from_numpy(counts[occupied])
    counts = torch.from_numpy(counts)
    # Seeds: the peaks of the smoothed histogram that hold enough pixels to be a class.
    smooth = F.avg_pool3d(counts.reshape(1, 1, 64, 64, 64), 3, stride=1, padding=1)
    peaks = (smooth == F.max_pool3d(smooth, 5, stride=1, padding=2)) & (smooth * 27 >= min_fraction * len(pixels) / 4)
    seeds = peaks[0, 0].nonzero().double() * BIN + BIN / 2
    modes, support = mean_shift(seeds, colours, weights)
    keep = support >= min_fraction * len(pixels)
    modes, support = merge(modes[keep], support[keep])
    # In a label map nearly every uniform pixel has a class colour; in a photo flat regions (sky, walls)
    # take any colour, and the peaks found cover few of them.
    covered = float(support.sum()) / len(pixels)
    if covered < MIN_COVERED:
        raise ValueError(f'only {covered:.0%} of the uniform pixels have one of the {len(modes)} colours found: '
                         f'these are not colour label maps')
    palette = np.round(modes.numpy()).clip(0, 255).astype(np.uint8)
    return palette[np.lexsort(palette.T[::-1])]  # sorted by R, then G, then B: the same palette, the same order


def mean_shift(seeds, colours, counts, steps=20):
    """Move each seed to the weighted mean of the colours within RADIUS until it stops; returns the
    modes and the number of pixels within RADIUS of each."""
    modes = seeds.clone()
    for _ in range(steps):
        near = (torch.cdist(modes, colours) <= RADIUS).double() * counts  # (seeds, colours) weights
        weight = near.sum(1)
        moved = torch.where(weight[:, None] > 0, near @ colours / weight.clamp(min=1)[:, None], modes)
        done = (moved - modes).abs().max() < 0.01
        modes = moved
        if done:
            break
    return modes, (torch.cdist(modes, colours) <= RADIUS).double() @ counts


def merge(modes, support):
    """One colour per class: of modes closer than RADIUS, the one with the most pixels stays."""
    kept = []
    for i in support.argsort(descending=True).tolist():
        if all(torch.dist(modes[i], modes[j]) >= RADIUS for j in kept):
            kept.append(i)
    return modes[kept], support[kept]


def label_classes(images, palette, tolerance=TOLERANCE, nearest=None):
    """Class maps (N, H, W) of label maps (N, H, W, 3) (uint8 tensor), on their device. nearest: what
    nearest_classes(images, palette, tolerance) gives, when the caller has it already.

    A pixel within `tolerance` of a palette colour takes that class. The others lie along edges and in
    thin regions, where resizing and JPEG's half-resolution colour blend a class with its neighbour:
    JPEG keeps brightness (luma) at full resolution but averages the colour (chroma) over 2x2 pixels and
    more, so a 4-pixel yellow bar on blue keeps yellow's luma and takes a colour halfway to blue, which
    can lie nearer a third class than yellow. Such a pixel is explained as a blend of a class c with a
    class s around it, luma and chroma each mixed in their own proportion; s is one of the 3 commonest
    classes already known within MIX_WINDOW pixels, and c any class. The best fit decides: c if the pixel is
    mostly c (by luma, or by chroma when c and s have nearly the same luma), else s. This runs from the
    known pixels inwards, a few pixels per pass. What is left (no known pixel near, or no good fit) takes
    the commonest class around it (fill_edges), and single pixels of a class none of their 8
    neighbours has are given their neighbours' commonest class."""
    palette = torch.as_tensor(palette, device=images.device)
    classes = nearest_classes(images, palette, tolerance) if nearest is None else nearest.clone()
    matched = classes != IGNORE
    colours, references = ycbcr(images), ycbcr(palette)
    tried = torch.zeros_like(matched)  # a pixel no blend explained is not tried again
    for _ in range(MIX_PASSES):
        known = classes != IGNORE
        where = ~known & ~tried & (box_sum(box_sum(known[:, None].float(), MIX_WINDOW, -1), MIX_WINDOW, -2)[:, 0] > 0)
        if not where.any():
            break
        count, surround = votes(classes, len(palette), MIX_WINDOW).permute(0, 2, 3, 1)[where].topk(3, 1)  # (U, 3)
        blend, fit = explain_as_blend(colours[where], references, surround, count > 0)
        classes[where] = torch.where(fit <= tolerance, blend, IGNORE)
        tried |= where
    classes = fill_edges(classes, len(palette))
    # A lone pixel of a class none of its 8 neighbours has, where a blend was read, is a misreading.
    neighbours = votes(classes, len(palette), 3).permute(0, 2, 3, 1)[~matched]  # (U, K), its own class once
    own = neighbours.gather(1, classes[~matched].clamp(min=0)[:, None])[:, 0]
    classes[~matched] = torch.where((own < 1.5) & (classes[~matched] != IGNORE), neighbours.argmax(1), classes[~matched])
    return classes


def ycbcr(colours):
    """Luma and the two chroma channels (JPEG's colour space) of RGB colours (..., 3), as floats."""
    return colours.float() @ torch.tensor(YCBCR, device=colours.device).T


def explain_as_blend(pixels, references, surround, present):
    """For pixels (U, 3) in YCbCr: the class each is mostly made of, and how far the best blend lies.
    A blend of class c with class s has luma s + a (c - s) and chroma s + b (c - s), a and b in [0, 1];
    s is one of surround (U, 3) where present, c any class of references (K, 3)."""
    s = references[surround][:, :, None]  # (U, 3, 1, 3)
    c = references[None, None]  # (1, 1, K, 3)
    p = pixels[:, None, None]  # (U, 1, 1, 3)
    a, luma_miss = nearest_on_segment(p[..., :1], s[..., :1], c[..., :1])
    b, chroma_miss = nearest_on_segment(p[..., 1:], s[..., 1:], c[..., 1:])
    miss = (luma_miss + chroma_miss).sqrt().masked_fill(~present[:, :, None], float('inf'))  # (U, 3, K)
    fit, best = miss.flatten(1).min(1)
    which, k = best // len(references), best % len(references)
    row = torch.arange(len(pixels), device=pixels.device)
    s_class = surround[row, which]
    # Luma decides when it tells c from s; chroma where their luma is alike (facades' yellow and green).
    share = torch.where((references[k, 0] - references[s_class, 0]).abs() >= 30, a[row, which, k], b[row, which, k])
    return torch.where(share >= 0.5, k, s_class), fit


def nearest_on_segment(p, s, c):
    """The point of each segment s -> c nearest to p: its position t in [0, 1] and the squared distance."""
    d = c - s
    t = (((p - s) * d).sum(-1) / (d * d).sum(-1).clamp(min=1e-6)).clamp(0, 1)
    return t, ((p - s - t[..., None] * d) ** 2).sum(-1)


def votes(classes, num_classes, window):
    """How many known pixels of each class each window x window neighbourhood holds (N, K, H, W)."""
    n, h, w = classes.shape
    one_hot = torch.zeros(n, num_classes, h, w, device=classes.device)
    one_hot.scatter_(1, classes.clamp(min=0)[:, None], (classes != IGNORE)[:, None].float())
    return box_sum(box_sum(one_hot, window, -1), window, -2)


def box_sum(x, window, dim):
    """Sums over windows of `window` (odd) elements centred on each element along dim, zeros outside
    (by differences of a running sum: several times faster than avg_pool2d on a CPU)."""
    half = window // 2
    padding = [0, 0] * (-dim - 1) + [half + 1, half]  # one more zero in front: the running sum starts at 0
    total = F.pad(x, padding).cumsum(dim)
    size = x.shape[dim]
    return total.narrow(dim, window, size) - total.narrow(dim, 0, size)


def nearest_classes(images, palette, tolerance=TOLERANCE):
    """Class indices (...) of colours (..., 3) (uint8 tensor): the nearest palette colour, or IGNORE
    beyond tolerance. Runs on the images' device."""
    palette = torch.as_tensor(palette, device=images.device).float()
    colours = images.reshape(-1, 3).float()
    classes = torch.empty(len(colours), dtype=torch.long, device=images.device)
    step = 1 << 18  # (pixels, classes) distances in slices of bounded memory
    for start in range(0, len(colours), step):
        distance, nearest = torch.cdist(colours[start:start + step], palette).min(1)
        classes[start:start + step] = torch.where(distance <= tolerance, nearest, IGNORE)
    return classes.reshape(images.shape[:-1])


def fill_edges(classes, num_classes, steps=8):
    """Class maps (N, H, W) whose IGNORE pixels take the commonest known class among their 3x3
    neighbours, growing inwards for up to `steps` pixels (ties: the lower class index)."""
    for _ in range(steps):
        unknown = classes == IGNORE
        if not unknown.any():
            break
        count, best = votes(classes, num_classes, 3).max(1)
        classes = torch.where(unknown & (count > 0), best, classes)
    return classes
