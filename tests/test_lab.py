import pytest
import torch

from util import lab

# What skimage.color.rgb2lab returns for these sRGB colours (its 6-digit sRGB
# matrix and D65 white). Textbook values from the exact matrix differ by up to
# 3e-3 (e.g. blue b = -107.8602), and white's a, b are not exactly 0.
KNOWN_COLOURS = [
    ((1.0, 1.0, 1.0), (100.0, -0.0025, 0.0047)),
    ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    ((0.5, 0.5, 0.5), (53.3890, -0.0015, 0.0028)),
    ((1.0, 0.0, 0.0), (53.2406, 80.0923, 67.2028)),
    ((0.0, 1.0, 0.0), (87.7351, -86.1830, 83.1797)),
    ((0.0, 0.0, 1.0), (32.2957, 79.1856, -107.8573)),
    ((0.2, 0.6, 0.4), (56.5298, -41.5097, 18.4527)),
    # Dark enough for the linear segments of both sRGB gamma and Lab.
    ((0.02, 0.01, 0.03), (0.9487, 1.3759, -1.6949)),
]
TEXTBOOK = {
    (1.0, 0.0, 0.0): (53.2408, 80.0925, 67.2032),
    (0.0, 1.0, 0.0): (87.7347, -86.1827, 83.1793),
    (0.0, 0.0, 1.0): (32.2970, 79.1875, -107.8602),
}


def pixel(values):
    return torch.tensor(values, dtype=torch.float64).view(1, 3, 1, 1)


@pytest.mark.parametrize('rgb, expected', KNOWN_COLOURS)
def test_known_colours(rgb, expected):
    result = lab.rgb_to_lab(pixel(rgb))
    torch.testing.assert_close(result, pixel(expected), rtol=0, atol=1e-3)
    if rgb in TEXTBOOK:
        torch.testing.assert_close(result, pixel(TEXTBOOK[rgb]), rtol=0, atol=5e-3)


@pytest.mark.parametrize('rgb, expected', KNOWN_COLOURS)
def test_known_colours_back_to_rgb(rgb, expected):
    torch.testing.assert_close(lab.lab_to_rgb(pixel(expected)), pixel(rgb), rtol=0, atol=1e-4)


def test_round_trip_random_colours_within_one_level():
    rgb = torch.rand(4, 3, 17, 9, generator=torch.Generator().manual_seed(0))
    # Include the dark linear segment and the exact extremes.
    rgb[0, :, 0, :3] = torch.tensor([0.0, 0.01, 1.0]).view(3, 1)
    back = lab.lab_to_rgb(lab.rgb_to_lab(rgb))
    assert (back - rgb).abs().max() < 1 / 255


def test_encode_decode_round_trip_and_ranges():
    rgb = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    A, B = lab.encode(lab.rgb_to_lab(rgb))
    assert A.shape == (2, 1, 8, 8) and B.shape == (2, 2, 8, 8)
    assert A.min() >= -1 and A.max() <= 1 and B.abs().max() <= 1.2
    assert (lab.decode(A, B) - rgb).abs().max() < 1 / 255


def test_encode_matches_reference_scaling():
    lab_pixel = pixel((75.0, 22.0, -55.0))
    A, B = lab.encode(lab_pixel)
    torch.testing.assert_close(A, torch.full((1, 1, 1, 1), 0.5, dtype=torch.float64))
    torch.testing.assert_close(B, pixel((0.2, -0.5, 0.0))[:, :2])


def test_lab_to_rgb_clips_out_of_gamut():
    rgb = lab.lab_to_rgb(pixel((50.0, 127.0, -128.0)))
    assert rgb.min() >= 0 and rgb.max() <= 1


def test_unbatched_image_and_dtype_preserved():
    rgb = torch.rand(3, 5, 6)
    result = lab.rgb_to_lab(rgb)
    assert result.shape == (3, 5, 6) and result.dtype == torch.float32
    torch.testing.assert_close(result, lab.rgb_to_lab(rgb.unsqueeze(0))[0])


@pytest.mark.parametrize('device', ['cpu', pytest.param('cuda', marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason='needs a GPU'))])
def test_batched_shape_and_device_preserved(device):
    rgb = torch.rand(3, 3, 4, 5, device=device)
    result = lab.rgb_to_lab(rgb)
    assert result.shape == rgb.shape and result.device == rgb.device
    back = lab.lab_to_rgb(result)
    assert back.shape == rgb.shape and back.device == rgb.device
    A, B = lab.encode(result)
    assert A.device == rgb.device and lab.decode(A, B).device == rgb.device


def test_matches_skimage():
    color = pytest.importorskip('skimage.color')
    rgb = torch.rand(2, 3, 7, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    expected = torch.from_numpy(color.rgb2lab(rgb.permute(0, 2, 3, 1).numpy())).permute(0, 3, 1, 2)
    torch.testing.assert_close(lab.rgb_to_lab(rgb), expected, rtol=0, atol=1e-6)
    lab_values = expected.clone()
    lab_values[:, 1:] *= 1.3  # push some colours out of gamut to compare the clipping too
    expected_rgb = torch.from_numpy(color.lab2rgb(lab_values.permute(0, 2, 3, 1).numpy())).permute(0, 3, 1, 2)
    torch.testing.assert_close(lab.lab_to_rgb(lab_values), expected_rgb, rtol=0, atol=1e-6)


def cie_lab(rgb):
    """The CIE 1976 L*a*b* formulas for one sRGB colour, in plain Python: sRGB decoding, the sRGB->XYZ
    matrix (the 6-digit one scikit-image and the reference use), D65 white, f(t) with its linear part."""
    linear = [((c + 0.055) / 1.055) ** 2.4 if c > 0.04045 else c / 12.92 for c in rgb]
    matrix = [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
    white = [0.95047, 1.0, 1.08883]
    x, y, z = (sum(m * c for m, c in zip(row, linear)) / w for row, w in zip(matrix, white))
    f = [t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29 for t in (x, y, z)]
    L = 116 * f[1] - 16 if y > (6 / 29) ** 3 else 903.3 * y
    return L, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


@pytest.mark.parametrize('rgb', [(1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (0.5, 0.5, 0.5), (1.0, 0.0, 0.0),
                                 (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 1.0, 0.0), (0.0, 1.0, 1.0),
                                 (1.0, 0.0, 1.0)])
def test_against_the_cie_formulas(rgb):
    torch.testing.assert_close(lab.rgb_to_lab(pixel(rgb)), pixel(cie_lab(rgb)), rtol=0, atol=1e-3)
