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
# torchvision's VGG19 ('E') up to conv5_1; 'M' is a 2x2 max pooling. Module indices match its `features`.
LAYERS = (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512, 'M', 512)
ENDS = (2, 7, 12, 21, 30)  # features[:2] ends with relu1_1, features[2:7] with relu2_1, ... [21:30] relu5_1
WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg19_features():
    layers, channels = [], 3
    for layer in LAYERS:
        if layer == 'M':
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, layer, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = layer
    return nn.Sequential(*layers)


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
