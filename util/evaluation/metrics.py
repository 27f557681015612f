"""Full-reference image quality metrics: L1, PSNR and SSIM.

All functions take two uint8 arrays of the same shape, HxWx3 (RGB) or HxW
(grayscale).

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
    size = 2 * SSIM_RADIUS + 1
    if a.shape[0] < size or a.shape[1] < size:
        raise ValueError(f"SSIM needs images of at least {size}x{size}, got {a.shape}")
    # Channels first: (2, C, H, W).
    images = torch.from_numpy(np.stack([a, b]).reshape(2, a.shape[0], a.shape[1], -1)).permute(0, 3, 1, 2).float()
    channels = images.shape[1]
    # The window sums run as float32 convolutions, 2.5x faster than float64 in numpy. Second moments are
    # taken around 128, where squares stay below 2**14, so float32 moves the result by 1e-5 at most; the
    # SSIM formula itself is evaluated in float64.
    centred = images - 128
    maps = torch.cat([images.reshape(2 * channels, *images.shape[2:]),
                      centred[0] * centred[0], centred[1] * centred[1], centred[0] * centred[1]])[None]
    window = _gaussian_window()
    groups = maps.shape[1]
    maps = F.conv2d(maps, window.view(1, 1, size, 1).expand(groups, 1, size, 1), groups=groups)
    maps = F.conv2d(maps, window.view(1, 1, 1, size).expand(groups, 1, 1, size), groups=groups)
    mu_a, mu_b, aa, bb, ab = maps[0].double().split(channels)
    var_a = aa - (mu_a - 128) ** 2
    var_b = bb - (mu_b - 128) ** 2
    cov = ab - (mu_a - 128) * (mu_b - 128)
    c1 = (SSIM_K1 * DATA_RANGE) ** 2
    c2 = (SSIM_K2 * DATA_RANGE) ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    # Mean per channel first, then over channels, as scikit-image does.
    return float(ssim_map.mean(dim=(1, 2)).mean())


def score_pair(output, target):
    """All metrics of one output image against its target."""
    return {"l1": l1(output, target), "psnr": psnr(output, target), "ssim": ssim(output, target)}


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
