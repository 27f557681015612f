"""train.py then test.py, run as a user runs them, on a few generated pairs."""
import json
import os
import re

import numpy as np
import pytest
import torch
from PIL import Image

from tests.scripts import TINY_NET
from tests.tiny_data import make_aligned_pairs


@pytest.fixture(scope='module')
def trained(train_tiny):
    tiny = train_tiny('--n_epochs', 2, '--n_epochs_decay', 1, '--save_epoch_freq', 2, '--print_freq', 2,
                      '--save_latest_freq', 4, '--save_by_iter', '--seed', 1)
    return tiny.data, tiny.checkpoints


def test_training_writes_checkpoints_log_and_options(trained):
    data, ckpt = trained
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


def test_testing_writes_every_image_and_a_gallery(runner, trained, tmp_path):
    data, ckpt = trained
    # No architecture flags: they come from the checkpoint folder.
    proc = runner.run('test.py', '--dataroot', data, '--name', 'tiny', '--checkpoints_dir', ckpt,
                      '--results_dir', tmp_path, '--load_size', 32, '--crop_size', 32)
    images = tmp_path / 'tiny' / 'test_latest' / 'images'
    names = sorted(os.listdir(images))
    assert len(names) == 4 * 3 and '000_fake_B.png' in names and '003_real_B.png' in names
    assert Image.open(images / '000_fake_B.png').size == (32, 32)
    html = (tmp_path / 'tiny' / 'test_latest' / 'index.html').read_text()
    assert html.count('<img') == 12 and 'src="images/000_fake_B.png"' in html
    assert 'processed 4 images' in proc.stdout


def test_test_rejects_architecture_flags_that_contradict_the_checkpoint(runner, trained, tmp_path):
    data, ckpt = trained
    proc = runner.run('test.py', '--dataroot', data, '--name', 'tiny', '--checkpoints_dir', ckpt, '--ngf', 16,
                      '--results_dir', tmp_path, check=False)
    assert proc.returncode != 0
    assert '--ngf 16 (saved: 8)' in proc.stderr and 'Traceback' not in proc.stderr


def loss_lines(stdout):
    """[(epoch, iters, 'G_GAN: ... D_fake: ...')] of the printed loss lines, timings left out."""
    return [(int(epoch), int(iters), losses) for epoch, iters, losses in
            re.findall(r'^\(epoch: (\d+), iters: (\d+), time: [\d.]+, data: [\d.]+\) (.*)$', stdout, re.M)]


def test_continue_train_goes_on_from_the_saved_epoch_as_if_never_stopped(runner, tmp_path):
    data = make_aligned_pairs(str(tmp_path / 'data'), count=4, size=32, phases=('train',))
    # A constant learning rate (--n_epochs_decay 0): 2 epochs then 2 more follow the schedule of 4 in one go.
    common = ['--dataroot', data, '--checkpoints_dir', tmp_path, *TINY_NET, '--n_epochs_decay', 0, '--print_freq', 2,
              '--seed', 1]
    runner.run('train.py', *common, '--name', 'resumed', '--n_epochs', 2)
    resumed = runner.run('train.py', *common, '--name', 'resumed', '--n_epochs', 4, '--continue_train')
    uninterrupted = runner.run('train.py', *common, '--name', 'uninterrupted', '--n_epochs', 4)

    state = tmp_path / 'resumed' / 'latest_train_state.pth'
    assert f'resuming from {state}: epoch 2, 4 samples into it, total_iters 8' in resumed.stdout
    # Epochs 3 and 4 only, with the losses of the uninterrupted run's epochs 3 and 4: from the saved weights.
    assert [epoch for epoch, _, _ in loss_lines(resumed.stdout)] == [3, 3, 4, 4]
    assert loss_lines(resumed.stdout) == loss_lines(uninterrupted.stdout)[4:]
    assert 'End of epoch 1 /' not in resumed.stdout and 'End of epoch 4 / 4' in resumed.stdout
    # CPU, no loader workers: bitwise the same weights (and so the same optimizer steps and dropout).
    for name in 'GD':
        got, expected = (torch.load(tmp_path / folder / f'latest_net_{name}.pth', weights_only=True)
                         for folder in ('resumed', 'uninterrupted'))
        assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in expected), name


def test_overfitting_four_pairs_drives_L1_down(runner, tmp_path):
    data = make_aligned_pairs(str(tmp_path / 'data'), count=4, size=32, phases=('train',))
    runner.run('train.py', '--dataroot', data, '--name', 'fit', '--checkpoints_dir', tmp_path, *TINY_NET,
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
    (['--gan_mode', 'relativistic'], 'choose from vanilla, lsgan, wgangp, hinge'),
    (['--device', 'tpu'], 'choose auto, cpu, cuda'),
    (['--norm', 'syncbatch', '--device', 'cpu'], 'needs CUDA'),
    (['--dataroot', '/nonexistent/facades'], 'there is neither /nonexistent/facades/train (A|B images side by side) '
                                             'nor /nonexistent/facades/trainA and /nonexistent/facades/trainB'),
])
def test_bad_options_give_one_clear_error(runner, args, message, tmp_path):
    data = make_aligned_pairs(str(tmp_path / 'data'), count=1, size=32, phases=('train',))
    proc = runner.run('train.py', '--dataroot', data, '--checkpoints_dir', tmp_path, *TINY_NET, *args, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr[-2000:]
    assert 'Traceback' not in proc.stderr
