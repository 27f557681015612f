import math

import numpy as np
import pytest

from util.evaluation.metrics import json_safe, l1, psnr, score_pair, ssim, summarize


def random_image(seed, shape=(64, 64, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def structured_image(shape=(96, 80, 3)):
    """Smooth gradients plus a sharp-edged square: realistic local statistics."""
    h, w = shape[:2]
    y, x = np.mgrid[0:h, 0:w]
    channels = [
        128 + 100 * np.sin(x / 7.0) * np.cos(y / 11.0),
        255 * x / (w - 1),
        np.where((abs(y - h / 2) < h / 4) & (abs(x - w / 2) < w / 5), 220, 30),
    ]
    return np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)


def add_noise(image, sigma, seed):
    noise = np.random.default_rng(seed).normal(0, sigma, image.shape)
    return np.clip(np.round(image + noise), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("shape", [(32, 40, 3), (32, 40)])
def test_identical_images(shape):
    image = random_image(0, shape)
    assert l1(image, image) == 0.0
    assert psnr(image, image) == float("inf")
    assert ssim(image, image) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("d", [1, 5, 40])
def test_constant_offset(d):
    base = np.random.default_rng(1).integers(0, 256 - d, (32, 32, 3)).astype(np.uint8)
    shifted = base + np.uint8(d)
    assert l1(base, shifted) == pytest.approx(d / 255)
    assert l1(shifted, base) == pytest.approx(d / 255)
    assert psnr(base, shifted) == pytest.approx(20 * math.log10(255 / d))


def test_gaussian_noise_psnr():
    # Mid-grey keeps sigma 5 noise far from clipping; the rounding to integers
    # adds 1/12 to the variance.
    base = np.full((256, 256, 3), 128, np.uint8)
    sigma = 5.0
    noisy = add_noise(base, sigma, seed=2)
    expected = 10 * math.log10(255**2 / (sigma**2 + 1 / 12))
    assert psnr(base, noisy) == pytest.approx(expected, abs=0.05)


def test_input_checks():
    image = random_image(3, (16, 16, 3))
    with pytest.raises(ValueError):
        l1(image, image[:8])
    with pytest.raises(TypeError):
        psnr(image.astype(np.float32) / 255, image.astype(np.float32) / 255)
    with pytest.raises(ValueError):
        ssim(image[:8, :8], image[:8, :8])


def skimage_ssim(a, b):
    metrics = pytest.importorskip("skimage.metrics")
    kwargs = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    if a.ndim == 3:
        kwargs["channel_axis"] = -1
    return metrics.structural_similarity(a, b, **kwargs)


@pytest.mark.parametrize(
    "make_pair",
    [
        lambda: (random_image(4), random_image(5)),
        lambda: (random_image(6, (40, 52)), add_noise(random_image(6, (40, 52)), 30, 7)),
        lambda: (structured_image(), add_noise(structured_image(), 10, 8)),
        lambda: (structured_image(), np.clip(structured_image().astype(int) * 3 // 4 + 20, 0, 255).astype(np.uint8)),
        lambda: (structured_image((256, 256, 3)), np.roll(structured_image((256, 256, 3)), 3, axis=1)),
    ],
    ids=["random", "random-gray-noise", "structured-noise", "structured-contrast", "structured-shift-256"],
)
def test_ssim_matches_skimage(make_pair):
    a, b = make_pair()
    assert ssim(a, b) == pytest.approx(skimage_ssim(a, b), abs=1e-4)


def test_ssim_brightness_shift_and_symmetry():
    a = structured_image()
    b = np.clip(a.astype(int) + 30, 0, 255).astype(np.uint8)
    value = ssim(a, b)
    assert 0 < value < 1
    assert ssim(b, a) == pytest.approx(value, abs=1e-12)
    # A bigger shift is a worse match.
    assert ssim(a, np.clip(a.astype(int) + 80, 0, 255).astype(np.uint8)) < value


def test_score_pair_and_summarize():
    a = structured_image()
    b = add_noise(a, 10, 9)
    scores = score_pair(b, a)
    assert set(scores) == {"l1", "psnr", "ssim"}
    assert scores == {"l1": l1(b, a), "psnr": psnr(b, a), "ssim": ssim(b, a)}

    perfect = score_pair(a, a)
    summary = summarize([scores, perfect])
    assert summary["l1"] == pytest.approx(scores["l1"] / 2)
    assert summary["ssim"] == pytest.approx((scores["ssim"] + 1) / 2)
    # The infinite PSNR of the perfect pair is left out of the mean.
    assert summary["psnr"] == pytest.approx(scores["psnr"])
    assert summarize([perfect])["psnr"] == float("inf")
    with pytest.raises(ValueError):
        summarize([])


def test_json_safe():
    assert json_safe({"psnr": float("inf"), "l1": 0.5}) == {"psnr": None, "l1": 0.5}


def test_why_psnr_and_ssim_are_not_torchmetrics():
    """The measurements behind keeping our PSNR and SSIM (README, Measuring quality)."""
    functional = pytest.importorskip("torchmetrics.functional.image")
    torch = pytest.importorskip("torch")
    a = structured_image()
    b = add_noise(a, 10, 8)

    def batch(image):
        return torch.from_numpy(image).double().permute(2, 0, 1)[None]

    ssim_map = functional.structural_similarity_index_measure(
        batch(b), batch(a), gaussian_kernel=True, sigma=1.5, kernel_size=11, data_range=255.0, return_full_image=True
    )[1]
    # Its mean takes in the border windows, over reflected pixels: 0.009 away here.
    assert abs(float(ssim_map.mean()) - ssim(b, a)) > 1e-3
    # Only the windows inside the image: ours (float32 window sums) and scikit-image's.
    inside = float(ssim_map[..., 5:-5, 5:-5].mean())
    assert inside == pytest.approx(ssim(b, a), abs=1e-5)
    assert inside == pytest.approx(skimage_ssim(b, a), abs=1e-10)

    # PSNR: within 1e-5 dB, but 10/ln 10 taken in float32 puts it 3e-8 relative off.
    value = float(functional.peak_signal_noise_ratio(batch(b), batch(a), data_range=255.0))
    assert value == pytest.approx(psnr(b, a), abs=1e-5)
    assert abs(value - psnr(b, a)) > 1e-9 * psnr(b, a)
