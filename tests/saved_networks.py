"""What training runs saved (networks, TensorBoard events, schedules), for the tests that compare runs."""
import copy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image
from torch import nn

from models import networks
from training.plateau import Plateau


def latest_networks(folder, names):
    """{name: state_dict} of folder/latest_net_<name>.pth for each name."""
    return {name: torch.load(folder / f'latest_net_{name}.pth', weights_only=True) for name in names}


def assert_same_latest_networks(folder, expected_folder, names):
    """Bitwise the same tensors under the same keys, for each network name."""
    got, expected = latest_networks(folder, names), latest_networks(expected_folder, names)
    for name in names:
        assert got[name].keys() == expected[name].keys()
        for key in expected[name]:
            assert torch.equal(got[name][key], expected[name][key]), f'net{name} {key} differs'


def tensorboard_points(folder):
    """{tag: [(step, value)]} of every scalar and image the run wrote for TensorBoard, read with its reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder / 'tensorboard'), size_guidance={'scalars': 0, 'images': 0})
    events.Reload()
    points = {tag: [(p.step, p.value) for p in events.Scalars(tag)] for tag in events.Tags()['scalars']}
    points.update({tag: [(p.step, p.encoded_image_string) for p in events.Images(tag)]
                   for tag in events.Tags()['images']})
    return points


def plateau_state(scores, val_metric):
    """The state of --lr_policy plateau --plateau_on val after stepping on each of scores."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    opt = SimpleNamespace(lr_policy='plateau', plateau_on='val', val_metric=val_metric)
    scheduler = networks.get_scheduler(optimizer, opt, Plateau(opt, SimpleNamespace(plateau_loss=None)).mode)
    for score in scores:
        scheduler.step(score)
    return scheduler.state_dict()


def batch_statistics(net, batches):
    """Per batch norm layer, the mean over batches of its input's per-channel mean and unbiased variance, with
    the layers normalising each batch by its own statistics and dropout off: computed from hooks, not by
    batch norm's own running averages."""
    net = copy.deepcopy(net).eval()
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    seen = {norm: [] for norm in norms}
    for norm in norms:
        norm.train()
        norm.register_forward_pre_hook(lambda module, args: seen[module].append(
            (args[0].mean((0, 2, 3)), args[0].transpose(0, 1).flatten(1).var(1, unbiased=True))))
    with torch.no_grad():
        for batch in batches:
            net(batch)
    return [(torch.stack([m for m, _ in seen[n]]).mean(0), torch.stack([v for _, v in seen[n]]).mean(0)) for n in norms]


def first_training_inputs(data, count, size=32):
    """G's inputs for the first count pairs of data/train (tiny aligned pairs, AtoB: A is the left half), as
    training reads them without flips or crops: one tensor of count images."""
    images = [np.asarray(Image.open(path).convert('RGB'), dtype=np.float32)[:, :size] / 127.5 - 1
              for path in sorted((Path(data) / 'train').iterdir())[:count]]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)


def assert_statistics_recomputed(saved, averaged, batches):
    """saved (a latest_net_G_ema.pth of --ema_bn_images, unet_32 with batch norm) holds the weights of averaged
    (the average in the resume state) with the batch norm statistics of their own activations over batches."""
    net = networks.define_G(3, 3, 8, 'unet_32', 'batch', True)
    net.load_state_dict(averaged)
    expected = batch_statistics(net, batches)
    means = [k for k in saved if k.endswith('running_mean')]
    assert len(means) == len(expected) > 2
    for key, (mean, var) in zip(means, expected):
        assert torch.allclose(saved[key], mean, atol=1e-4), key
        assert torch.allclose(saved[key.replace('mean', 'var')], var, rtol=1e-3, atol=1e-4), key
        assert not torch.allclose(saved[key], averaged[key], atol=1e-3), key  # the saved file only
