"""scripts/quality_facades.sh on a few generated pairs: the paper's settings, the iteration budget as
epochs, both test modes, the weight average (--ema_decay) beside the generator, and the printed metrics; and
scripts/maps_local_vs_unet.sh at its smallest."""
import json
import os
import re

import torch
from PIL import Image

from tests.scripts import run
from tests.tiny_data import make_aligned_pairs, make_palette_pairs


def quality(*args):
    return run('scripts/quality_facades.sh', *args, check=False)


def test_trains_the_budget_and_prints_both_test_modes(tmp_path):
    data = make_aligned_pairs(str(tmp_path / 'data'), count=4, size=32)
    ckpt, results = tmp_path / 'checkpoints', tmp_path / 'results'
    # Small networks keep the test fast; they are passed on to train.py after the script's settings.
    proc = quality(data, '--iters', 9, '--name', 'q', '--checkpoints_dir', ckpt, '--results_dir', results,
                   '--ngf', 8, '--ndf', 8, '--print_freq', 4, '--ema_decay', 0.9, '--ema_every', 1)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    # 9 iterations on 4 images round to 2 epochs: the first at a constant rate, the second decaying.
    assert '8 iterations (4 images x 2 epochs: 1 constant, 1 decaying)' in proc.stdout
    train_opt = json.loads((ckpt / 'q' / 'train_opt.json').read_text())
    expected = dict(direction='BtoA', netG='unet_128', netD='basic', load_size=143, crop_size=128, batch_size=1,
                    lr=0.0002, beta1=0.5, lambda_L1=100.0, gan_mode='vanilla', norm='batch', n_epochs=1,
                    n_epochs_decay=1, display_id=0, ngf=8, ndf=8, ema_decay=0.9)
    assert {k: train_opt[k] for k in expected} == expected
    log = (ckpt / 'q' / 'loss_log.txt').read_text()
    assert re.findall(r'\(epoch: (\d), iters: (\d)', log) == [('1', '4'), ('2', '4')]

    for suffix, generator in (('', 'G'), ('_ema', 'G_ema (EMA)')):
        for mode in ('train', 'eval'):
            folder = results / f'{mode}_mode{suffix}' / 'q' / 'test_latest'
            report = json.loads((folder / 'metrics.json').read_text())
            mean = report['mean']
            assert report['count'] == 4
            row = f'{generator:<14} {mode:<10} {4:>6} {mean["l1"]:>7.4f} {mean["psnr"]:>10.2f} {mean["ssim"]:>7.4f}'
            assert row in proc.stdout
    # Two generators tested: the outputs differ.
    live, average = ((results / f'eval_mode{suffix}' / 'q' / 'test_latest' / 'images' / '000_fake_B.png').read_bytes()
                     for suffix in ('', '_ema'))
    assert live != average
    test_opt = json.loads((ckpt / 'q' / 'test_opt.json').read_text())  # the last test run: the average, eval mode
    assert test_opt['eval'] is True and test_opt['load_size'] == 128 and test_opt['crop_size'] == 128
    assert test_opt['model_suffix'] == '_ema'
    assert re.search(r'^training: \d+ s = [\d.]+ min wall clock$', proc.stdout, re.M)
    assert re.search(r'^load before: .*load average', proc.stdout, re.M)


def test_untrained_baseline_and_bad_dataroot(tmp_path):
    data = make_aligned_pairs(str(tmp_path / 'data'), count=2, size=32)
    proc = quality(data, '--untrained', '--name', 'u', '--checkpoints_dir', tmp_path / 'ck',
                   '--results_dir', tmp_path / 'res', '--ngf', 8, '--ndf', 8)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert 'untrained generator' in proc.stdout and 'initialising (untrained)' in proc.stdout
    assert os.path.exists(tmp_path / 'ck' / 'u' / 'latest_net_G.pth')
    assert not os.path.exists(tmp_path / 'ck' / 'u' / 'loss_log.txt')
    assert re.search(r'^G +eval +2 ', proc.stdout, re.M)
    assert 'G_ema' not in proc.stdout  # no --ema_decay: the generator alone

    missing = quality(tmp_path / 'nowhere')
    assert missing.returncode == 2 and 'nowhere/train is not a folder' in missing.stderr


def test_semantic_score_columns_with_a_segmenter(tmp_path):
    # Facades-like JPEG pairs (photo left, label map right), a segmenter trained on them, then the quality
    # run: its table gains the semantic score of each generator and test mode, and the real photos' ceiling.
    data = str(tmp_path / 'data')
    make_palette_pairs(data, ((20, 20, 200), (230, 40, 40), (40, 200, 60), (240, 230, 50)), count=4, size=64)
    segmenter = tmp_path / 'segmenter.pth'
    run('scripts/train_segmenter.py', '--dataroot', data, '--direction', 'BtoA', '--crop_size', 32, '--epochs', 2,
        '--batch_size', 2, '--width', 4, '--output', segmenter, '--device', 'cpu')
    results = tmp_path / 'results'
    proc = quality(data, '--iters', 4, '--name', 's', '--checkpoints_dir', tmp_path / 'ck', '--results_dir', results,
                   '--segmenter', segmenter, '--ngf', 8, '--ndf', 8)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    figures = ('pixel_accuracy', 'class_accuracy', 'mean_iou')
    for mode in ('train', 'eval'):
        report = json.loads((results / f'{mode}_mode' / 's' / 'test_latest' / 'metrics.json').read_text())
        mean, semantic = report['mean'], report['semantic']
        row = (f'{"G":<14} {mode:<10} {4:>6} {mean["l1"]:>7.4f} {mean["psnr"]:>10.2f} {mean["ssim"]:>7.4f} ' +
               ' '.join(f'{semantic["output"][k]:>9.4f}' for k in figures))
        assert row in proc.stdout
    ceiling = ' '.join(f'{semantic["target"][k]:>9.4f}' for k in figures)
    assert re.search(r'^real photos +\(ceiling\) +' + re.escape(ceiling) + '$', proc.stdout, re.M)


def test_recipe_sets_what_the_script_does_not_type(tmp_path):
    # The script types only what differs from train.py's defaults, so --recipe improved changes D, the loss and
    # the average; an option typed after it still wins.
    data = make_aligned_pairs(str(tmp_path / 'data'), count=2, size=32)
    proc = quality(data, '--iters', 2, '--name', 'r', '--checkpoints_dir', tmp_path / 'ck', '--results_dir',
                   tmp_path / 'res', '--ngf', 8, '--ndf', 8, '--recipe', 'improved', '--lr_D', 3e-4)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    train_opt = json.loads((tmp_path / 'ck' / 'r' / 'train_opt.json').read_text())
    expected = dict(netG='unet_128', netD='basic', gan_mode='hinge', spectral_norm_D=True, lr=2e-4, lr_D=3e-4,
                    upsample='resize', ema_decay=0.999, ema_bn_images=400, beta1=0.5, lambda_L1=100.0,
                    load_size=143, crop_size=128)
    assert {k: train_opt[k] for k in expected} == expected
    assert re.search(r'^G_ema \(EMA\) +eval +2 ', proc.stdout, re.M)


def test_maps_local_vs_unet_trains_both_schedules_then_scores_and_pictures_them(tmp_path):
    """scripts/maps_local_vs_unet.sh at its smallest (SIZE 256, narrow networks, one image, one epoch per run):
    the U-Net beside pix2pixHD's schedule, whose local run starts from the global run and keeps it fixed."""
    data = make_aligned_pairs(str(tmp_path / 'data'), count=2, size=64)
    env = dict(SIZE='256', NGF='4', TRAIN_IMAGES='1', UNET_EPOCHS='1+0', GLOBAL_EPOCHS='1+0', LOCAL_EPOCHS='1+0',
               NUM_TEST='2')
    proc = run('scripts/maps_local_vs_unet.sh', data, tmp_path / 'out', env=env, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    arms = re.findall(r'^(\w+): trained in \d+ s; L1 [\d.]+, PSNR [\d.]+ dB, SSIM [\d.]+ \(mean of 2 images',
                      proc.stdout, re.M)
    assert arms == ['unet', 'coarse_to_fine']

    checkpoints = tmp_path / 'out' / 'checkpoints'
    options = {name: json.loads((checkpoints / name / 'train_opt.json').read_text())
               for name in ('maps_unet', 'maps_global', 'maps_local')}
    wanted = {'maps_unet': dict(netG='unet_256', ngf=8, load_size=286, crop_size=256, direction='AtoB'),
              'maps_global': dict(netG='global', ngf=8, load_size=143, crop_size=128, direction='AtoB'),
              'maps_local': dict(netG='local', ngf=4, load_size=286, crop_size=256, niter_fix_global=1,
                                 load_global=str(checkpoints / 'maps_global' / 'latest_net_G.pth'))}
    for name, expected in wanted.items():
        assert {k: options[name][k] for k in expected} == expected, name
    # Its one epoch fixed: the local generator's global part is still the global run's (batch norm's running
    # statistics aside, which every forward pass in training mode updates).
    global_G, local_G = (torch.load(checkpoints / name / 'latest_net_G.pth', weights_only=True)
                         for name in ('maps_global', 'maps_local'))
    shared = [k for k in local_G if k.startswith('model.') and 'running_' not in k and 'num_batches' not in k]
    assert shared and all(torch.equal(local_G[k], global_G[k]) for k in shared)

    with Image.open(tmp_path / 'out' / 'comparison.jpg') as picture:
        assert picture.size == (4 * 128, 2 * 128)  # 4 panels of the middle half, one row per test image


def test_maps_local_vs_unet_refuses_a_size_or_folder_it_cannot_use_before_writing(tmp_path):
    data = make_aligned_pairs(str(tmp_path / 'data'), count=1, size=32)
    proc = run('scripts/maps_local_vs_unet.sh', data, tmp_path / 'out', env=dict(SIZE='300'), check=False)
    assert proc.returncode == 2 and proc.stderr.strip() == ('error: SIZE=300: give a multiple of 256 (the sizes '
                                                            'unet_256 takes), e.g. 512')
    proc = run('scripts/maps_local_vs_unet.sh', tmp_path / 'nowhere', tmp_path / 'out', check=False)
    assert proc.returncode == 2 and proc.stderr.strip() == (f"error: {tmp_path / 'nowhere'}/train is not a folder; "
                                                            f"give the maps dataset's folder")
    assert not (tmp_path / 'out').exists()
