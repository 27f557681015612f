"""FID and KID from torchmetrics, on the 2048-d pool3 features of the TF-FID Inception v3.

The network is torch-fidelity's port of TensorFlow's inception-2015-12-05 graph, as torchmetrics runs
it (NoTrainInceptionV3), with TensorFlow 1.x's bilinear resize to 299x299 (antialias=False): the
preprocessing of the original TF FID code, of torch-fidelity and of torchmetrics before 1.8.

The weights are read from a file the user gives; nothing is downloaded. torch-fidelity's
weights-inception-2015-12-05-6726825d.pth and pytorch-fid's pt_inception-2015-12-05-6726825d.pth are
both conversions of that TF graph to torchvision's Inception3 layout, with the same tensor names and
shapes, so either file serves (tests/test_fid.py checks the layouts against pytorch-fid's network).

torchmetrics is imported only here, on first use: it adds seconds to the start of a process.
"""
import io
import os
import warnings

import numpy as np
import torch

WEIGHTS_NAME = 'weights-inception-2015-12-05-6726825d.pth'
WEIGHTS_URL = 'https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/' + WEIGHTS_NAME
PYTORCH_FID_WEIGHTS_NAME = 'pt_inception-2015-12-05-6726825d.pth'
FEATURE_DIM = 2048
INSTALL = 'pip install "torchmetrics>=1.8" "torch-fidelity>=0.3"'


def _inception_class():
    try:
        import torch_fidelity  # noqa: F401 (torchmetrics imports without it, then fails on use)
        from torchmetrics.image.fid import NoTrainInceptionV3
    except ImportError as err:
        raise ImportError(f'FID and KID need torchmetrics and torch-fidelity ({err}); install them with '
                          f'{INSTALL}') from err
    return NoTrainInceptionV3


def _brief(err, limit=300):
    """An exception's text on one line, cut to `limit` characters (a key mismatch lists hundreds)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = '; '.join(lines[1:] or lines)
    return text if len(text) <= limit else text[:limit - 3] + '...'


def load_inception(path):
    """torchmetrics' Inception v3 feature extractor with the weights file at `path` loaded.

    Raises FileNotFoundError or RuntimeError (naming the file to download) for a missing or unusable
    file, ImportError when torchmetrics or torch-fidelity is not installed.
    """
    inception = _inception_class()
    hint = f'download {WEIGHTS_NAME} from {WEIGHTS_URL} (pytorch-fid\'s {PYTORCH_FID_WEIGHTS_NAME} works too)'
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Inception weights file {path!r} not found; {hint}')
    invalid = f'{path!r} is not a valid Inception weights file'
    try:
        # weights_only: the file is data; unpickling it must not be able to run code.
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:
        raise RuntimeError(f'{invalid} ({_brief(err)}); {hint}') from err
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise RuntimeError(f'{invalid} (not a dict of tensors); {hint}')
    # Batch-norm counters: the released files have none, a state_dict saved from pytorch-fid's network
    # has them. They are unused in evaluation; without them (and without metadata) torch fills them in.
    state = {k: v for k, v in state.items() if not k.endswith('num_batches_tracked')}
    # torch-fidelity would unpickle a path with weights_only=False, and download when given none:
    # it gets the checked tensors, re-serialized in memory.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    try:
        return inception(name='inception-v3-compat', features_list=[str(FEATURE_DIM)],
                         feature_extractor_weights_path=buffer, antialias=False)
    except RuntimeError as err:  # missing or unexpected keys, shapes that differ
        raise RuntimeError(f'{invalid} ({_brief(err)}); {hint}') from err


def _to_tensor(image):
    """uint8 HxWx3 or HxW array -> uint8 tensor 3xHxW."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f'expected uint8 images, got {image.dtype}')
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'expected HxWx3 or HxW image, got shape {image.shape}')
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


@torch.no_grad()
def features(images, model, batch_size=50, device='cpu'):
    """Pool3 features (N, 2048) as float64 numpy of a sequence of uint8 HxWx3 (or HxW) arrays.

    Sizes may differ: each batch holds consecutive images of one size, which the network resizes
    to 299x299.
    """
    model = model.to(device)
    tensors = [_to_tensor(image) for image in images]
    out, start = [], 0
    while start < len(tensors):
        end = start + 1
        while end < len(tensors) and end - start < batch_size and tensors[end].shape == tensors[start].shape:
            end += 1
        out.append(model(torch.stack(tensors[start:end]).to(device)).double().cpu())
        start = end
    return torch.cat(out).numpy() if out else np.zeros((0, FEATURE_DIM))


class _Given(torch.nn.Module):
    """The 'feature extractor' handed to torchmetrics: the features, computed once, pass through."""

    def __init__(self, num_features):
        super().__init__()
        self.num_features = num_features

    def forward(self, x):
        return x


def _feature_pair(f1, f2):
    f1, f2 = (torch.from_numpy(np.array(f, dtype=np.float64)) for f in (f1, f2))
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1] or min(len(f1), len(f2)) < 2:
        raise ValueError(f'need two (N, D) feature arrays with N >= 2, got {tuple(f1.shape)} and {tuple(f2.shape)}')
    return f1, f2


def fid_from_features(f1, f2):
    """FID between two (N, D) feature sets: torchmetrics' FrechetInceptionDistance, in float64."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    f1, f2 = _feature_pair(f1, f2)
    metric = FrechetInceptionDistance(feature=_Given(f1.shape[1]))
    metric.update(f2, real=True)
    metric.update(f1, real=False)
    return float(metric.compute())


def kid_from_features(f1, f2, num_subsets=100, subset_size=1000, seed=0):
    """KID (Binkowski et al. 2018) by torchmetrics' KernelInceptionDistance: mean and std of the
    unbiased MMD^2 with kernel (x.y / d + 1)^3 over random subsets drawn without replacement.

    subset_size is capped to the smaller set; `seed` makes the subsets repeatable, and the global
    torch random state is left as it was.
    """
    from torchmetrics.image.kid import KernelInceptionDistance
    f1, f2 = _feature_pair(f1, f2)
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='Metric `Kernel Inception Distance` will save all extracted')
        metric = KernelInceptionDistance(feature=_Given(f1.shape[1]), subsets=num_subsets,
                                         subset_size=min(subset_size, len(f1), len(f2)))
    metric.update(f2, real=True)
    metric.update(f1, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)
