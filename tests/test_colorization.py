"""Colorization end to end through the user's scripts, on a few generated photos."""
import json
import os

import numpy as np
import pytest
from PIL import Image
from skimage.color import rgb2lab

from options.train_options import TrainOptions
from tests.scripts import TINY_NET, run
from tests.tiny_data import make_aligned_pairs
from util.errors import UserError

COLOUR_PHOTOS = ['0', '1', '2', '3', 'rgba', 'palette']  # the test split, with 'gray'


def load(path):
    return np.asarray(Image.open(path).convert('RGB')).astype(int)


def l1(a, b):
    return np.abs(a - b).mean() / 255


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


def test_colorization_learns_colour_and_keeps_the_lightness(tmp_path):
    make_photos(tmp_path / 'photos')
    common = ['--dataroot', tmp_path / 'photos', '--name', 'color', '--checkpoints_dir', tmp_path / 'ck']
    # 20 steps at a high rate: enough to learn that these photos are red (a > 0) from their lightness alone.
    run('scripts/train_colorization.sh', *common, *TINY_NET, '--n_epochs', 10, '--n_epochs_decay', 0,
        '--batch_size', 2, '--lr', 0.002, '--seed', 0)
    run('scripts/test_colorization.sh', *common, '--results_dir', tmp_path / 'results', '--load_size', 32,
        '--crop_size', 32)
    results = tmp_path / 'results' / 'color' / 'test_latest'
    report = json.loads((results / 'metrics.json').read_text())
    assert (report['output'], report['target'], report['count']) == ('fake_B_rgb', 'real_B_rgb', 7)
    scores = {image['name']: image for image in report['images']}
    assert sorted(scores) == sorted(COLOUR_PHOTOS + ['gray'])
    for stem in scores:
        gray, real, fake = (load(results / 'images' / f'{stem}_{label}.png')
                            for label in ('real_A', 'real_B_rgb', 'fake_B_rgb'))
        assert gray.shape == real.shape == fake.shape == (32, 32, 3)
        assert (gray == gray[..., :1]).all()  # the input is shown as gray: its lightness L, 0..100 as 0..255
        # The output is the input's L with the colours (ab) the model chose: L within rounding wherever the
        # colour is inside the sRGB gamut (outside, a channel is clipped to 0 or 255 and L moves).
        fake_lab = rgb2lab(fake / 255)
        inside = ((fake > 0) & (fake < 255)).all(axis=-1)
        assert inside.mean() > 0.5, stem
        assert np.abs(fake_lab[..., 0] - gray[..., 0] / 255 * 100)[inside].max() < 1, stem
        assert fake_lab[..., 1].mean() > 20, stem  # red, as every training photo is; gray would be a = b = 0
        # metrics.json scores the saved output against the saved target.
        assert scores[stem]['l1'] == pytest.approx(l1(fake, real), abs=1e-12)
        if stem in COLOUR_PHOTOS:
            assert l1(fake, real) < l1(gray, real), stem  # nearer the photo than its gray input is
    # The target is the photo through Lab and back: the red ramp and the green square, and gray stays gray.
    photo = np.asarray(Image.open(tmp_path / 'photos' / 'test' / '0.png')).astype(int)
    assert np.abs(load(results / 'images' / '0_real_B_rgb.png') - photo).max() <= 2
    assert np.ptp(load(results / 'images' / 'gray_real_B_rgb.png'), axis=-1).max() <= 1
    html = (results / 'index.html').read_text()
    assert html.count('_fake_B_rgb.png"') >= len(scores)


def test_pix2pix_scripts_train_and_test(tmp_path):
    data = make_aligned_pairs(str(tmp_path / 'facades'), count=2, size=32)
    common = ['--dataroot', data, '--name', 'facades', '--checkpoints_dir', tmp_path / 'ck']
    run('scripts/train_pix2pix.sh', *common, *TINY_NET, '--n_epochs', 1, '--n_epochs_decay', 0)
    proc = run('scripts/test_pix2pix.sh', *common, '--results_dir', tmp_path / 'results', '--load_size', 32,
               '--crop_size', 32)
    assert 'processed 2 images' in proc.stdout
    assert (tmp_path / 'results' / 'facades' / 'test_latest' / 'images' / '000_fake_B.png').exists()


@pytest.mark.parametrize('flags', [['--input_nc', '3'], ['--output_nc', '3'], ['--direction', 'BtoA']])
def test_the_colorization_dataset_refuses_other_channels_before_anything_runs(tmp_path, flags):
    # The dataset's own check (ColorizationDataset.validate_options), made while the options are resolved.
    with pytest.raises(UserError) as error:
        TrainOptions().parse(['--dataroot', str(tmp_path), '--model', 'colorization', '--checkpoints_dir',
                              str(tmp_path / 'checkpoints'), *flags])
    assert str(error.value) == ('error: --dataset_mode colorization maps L (1 channel) to ab (2 channels): it needs '
                                '--input_nc 1 --output_nc 2 --direction AtoB (the defaults; drop the flags that '
                                'change them)')
    assert not (tmp_path / 'checkpoints').exists()
