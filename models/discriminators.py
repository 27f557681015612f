"""The discriminator options beyond the reference's PatchGAN, each off by default.

From pix2pixHD (Wang et al. 2018):
    --netD multiscale --num_D N   N PatchGANs D_0 .. D_{N-1} of --n_layers_D layers; D_k judges the pair
                                  average-pooled k times (3x3 windows, stride 2), so the coarse scales see
                                  the whole layout through patches of the same size.
    --lambda_feat W               feature matching: for every scale k and every intermediate layer i of
                                  D_k (T = n_layers_D + 1 of them, all but the prediction),
        L_FM = sum_k sum_i 1/N * 4/T * || D_k^i(A, B) - D_k^i(A, G(A)) ||_1
                                  which trains G to make D see the same things in the fake pair as in the
                                  real one, a target that moves less than D's verdict.
From SPADE (Park et al. 2019):
    --spectral_norm_D             every convolution of D divides its weight by its largest singular value
                                  (estimated by one power iteration per forward), so D is 1-Lipschitz per
                                  layer and its gradients to G stay bounded.
"""
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from models import networks

NET_DS = ('basic', 'n_layers', 'pixel', 'multiscale')


def define_D(input_nc, ndf, netD, n_layers_D=3, norm='batch', init_type='normal', init_gain=0.02, num_D=1,
             spectral=False):
    if netD == 'multiscale':
        net = MultiscaleDiscriminator(input_nc, ndf, n_layers_D, norm, num_D, init_type, init_gain)
    else:
        net = networks.define_D(input_nc, ndf, netD, n_layers_D, norm, init_type, init_gain)
    if spectral:
        # After the initialisation, which sets the weights that the parametrisation then keeps as 'original'.
        for module in list(net.modules()):
            if isinstance(module, nn.Conv2d):
                spectral_norm(module)
    return net


class MultiscaleDiscriminator(nn.Module):
    """num_D PatchGANs; D(x) is the list of their predictions, full scale first."""

    def __init__(self, input_nc, ndf, n_layers, norm, num_D, init_type='normal', init_gain=0.02):
        super().__init__()
        self.scales = nn.ModuleList(networks.define_D(input_nc, ndf, 'n_layers', n_layers, norm, init_type, init_gain)
                                    for _ in range(num_D))
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x, layers=False):
        outputs = []
        for k, D in enumerate(self.scales):
            if k:
                x = self.downsample(x)
            outputs.append(D(x, layers=layers))
        return outputs


def patchgan_min_size(n_layers):
    """The smallest side a PatchGAN of n_layers takes: n stride-2 convolutions halve it, then two 4x4
    convolutions of stride 1 take 1 pixel each, and one output pixel must remain."""
    return 3 * 2 ** n_layers


def scales_that_fit(size, n_layers):
    """How many scales of a multi-scale D take size-pixel images: AvgPool2d(3, 2, padding=1) takes s to ceil(s/2)."""
    scales = 0
    while size >= patchgan_min_size(n_layers):
        scales, size = scales + 1, -(-size // 2)
    return scales


def by_scale(layers):
    """D(x, layers=True) per scale: a multi-scale D gives a list per scale, a single D its one list."""
    return layers if isinstance(layers[0], list) else [layers]


def predictions(layers):
    """The predictions (what D(x) returns) among D(x, layers=True): each scale's last output."""
    return [scale[-1] for scale in by_scale(layers)]


def feature_matching(fake_layers, real_layers):
    """L_FM above, from D(fake pair, layers=True) and D(real pair, layers=True); the real pair's features
    are the target, so no gradient flows into them."""
    fake_scales, real_scales = by_scale(fake_layers), by_scale(real_layers)
    loss = 0
    for fake, real in zip(fake_scales, real_scales):
        weight = 4 / (len(fake) - 1) / len(fake_scales)  # 4/T per layer, 1/N per scale
        for fake_feature, real_feature in zip(fake[:-1], real[:-1]):
            loss = loss + F.l1_loss(fake_feature.float(), real_feature.detach().float()) * weight
    return loss

