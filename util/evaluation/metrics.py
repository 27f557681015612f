"""Full-reference image quality metrics: L1, PSNR and SSIM.

l1, psnr, ssim and score_pair take two uint8 arrays of the same shape, HxWx3
(RGB) or HxW (grayscale), on the 8-bit scale; score_in_units takes the data's
own values (16-bit, float, any channel count) with the range of each channel.

PSNR of identical images is float('inf'). JSON cannot hold it, so `summarize`
averages PSNR over finite values only, and `json_safe` turns any non-finite
number into None (JSON null) before writing.

PSNR and SSIM are not torchmetrics' (README, Measuring quality): its SSIM also averages the border
windows over reflected pixels (0.001 to 0.05 away from scikit-image's on the tests' images), its PSNR
is 3e-8 relative off (10/ln 10 in float32), and importing it costs seconds on every test.py run.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # 11x11 window: int(3.5 * sigma + 0.5), scikit-image's truncation
SSIM_K1 = 0.01
SSIM_K2 = 0.03
DATA_RANGE = 255.0


def _check_pair(a, b):
    """The two images as uint8 arrays, after checking that they can be compared."""
    a = np.asarray(a)
    b = np.asarray(b)
    # A float image in 0..1 would silently give nonsense on the 8-bit scale.
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise TypeError(f"expected uint8 images, got {a.dtype} and {b.dtype}")
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"expected HxW or HxWxC image, got shape {a.shape}")
    return a, b


def l1(a, b):
    """Mean absolute difference on the 0..1 scale."""
    a, b = _check_pair(a, b)
    return float(np.mean(np.abs(a.astype(np.float64) - b)) / DATA_RANGE)


def psnr(a, b):
    """Peak signal-to-noise ratio in dB (MAX=255); inf for identical images."""
    a, b = _check_pair(a, b)
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(DATA_RANGE**2 / mse))


def _gaussian_window():
    x = torch.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=torch.float64)
    g = torch.exp(-(x**2) / (2 * SSIM_SIGMA**2))
    return (g / g.sum()).float()


def ssim(a, b):
    """Mean SSIM (Wang et al. 2004), averaged over channels.

    Gaussian 11x11 window with sigma 1.5, K1=0.01, K2=0.03, L=255, population
    covariances and only windows fully inside the image; this equals
    skimage.metrics.structural_similarity(a, b, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1)
    within 1e-5 (1e-6 or less from 256x256 up).
    """
    a, b = _check_pair(a, b)
    # The window sums run as float32 convolutions, 2.5x faster than float64 in numpy. Second moments are
    # taken around 128, where squares stay below 2**14, so float32 moves the result by 1e-5 at most.
    images = torch.from_numpy(np.stack([a, b]).reshape(2, a.shape[0], a.shape[1], -1)).permute(0, 3, 1, 2).float()
    return float(_ssim_per_channel(images, [DATA_RANGE], [128.0]).mean())


def _ssim_per_channel(images, data_range, centre):
    """The mean SSIM of each channel of images[0] against images[1] ((2, C, H, W)): a tensor of C values.
    data_range: the L of the constants, and centre: where the second moments are taken, one for all channels
    or one per channel. The window sums run in images' type; the SSIM formula itself in float64. Its mean over
    channels is scikit-image's multichannel SSIM (a mean per channel first, then over channels)."""
    size = 2 * SSIM_RADIUS + 1
    if images.shape[2] < size or images.shape[3] < size:
        raise ValueError(f"SSIM needs images of at least {size}x{size}, got {tuple(images.shape[2:])}")
    channels = images.shape[1]
    data_range, centre = (torch.tensor(v, dtype=torch.float64).view(-1, 1, 1) for v in (data_range, centre))
    centred = images - centre.to(images.dtype)
    maps = torch.cat([images.reshape(2 * channels, *images.shape[2:]),
                      centred[0] * centred[0], centred[1] * centred[1], centred[0] * centred[1]])[None]
    window = _gaussian_window().to(images.dtype)
    groups = maps.shape[1]
    maps = F.conv2d(maps, window.view(1, 1, size, 1).expand(groups, 1, size, 1), groups=groups)
    maps = F.conv2d(maps, window.view(1, 1, 1, size).expand(groups, 1, 1, size), groups=groups)
    mu_a, mu_b, aa, bb, ab = maps[0].double().split(channels)
    var_a = aa - (mu_a - centre) ** 2
    var_b = bb - (mu_b - centre) ** 2
    cov = ab - (mu_a - centre) * (mu_b - centre)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return ssim_map.mean(dim=(1, 2))


def score_pair(output, target):
    """All metrics of one output image against its target."""
    return {"l1": l1(output, target), "psnr": psnr(output, target), "ssim": ssim(output, target)}


# The scores in the data's units, all channels together; and of each channel where there are several.
UNIT_METRICS = ("mae", "l1", "psnr", "ssim")
CHANNEL_METRICS = ("mae", "psnr", "ssim")


def names_in_units(channels):
    """The names of score_in_units's scores of data of that many channels, in its order."""
    each = tuple(f"{metric}[{c}]" for metric in CHANNEL_METRICS for c in range(channels)) if channels > 1 else ()
    return UNIT_METRICS + each


def score_in_units(output, target, ranges):
    """All metrics of an output against its target in the data's own units: H x W x C arrays of any numeric type,
    channel c over its range ranges[c] = (low, high) (a ValueMapping's).

        mae   the mean absolute error in the data's units, over all channels (HU for CT, millimetres for depth)
        l1    the same on each channel's 0..1 scale of its range, as the 8-bit l1 is on 0..255's
        psnr  in dB, of the error normalised by each channel's range, pooled over the channels as the 8-bit PSNR
              pools RGB's (one channel: the usual PSNR with data_range = high - low); inf for identical images
        ssim  the mean over channels of each one's SSIM with its range as L

    and, with more than one channel, each channel's own as mae[c], psnr[c] and ssim[c] (its channels may hold
    different things: a depth and a confidence).
    """
    output, target = np.asarray(output, np.float64), np.asarray(target, np.float64)
    if output.shape != target.shape or output.ndim != 3 or output.shape[2] != len(ranges):
        raise ValueError(f"expected two HxWxC arrays of {len(ranges)} channels, got {output.shape} and {target.shape}")
    ranges = np.array(ranges, np.float64)
    low, width = ranges[:, 0], ranges[:, 1] - ranges[:, 0]
    error = output - target
    mae = np.abs(error).mean(axis=(0, 1))
    normalised_mse = (error**2).mean(axis=(0, 1)) / width**2
    pair = torch.from_numpy(np.stack([output, target])).permute(0, 3, 1, 2)
    ssims = _ssim_per_channel(pair, width, low + width / 2)
    scores = {"mae": float(mae.mean()), "l1": float((mae / width).mean()), "psnr": _psnr(normalised_mse.mean()),
              "ssim": float(ssims.mean())}
    if len(ranges) > 1:  # each channel's own
        scores.update({f"mae[{c}]": float(v) for c, v in enumerate(mae)})
        scores.update({f"psnr[{c}]": _psnr(v) for c, v in enumerate(normalised_mse)})
        scores.update({f"ssim[{c}]": float(v) for c, v in enumerate(ssims)})
    return scores


def _psnr(normalised_mse):
    """PSNR in dB of a mean squared error divided by the squared data range; inf for none."""
    return float("inf") if normalised_mse == 0 else float(-10.0 * np.log10(normalised_mse))


def summarize(scores):
    """Mean of each metric over a list of score_pair dicts.

    Non-finite values (PSNR of a perfect reconstruction) are left out of the
    mean; if a metric has no finite value at all its mean is inf.
    """
    if not scores:
        raise ValueError("no scores to summarize")
    summary = {}
    for key in scores[0]:
        finite = [s[key] for s in scores if math.isfinite(s[key])]
        summary[key] = float(np.mean(finite)) if finite else float("inf")
    return summary


def json_safe(values):
    """Copy of a dict with its non-finite float values replaced by None."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()}
