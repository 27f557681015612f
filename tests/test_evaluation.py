"""test.py's metrics (metrics.json, metrics.csv, the gallery), FID/KID wiring and --lambda_GAN 0."""
import csv
import json
import os
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from models import test_model  # not its class by name: pytest would take TestModel for a test class
from models.colorization_model import ColorizationModel
from models.pix2pix_model import Pix2PixModel
from tests.scripts import TINY_NET, run
from tests.tiny_data import make_aligned_pairs
from util.evaluation import fid
from util.evaluation.scores import Evaluation
from tests.test_fid import naive_mmd2, random_inception_state, reference_fid

COUNT = 6
SIZE = ['--load_size', 32, '--crop_size', 32]


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp('evaluation')
    data = make_aligned_pairs(str(root / 'data'), count=COUNT, size=32)
    ckpt = root / 'checkpoints'
    run('train.py', '--dataroot', data, '--name', 'tiny', '--checkpoints_dir', ckpt, *TINY_NET,
        '--n_epochs', 1, '--n_epochs_decay', 0, '--seed', 1)
    return data, ckpt


def load_png(path):
    return np.array(Image.open(path).convert('RGB'))


def gallery_order(html):
    """Image names in the order of the gallery's row headers ('NAME: L1 ...')."""
    return re.findall(r'<h3>([^<:]+)(?::[^<]*)?</h3>', html)


def test_every_output_is_scored_and_listed_worst_first(trained, tmp_path):
    data, ckpt = trained
    proc = run('test.py', '--dataroot', data, '--name', 'tiny', '--checkpoints_dir', ckpt,
               '--results_dir', tmp_path, *SIZE, '--sort_by_metric', 'ssim')
    out = tmp_path / 'tiny' / 'test_latest'
    report = json.loads((out / 'metrics.json').read_text())
    names = [f'{i:03d}' for i in range(COUNT)]
    assert report['count'] == COUNT and [r['name'] for r in report['images']] == names
    assert (report['output'], report['target']) == ('fake_B', 'real_B')
    for key in ('l1', 'psnr', 'ssim'):
        assert report['mean'][key] == pytest.approx(np.mean([r[key] for r in report['images']]), rel=1e-12)

    # Recomputed independently (numpy, scikit-image) from the PNGs the gallery shows.
    for r in report['images']:
        output = load_png(out / 'images' / f'{r["name"]}_fake_B.png')
        target = load_png(out / 'images' / f'{r["name"]}_real_B.png')
        assert output.shape == (32, 32, 3)
        assert r['l1'] == pytest.approx(np.abs(output / 255.0 - target / 255.0).mean(), abs=1e-12)
        assert r['psnr'] == pytest.approx(peak_signal_noise_ratio(target, output, data_range=255), rel=1e-9)
        assert r['ssim'] == pytest.approx(structural_similarity(
            target, output, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255,
            channel_axis=-1), abs=1e-5)  # our window sums run in float32

    with open(out / 'metrics.csv', newline='') as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['name', 'l1', 'psnr', 'ssim'] and len(rows) == COUNT + 2
    for row, r in zip(rows[1:-1], report['images']):
        assert row[0] == r['name'] and [float(v) for v in row[1:]] == [r['l1'], r['psnr'], r['ssim']]
    assert rows[-1][0] == 'mean' and [float(v) for v in rows[-1][1:]] == [report['mean'][k] for k in ('l1', 'psnr', 'ssim')]

    # The means come first on the page, before any image row; rows run from the lowest SSIM up.
    html = (out / 'index.html').read_text()
    means = f'L1 {report["mean"]["l1"]:.4f}, PSNR {report["mean"]["psnr"]:.2f} dB, SSIM {report["mean"]["ssim"]:.4f}'
    assert means in html and html.index(means) < html.index('<h3>') < html.index('<img')
    assert means in proc.stdout
    order = gallery_order(html)
    assert sorted(order) == names
    by_name = {r['name']: r['ssim'] for r in report['images']}
    ssims = [by_name[n] for n in order]
    assert ssims == sorted(ssims) and ssims[0] < ssims[-1]


def test_identical_output_and_target_score_l1_zero(trained, tmp_path):
    """A generator whose last layer is zeroed outputs tanh(0) = mid-grey, i.e. 128 in 8 bits, and the
    targets here are mid-grey: the saved output and target PNGs are identical."""
    _, ckpt = trained
    data = tmp_path / 'grey'
    (data / 'test').mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        label = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(np.concatenate([label, np.full((32, 32, 3), 128, np.uint8)], axis=1)).save(
            data / 'test' / f'{i}.png')
    zero = tmp_path / 'checkpoints' / 'zero'
    zero.mkdir(parents=True)
    shutil.copy(ckpt / 'tiny' / 'architecture.json', zero)
    state = torch.load(ckpt / 'tiny' / 'latest_net_G.pth', weights_only=True)
    for key in ('model.model.3.weight', 'model.model.3.bias'):  # the outermost up-convolution
        state[key].zero_()
    torch.save(state, zero / 'latest_net_G.pth')

    run('test.py', '--dataroot', data, '--name', 'zero', '--checkpoints_dir', tmp_path / 'checkpoints',
        '--results_dir', tmp_path / 'results', *SIZE, '--sort_by_metric', 'psnr')
    out = tmp_path / 'results' / 'zero' / 'test_latest'
    for i in range(3):
        assert np.array_equal(load_png(out / 'images' / f'{i}_fake_B.png'), load_png(out / 'images' / f'{i}_real_B.png'))
    report = json.loads((out / 'metrics.json').read_text())
    assert [r['l1'] for r in report['images']] == [0.0] * 3
    assert [r['psnr'] for r in report['images']] == [None] * 3  # inf is not JSON
    assert [r['ssim'] for r in report['images']] == pytest.approx([1.0] * 3, abs=1e-12)
    assert report['mean']['l1'] == 0.0 and report['mean']['psnr'] is None
    with open(out / 'metrics.csv', newline='') as f:
        assert [row[2] for row in csv.reader(f)][1:] == ['inf'] * 4
    html = (out / 'index.html').read_text()
    assert 'PSNR inf (identical)' in html and gallery_order(html) == ['0', '1', '2']


@pytest.fixture(scope='module')
def inception_weights(tmp_path_factory):
    """A weights file in the layout of torch-fidelity's, with random weights (the real file is not downloaded)."""
    path = tmp_path_factory.mktemp('inception') / fid.WEIGHTS_NAME
    torch.save(random_inception_state(), path)
    return path


def test_fid_and_kid_with_a_weights_file(trained, inception_weights, tmp_path):
    data, ckpt = trained
    proc = run('test.py', '--dataroot', data, '--name', 'tiny', '--checkpoints_dir', ckpt,
               '--results_dir', tmp_path, *SIZE, '--fid_weights', inception_weights)
    out = tmp_path / 'tiny' / 'test_latest'
    mean = json.loads((out / 'metrics.json').read_text())['mean']
    # The same statistics from the saved PNGs, through the same network, by independent formulas.
    model = fid.load_inception(str(inception_weights))
    names = [f'{i:03d}' for i in range(COUNT)]
    outputs = fid.features([load_png(out / 'images' / f'{n}_fake_B.png') for n in names], model)
    targets = fid.features([load_png(out / 'images' / f'{n}_real_B.png') for n in names], model)
    assert mean['fid'] > 0
    assert mean['fid'] == pytest.approx(reference_fid(outputs, targets), rel=1e-4)
    kid = naive_mmd2(outputs, targets)  # subsets of all 6 images: every estimate is the full-set one
    assert mean['kid'] == pytest.approx(kid, rel=1e-3, abs=1e-9) and mean['kid_std'] >= 0
    html = (out / 'index.html').read_text()
    assert f'FID {mean["fid"]:.2f}' in html and f'FID {mean["fid"]:.2f}' in proc.stdout
    assert gallery_order(html) == names  # no --sort_by_metric: dataset order


def test_fid_and_sorting_options_fail_clearly(trained, tmp_path):
    data, ckpt = trained
    common = ['--dataroot', data, '--name', 'tiny', '--checkpoints_dir', ckpt, '--results_dir', tmp_path, *SIZE]
    missing = run('test.py', *common, '--fid_weights', tmp_path / 'nowhere.pth', check=False)
    assert missing.returncode != 0 and 'Traceback' not in missing.stderr
    assert 'nowhere.pth' in missing.stderr and fid.WEIGHTS_URL in missing.stderr
    assert not (tmp_path / 'tiny').exists()  # fails before any image is written

    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'not a weights file')
    bad = run('test.py', *common, '--fid_weights', garbage, check=False)
    assert bad.returncode != 0 and 'Traceback' not in bad.stderr
    assert 'is not a valid' in bad.stderr and fid.WEIGHTS_URL in bad.stderr

    no_targets = run('test.py', *common, '--model', 'test', '--dataroot', os.path.join(data, 'test'),
                     '--sort_by_metric', 'l1', check=False)
    assert no_targets.returncode != 0 and 'Traceback' not in no_targets.stderr
    assert '--sort_by_metric needs targets' in no_targets.stderr


def test_lambda_gan_zero_trains_the_generator_on_l1_alone(trained):
    data, _ = trained
    from data import create_dataloader
    from models import create_model
    from options.train_options import TrainOptions
    opt = TrainOptions().parse(['--dataroot', data, *map(str, TINY_NET), '--lambda_GAN', '0',
                                '--checkpoints_dir', os.path.dirname(data)])
    model = create_model(opt)
    model.set_input(next(iter(create_dataloader(opt, shuffle=False))))

    def generator_gradients(loss):
        model.netG.zero_grad()
        torch.manual_seed(0)  # the same dropout masks on every forward
        model.forward()
        loss()
        return [p.grad.clone() for p in model.netG.parameters()]

    def l1_alone():
        (model.criterionL1(model.fake_B, model.real_B) * opt.lambda_L1).backward()

    reference = generator_gradients(l1_alone)
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(generator_gradients(model.backward_G), reference))
    assert model.loss_G_GAN.item() == 0
    model.opt = opt.derive(lambda_GAN=1.0)  # the full objective: D's opinion changes G's gradients
    assert not all(torch.allclose(a, b, atol=1e-7) for a, b in zip(generator_gradients(model.backward_G), reference))


def test_the_pair_scored_is_output_against_target():
    assert Evaluation(Pix2PixModel.visual_roles).pair == ('fake_B', 'real_B')
    # Colorization: the RGB pictures of its Lab tensors, i.e. the colourised photo against the real one.
    assert Evaluation(ColorizationModel.visual_roles).pair == ('fake_B_rgb', 'real_B_rgb')
    assert not Evaluation(test_model.TestModel.visual_roles).enabled  # --model test: nothing to compare with
