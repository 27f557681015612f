"""sRGB <-> CIE Lab in torch, with the colorization model's (A, B) encoding.

The constants and piecewise formulas are those of skimage.color.rgb2lab /
lab2rgb (which the reference colorization model was trained with), so
results agree with scikit-image without needing it at run time.
Tensors have the channels at dim -3: (3, H, W) or (B, 3, H, W).
"""
import torch

# skimage's sRGB -> XYZ matrix; its 6-digit rounding moves Lab values by up
# to ~3e-3 from the exact-matrix textbook values, which we accept for parity.
_XYZ_FROM_RGB = torch.tensor([[0.412453, 0.357580, 0.180423],
                              [0.212671, 0.715160, 0.072169],
                              [0.019334, 0.119193, 0.950227]], dtype=torch.float64)
_RGB_FROM_XYZ = torch.linalg.inv(_XYZ_FROM_RGB)
_D65_WHITE = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)
_EPSILON = 0.008856
_KAPPA_SLOPE = 7.787  # 903.3 / 116, rounded as skimage does
_F_EPSILON = 0.2068966  # cbrt(_EPSILON): where the inverse switches branch


def _like(constant, x):
    return constant.to(device=x.device, dtype=x.dtype)


def _per_channel(values, x):
    return _like(values, x).view(3, 1, 1)


def _mix_channels(matrix, x):
    return torch.einsum('ij,...jhw->...ihw', _like(matrix, x), x)


def rgb_to_lab(rgb):
    """sRGB in [0, 1] -> Lab with L in [0, 100] and a, b roughly in [-128, 127]."""
    # The clamps keep the unselected torch.where branch finite (no NaN gradients).
    linear = torch.where(rgb > 0.04045,
                         ((rgb.clamp(min=0) + 0.055) / 1.055) ** 2.4,
                         rgb / 12.92)
    xyz = _mix_channels(_XYZ_FROM_RGB, linear) / _per_channel(_D65_WHITE, rgb)
    f = torch.where(xyz > _EPSILON,
                    xyz.clamp(min=_EPSILON) ** (1 / 3),
                    _KAPPA_SLOPE * xyz + 16 / 116)
    fx, fy, fz = f.unbind(-3)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=-3)


def lab_to_rgb(lab):
    """Lab -> sRGB clipped to [0, 1]."""
    lightness, a, b = lab.unbind(-3)
    fy = (lightness + 16) / 116
    # Like skimage: a negative Z is out of gamut and is clipped rather than cubed.
    f = torch.stack([a / 500 + fy, fy, (fy - b / 200).clamp(min=0)], dim=-3)
    xyz = torch.where(f > _F_EPSILON, f ** 3, (f - 16 / 116) / _KAPPA_SLOPE)
    linear = _mix_channels(_RGB_FROM_XYZ, xyz * _per_channel(_D65_WHITE, lab))
    rgb = torch.where(linear > 0.0031308,
                      1.055 * linear.clamp(min=0.0031308) ** (1 / 2.4) - 0.055,
                      12.92 * linear)
    return rgb.clamp(0, 1)


def encode(lab):
    """Lab -> (A, B) as the colorization model sees them: A = L/50 - 1 (1 channel)
    and B = ab/110 (2 channels), both roughly in [-1, 1]."""
    return lab[..., :1, :, :] / 50 - 1, lab[..., 1:, :, :] / 110


def decode(A, B):
    """Inverse of encode, straight to sRGB in [0, 1]."""
    return lab_to_rgb(torch.cat([(A + 1) * 50, B * 110], dim=-3))
