"""What training runs saved (networks, TensorBoard events, schedules), for the tests that compare runs."""
from types import SimpleNamespace

import torch

from models import networks


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
    scheduler = networks.get_scheduler(optimizer, SimpleNamespace(lr_policy='plateau', plateau_on='val',
                                                                  val_metric=val_metric))
    for score in scores:
        scheduler.step(score)
    return scheduler.state_dict()
