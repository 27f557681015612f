"""Fixtures shared by the test files; pytest finds them here, no test file imports them."""
from types import SimpleNamespace

import pytest

from tests.scripts import TINY_NET, Prewarmed
from tests.tiny_data import make_aligned_pairs


@pytest.fixture(scope='module')
def runner(tmp_path_factory):
    """Runs train.py and test.py as real processes without paying for `import torch` each time: one
    server per test file (tests/scripts.py says how, and how it matches scripts.run)."""
    with Prewarmed(tmp_path_factory.mktemp('logs')) as prewarmed:
        yield prewarmed


@pytest.fixture(scope='module')
def train_tiny(runner, tmp_path_factory):
    """train_tiny(*args, name='tiny', count=4, make=make_aligned_pairs): `count` generated 32-pixel pairs in
    data/train and data/test (or as `make`, a function of tests/tiny_data.py, lays them out), and a finished
    TINY_NET training run on them with the extra train.py args. Returns data, checkpoints (the
    --checkpoints_dir) and folder (checkpoints/NAME)."""
    def train(*args, name='tiny', count=4, make=make_aligned_pairs):
        root = tmp_path_factory.mktemp(name)
        data = root / 'data'
        make(str(data), count=count, size=32)
        checkpoints = root / 'checkpoints'
        runner.run('train.py', '--dataroot', data, '--name', name, '--checkpoints_dir', checkpoints,
                   *TINY_NET, *args)
        return SimpleNamespace(data=data, checkpoints=checkpoints, folder=checkpoints / name)

    return train


@pytest.fixture(scope='module')
def tiny_run(train_tiny):
    """A finished tiny run to test against: checkpoints/tiny after 1 epoch on 3 pairs, and its data."""
    return train_tiny('--n_epochs', 1, '--n_epochs_decay', 0, '--seed', 0, count=3)


@pytest.fixture(scope='session')
def vgg_weights(tmp_path_factory):
    """A randomly initialised VGG19 saved as torchvision's vgg19-dcbb9e9d.pth holds it (models/perceptual.py): 80 MB."""
    from models.perceptual import save_random_vgg19
    return save_random_vgg19(tmp_path_factory.mktemp('vgg') / 'vgg19-dcbb9e9d.pth')
