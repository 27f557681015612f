"""Colorization end to end through the user's scripts, on a few generated photos."""
import os
import subprocess

import numpy as np
from PIL import Image

from tests.datagen import PYTHON, REPO, make_aligned_pairs

TINY = ['--netG', 'unet_32', '--ngf', '8', '--ndf', '8', '--load_size', '32', '--crop_size', '32',
        '--display_id', '0', '--num_threads', '0']


def script(name, *args):
    env = dict(os.environ, PYTHON=PYTHON, OMP_NUM_THREADS='1')
    proc = subprocess.run(['bash', os.path.join(REPO, 'scripts', name), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


def make_photos(root):
    rng = np.random.default_rng(0)
    for split in ('train', 'test'):
        os.makedirs(root / split)
        for i in range(4):
            photo = np.zeros((32, 32, 3), np.uint8)
            photo[..., 0] = np.linspace(0, 255, 32)[None]
            photo[..., 2] = rng.integers(0, 255)
            photo[8:20, 8:20, 1] = 200
            Image.fromarray(photo).save(root / split / f'{i}.png')
    # Files that are not plain RGB must be read, not crash the run.
    Image.fromarray(photo[..., 0]).save(root / 'test' / 'gray.png')
    Image.fromarray(np.dstack([photo, np.full((32, 32), 128, np.uint8)])).save(root / 'test' / 'rgba.png')
    Image.fromarray(photo).convert('P').save(root / 'test' / 'palette.png')


def test_colorization_trains_and_the_gallery_shows_rgb_images(tmp_path):
    make_photos(tmp_path / 'photos')
    common = ['--dataroot', tmp_path / 'photos', '--name', 'color', '--checkpoints_dir', tmp_path / 'ck']
    script('train_colorization.sh', *common, *TINY, '--n_epochs', 1, '--n_epochs_decay', 1, '--batch_size', 2)
    state = (tmp_path / 'ck' / 'color' / 'latest_net_G.pth')
    assert state.exists()
    script('test_colorization.sh', *common, '--results_dir', tmp_path / 'results', '--load_size', 32,
           '--crop_size', 32)
    images = tmp_path / 'results' / 'color' / 'test_latest' / 'images'
    stems = ['0', '1', '2', '3', 'gray', 'rgba', 'palette']
    for stem in stems:
        gray = np.asarray(Image.open(images / f'{stem}_real_A.png').convert('RGB')).astype(int)
        real = np.asarray(Image.open(images / f'{stem}_real_B_rgb.png'))
        fake = np.asarray(Image.open(images / f'{stem}_fake_B_rgb.png'))
        assert real.shape == fake.shape == (32, 32, 3)
        assert np.array_equal(gray[..., 0], gray[..., 1])  # the input is shown as gray
    # The real photo comes back in colour through Lab and back: red ramp and the green square.
    photo = np.asarray(Image.open(tmp_path / 'photos' / 'test' / '0.png')).astype(int)
    real = np.asarray(Image.open(images / '0_real_B_rgb.png')).astype(int)
    assert np.abs(real - photo).max() <= 2
    html = (tmp_path / 'results' / 'color' / 'test_latest' / 'index.html').read_text()
    assert html.count('_fake_B_rgb.png"') >= len(stems)


def test_pix2pix_scripts_train_and_test(tmp_path):
    data = make_aligned_pairs(str(tmp_path / 'facades'), count=2, size=32)
    common = ['--dataroot', data, '--name', 'facades', '--checkpoints_dir', tmp_path / 'ck']
    script('train_pix2pix.sh', *common, *TINY, '--n_epochs', 1, '--n_epochs_decay', 0)
    proc = script('test_pix2pix.sh', *common, '--results_dir', tmp_path / 'results', '--load_size', 32,
                  '--crop_size', 32)
    assert 'processed 2 images' in proc.stdout
    assert (tmp_path / 'results' / 'facades' / 'test_latest' / 'images' / '000_fake_B.png').exists()
