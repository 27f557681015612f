"""--lambda_vgg W --vgg_weights PATH: pix2pixHD's perceptual loss, the L1 distance between the VGG19
features of the output and of the target:

    L_VGG = sum_i w_i || F_i(G(A)) - F_i(B) ||_1    F_i = relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
                                                    w_i = 1/32,    1/16,    1/8,     1/4,     1

The VGG19 is torchvision's, trained on ImageNet; its weights come from a file the user downloads once,
never from the network at run time. Images go in as ImageNet's normalisation expects (pix2pixHD feeds
its [-1, 1] images unnormalised); a gray output is repeated over the three channels.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from util.errors import UserError

VGG_FILE = 'vgg19-dcbb9e9d.pth'
VGG_URL = f'https://download.pytorch.org/models/{VGG_FILE}'
GET_WEIGHTS = f"get torchvision's VGG19 weights, {VGG_FILE}, from {VGG_URL}"
ENDS = (2, 7, 12, 21, 30)  # features[:2] ends with relu1_1, features[2:7] with relu2_1, ... [21:30] relu5_1
WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg19_features(end=ENDS[-1]):
    """torchvision's VGG19 `features`, freshly initialised, up to module `end` (None: all of them); by default
    up to relu5_1, all the loss uses. A slice keeps torchvision's module indices, so its state_dict keys."""
    from torchvision.models import vgg  # here: importing torchvision takes a second, and only this loss needs it
    return vgg.make_layers(vgg.cfgs['E'])[:end]


def save_random_vgg19(path, seed=0):
    """A randomly initialised VGG19 (as torchvision initialises one) saved as torchvision's file holds it, its
    `features` (the loss never reads the classifier): to test and time the loss without the real weights."""
    generator = torch.Generator().manual_seed(seed)
    features = vgg19_features(end=None)
    for module in features.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu', generator=generator)
            nn.init.zeros_(module.bias)
    torch.save({'features.' + k: v for k, v in features.state_dict().items()}, path)
    return path


def load_vgg19_features(path):
    """VGG19's layers up to relu5_1 with the weights of torchvision's state_dict at path (the options checked
    that a file is there)."""
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # truncated zip, refused pickle global, a folder, ...
        raise UserError(f'cannot load --vgg_weights {path}: {str(e).splitlines()[0]}; {GET_WEIGHTS}')
    features = vgg19_features()
    wanted = {'features.' + k: v.shape for k, v in features.state_dict().items()}
    wrong = [k for k, shape in wanted.items()
             if not isinstance(state, dict) or not isinstance(state.get(k), torch.Tensor) or state[k].shape != shape]
    if wrong:
        raise UserError(f'--vgg_weights {path} does not hold VGG19 weights (missing or misshapen: '
                        f'{", ".join(wrong[:3])}); {GET_WEIGHTS}')
    features.load_state_dict({k: state['features.' + k] for k in features.state_dict()})
    return features


class VGGLoss(nn.Module):
    def __init__(self, path):
        super().__init__()
        features = load_vgg19_features(path).eval().requires_grad_(False)
        self.slices = nn.ModuleList(features[start:end] for start, end in zip((0,) + ENDS, ENDS))
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer('std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def features(self, image):
        x = ((image.expand(-1, 3, -1, -1) + 1) / 2 - self.mean) / self.std  # [-1, 1] -> ImageNet's inputs
        outputs = []
        for block in self.slices:
            x = block(x)
            outputs.append(x)
        return outputs

    def forward(self, fake, real):
        with torch.no_grad():
            targets = self.features(real)
        return sum(weight * F.l1_loss(feature.float(), target.float())
                   for weight, feature, target in zip(WEIGHTS, self.features(fake), targets))
