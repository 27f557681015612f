"""train.py then test.py, run as a user runs them, on a few generated pairs."""
import json
import os
import re

import numpy as np
import pytest
import torch
from PIL import Image

from tests.datagen import TINY_NET, make_aligned_pairs, run


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp('e2e')
    data = make_aligned_pairs(str(root / 'data'), count=4, size=32)
    ckpt = root / 'checkpoints'
    run('train.py', '--dataroot', data, '--name', 'tiny', '--checkpoints_dir', ckpt, *TINY_NET,
        '--n_epochs', 2, '--n_epochs_decay', 1, '--save_epoch_freq', 2, '--print_freq', 2, '--save_latest_freq', 4,
        '--save_by_iter', '--seed', 1)
    return root, data, ckpt


def test_training_writes_checkpoints_log_and_options(trained):
    root, data, ckpt = trained
    files = set(os.listdir(ckpt / 'tiny'))
    # Reference file names: latest, numbered epochs (every 2 and the last), iter_N with --save_by_iter.
    for name in ('latest_net_G.pth', 'latest_net_D.pth', '2_net_G.pth', '3_net_G.pth', 'iter_4_net_G.pth',
                 'train_opt.txt', 'train_opt.json', 'loss_log.txt', 'architecture.json'):
        assert name in files, name
    state = torch.load(ckpt / 'tiny' / 'latest_net_G.pth', weights_only=True)
    assert not any(k.startswith('module.') for k in state) and 'model.model.0.weight' in state
    log = (ckpt / 'tiny' / 'loss_log.txt').read_text()
    lines = re.findall(r'\(epoch: (\d+), iters: (\d+).*G_GAN: [\d.]+ G_L1: [\d.]+ D_real: [\d.]+ D_fake: [\d.]+', log)
    assert len(lines) == 6  # 12 samples, a line every 2
    saved = json.loads((ckpt / 'tiny' / 'train_opt.json').read_text())
    assert saved['netG'] == 'unet_32' and saved['ngf'] == 8 and saved['lambda_L1'] == 100.0
    assert json.loads((ckpt / 'tiny' / 'architecture.json').read_text())['netG'] == 'unet_32'


def test_testing_writes_every_image_and_a_gallery(trained, tmp_path):
    root, data, ckpt = trained
    # No architecture flags: they come from the checkpoint folder.
    proc = run('test.py', '--dataroot', data, '--name', 'tiny', '--checkpoints_dir', ckpt,
               '--results_dir', tmp_path, '--load_size', 32, '--crop_size', 32)
    images = tmp_path / 'tiny' / 'test_latest' / 'images'
    names = sorted(os.listdir(images))
    assert len(names) == 4 * 3 and '000_fake_B.png' in names and '003_real_B.png' in names
    assert Image.open(images / '000_fake_B.png').size == (32, 32)
    html = (tmp_path / 'tiny' / 'test_latest' / 'index.html').read_text()
    assert html.count('<img') == 12 and 'src="images/000_fake_B.png"' in html
    assert 'processed 4 images' in proc.stdout


def test_test_rejects_architecture_flags_that_contradict_the_checkpoint(trained, tmp_path):
    root, data, ckpt = trained
    proc = run('test.py', '--dataroot', data, '--name', 'tiny', '--checkpoints_dir', ckpt, '--ngf', 16,
               '--results_dir', tmp_path, check=False)
    assert proc.returncode != 0
    assert '--ngf 16 (saved: 8)' in proc.stderr and 'Traceback' not in proc.stderr


def test_continue_train_loads_and_extends(trained):
    root, data, ckpt = trained
    before = torch.load(ckpt / 'tiny' / 'latest_net_G.pth', weights_only=True)
    run('train.py', '--dataroot', data, '--name', 'tiny', '--checkpoints_dir', ckpt, *TINY_NET, '--continue_train',
        '--epoch_count', 4, '--n_epochs', 2, '--n_epochs_decay', 2, '--print_freq', 100)
    after = torch.load(ckpt / 'tiny' / 'latest_net_G.pth', weights_only=True)
    assert os.path.exists(ckpt / 'tiny' / '4_net_G.pth')
    assert not torch.equal(before['model.model.0.weight'], after['model.model.0.weight'])


def test_overfitting_four_pairs_drives_L1_down(tmp_path):
    data = make_aligned_pairs(str(tmp_path / 'data'), count=4, size=32, phases=('train',))
    run('train.py', '--dataroot', data, '--name', 'fit', '--checkpoints_dir', tmp_path, *TINY_NET,
        '--ngf', 16, '--no_flip', '--no_dropout', '--n_epochs', 60, '--n_epochs_decay', 0, '--print_freq', 4,
        '--save_epoch_freq', 1000, '--lr', 0.002, '--seed', 0)
    log = (tmp_path / 'fit' / 'loss_log.txt').read_text()
    l1 = [float(v) for v in re.findall(r'G_L1: ([\d.]+)', log)]
    assert len(l1) == 60
    first, last = np.mean(l1[:5]), np.mean(l1[-5:])
    assert last < first / 3, (first, last)


@pytest.mark.parametrize('args,message', [
    (['--model', 'cycle_gan'], 'there is no models/cycle_gan_model.py'),
    (['--netG', 'unet_100'], 'power of two'),
    (['--netG', 'unet_64', '--crop_size', '48', '--load_size', '48'], 'multiples of 64'),
    (['--crop_size', '64', '--load_size', '32'], 'larger than --load_size'),
    (['--direction', 'AB'], 'choose AtoB or BtoA'),
    (['--gan_mode', 'hinge'], 'choose from vanilla, lsgan, wgangp'),
    (['--device', 'tpu'], 'choose auto, cpu, cuda'),
    (['--norm', 'syncbatch', '--device', 'cpu'], 'needs CUDA'),
    (['--dataroot', '/nonexistent/facades'], '/nonexistent/facades/train is not a directory'),
])
def test_bad_options_give_one_clear_error(args, message, tmp_path):
    data = make_aligned_pairs(str(tmp_path / 'data'), count=1, size=32, phases=('train',))
    proc = run('train.py', '--dataroot', data, '--checkpoints_dir', tmp_path, *TINY_NET, *args, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr[-2000:]
    assert 'Traceback' not in proc.stderr
