"""Scores of data other than 8-bit pictures in the data's own units: test.py's metrics.json, metrics.csv and
gallery, and validation's val_log.jsonl, recomputed by hand from the files test.py writes.

Two tiny data sets, each trained for one epoch with a validation: a CT-like one, 16-bit gray PNGs whose range
is measured, and a depth one, float32 TIFFs of two channels (a depth in millimetres and a confidence) with a
range given per channel.
"""
import csv
import json
import math
import re

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from tests.scripts import TINY_NET
from util.evaluation.metrics import names_in_units, score_in_units
from util.evaluation.scores import METRICS, Evaluation, format_scores
from util.value_mapping import ValueMapping

SIZE = ['--load_size', 32, '--crop_size', 32]
COUNT = 3
ROLES = {'input': 'real_A', 'output': 'fake_B', 'target': 'real_B'}


def make_ct_pairs(root):
    """16-bit gray PNGs: A a smooth field of 1000..4000, B twice it plus 100."""
    rng = np.random.default_rng(0)
    for phase in ('train', 'test'):
        for i in range(COUNT):
            yy, xx = np.mgrid[0:32, 0:32] / 31
            A = (1000 + 3000 * (0.5 + 0.5 * np.sin(6 * xx + rng.uniform(0, 6)) * yy)).astype(np.uint16)
            B = (2 * A.astype(np.float64) + 100).astype(np.uint16)
            for side, image in (('A', A), ('B', B)):
                (root / f'{phase}{side}').mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(root / f'{phase}{side}' / f'{i:03d}.png')


def make_depth_pairs(root):
    """float32 TIFFs: A one channel, B two: a depth in millimetres (500..4000) and a confidence (0..1)."""
    rng = np.random.default_rng(1)
    for phase in ('train', 'test'):
        for i in range(COUNT):
            A = rng.normal(0, 1, (32, 32)).astype(np.float32)
            depth = 500 + 3500 * (A - A.min()) / (A.max() - A.min())
            confidence = rng.uniform(0, 1, (32, 32))
            B = np.stack([depth, confidence], axis=-1).astype(np.float32)
            for side, image in (('A', A), ('B', B)):
                (root / f'{phase}{side}').mkdir(parents=True, exist_ok=True)
                tifffile.imwrite(root / f'{phase}{side}' / f'{i:03d}.tif', image, photometric='minisblack',
                                 planarconfig='contig')


DATA = {'ct': (make_ct_pairs, [], '.png'), 'depth': (make_depth_pairs, ['--range_B', '0:5000,0:1'], '.tif')}


@pytest.fixture(scope='module', params=sorted(DATA))
def trained(request, runner, tmp_path_factory):
    """A finished 1-epoch run on one of the data sets, validated at its end; the name of its data set, its
    data, checkpoints and output side's mapping."""
    make, flags, extension = DATA[request.param]
    root = tmp_path_factory.mktemp(request.param)
    make(root / 'data')
    proc = runner.run('train.py', '--dataroot', root / 'data', '--name', request.param, '--checkpoints_dir',
                      root / 'checkpoints', *TINY_NET, '--n_epochs', 1, '--n_epochs_decay', 0, '--seed', 0,
                      '--val_freq', 1, *flags)
    architecture = json.loads((root / 'checkpoints' / request.param / 'architecture.json').read_text())
    return dict(name=request.param, data=root / 'data', checkpoints=root / 'checkpoints', extension=extension,
                mapping=architecture['mapping_B'], stdout=proc.stdout)


def read(path):
    """The values of a file test.py wrote, H x W x C, read with Pillow or tifffile rather than util.arrays."""
    image = tifffile.imread(path) if path.suffix == '.tif' else np.array(Image.open(path))
    return image[:, :, None] if image.ndim == 2 else image


def by_hand(output, target, ranges):
    """The scores of output against target (H x W x C in the data's units), channel by channel with numpy and
    scikit-image, then over the channels as metrics.score_in_units documents."""
    output, target = output.astype(np.float64), target.astype(np.float64)
    widths = np.array([high - low for low, high in ranges])
    mae = np.abs(output - target).mean(axis=(0, 1))
    normalised_mse = ((output - target) ** 2).mean(axis=(0, 1)) / widths ** 2
    psnr = [peak_signal_noise_ratio(target[..., c], output[..., c], data_range=w) for c, w in enumerate(widths)]
    ssim = [structural_similarity(target[..., c], output[..., c], gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False, data_range=w) for c, w in enumerate(widths)]
    scores = {'mae': mae.mean(), 'l1': (mae / widths).mean(), 'psnr': -10 * math.log10(normalised_mse.mean()),
              'ssim': np.mean(ssim)}
    if len(ranges) > 1:
        scores.update({f'mae[{c}]': v for c, v in enumerate(mae)})
        scores.update({f'psnr[{c}]': v for c, v in enumerate(psnr)})
        scores.update({f'ssim[{c}]': v for c, v in enumerate(ssim)})
    return scores


def test_test_py_scores_in_the_data_units(trained, runner, tmp_path):
    proc = runner.run('test.py', '--dataroot', trained['data'], '--name', trained['name'], '--checkpoints_dir',
                      trained['checkpoints'], '--results_dir', tmp_path, *SIZE, '--sort_by_metric', 'psnr')
    out = tmp_path / trained['name'] / 'test_latest'
    report = json.loads((out / 'metrics.json').read_text())
    mapping = trained['mapping']
    channels = len(mapping['ranges'])
    assert report['mapping'] == mapping and report['count'] == COUNT
    assert list(report['mean']) == list(names_in_units(channels))
    names = [f'{i:03d}' for i in range(COUNT)]
    assert [r['name'] for r in report['images']] == names
    for r in report['images']:
        output = read(out / 'images' / f'{r["name"]}_fake_B{trained["extension"]}')
        target = read(out / 'images' / f'{r["name"]}_real_B{trained["extension"]}')
        assert output.dtype == np.dtype(mapping['type']) and output.shape == (32, 32, channels)
        assert np.array_equal(target, read(trained['data'] / 'testB' / f'{r["name"]}{trained["extension"]}'))
        expected = by_hand(output, target, mapping['ranges'])
        assert list(r)[1:] == list(expected)
        for key, value in expected.items():
            # SSIM: scikit-image's Gaussian filter and ours differ in their last digits.
            assert r[key] == pytest.approx(value, rel=1e-9, abs=1e-7 if key.startswith('ssim') else 0), key
    for key, value in report['mean'].items():
        assert value == pytest.approx(np.mean([r[key] for r in report['images']]), rel=1e-12)

    with open(out / 'metrics.csv', newline='') as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['name', *names_in_units(channels)] and len(rows) == COUNT + 2
    for row, r in zip(rows[1:-1], report['images']):
        assert row[0] == r['name'] and [float(v) for v in row[1:]] == list(r.values())[1:]
    assert rows[-1] == ['mean', *(repr(v) for v in report['mean'].values())]

    # The means head the gallery and the output, in the units; rows run from the lowest PSNR up.
    means = format_scores(report['mean'])
    assert means.startswith(f'MAE {report["mean"]["mae"]:.4g}')
    if channels > 1:
        assert f'(0: {report["mean"]["mae[0]"]:.4g}, 1: {report["mean"]["mae[1]"]:.4g})' in means
    html = (out / 'index.html').read_text()
    assert means in html and means in proc.stdout and "in the data's units" in proc.stdout
    order = re.findall(r'<h3>([^<:]+)(?::[^<]*)?</h3>', html)
    psnrs = [next(r['psnr'] for r in report['images'] if r['name'] == name) for name in order]
    assert sorted(order) == names and psnrs == sorted(psnrs)


def test_validation_scores_as_test_py_does(trained, runner, tmp_path):
    folder = trained['checkpoints'] / trained['name']
    line, = [json.loads(text) for text in (folder / 'val_log.jsonl').read_text().splitlines()]
    runner.run('test.py', '--dataroot', trained['data'], '--name', trained['name'], '--checkpoints_dir',
               trained['checkpoints'], '--results_dir', tmp_path, *SIZE)
    mean = json.loads((tmp_path / trained['name'] / 'test_latest' / 'metrics.json').read_text())['mean']
    assert list(line['scores']['G']) == list(names_in_units(len(trained['mapping']['ranges'])))
    assert line['scores']['G'] == mean  # the same outputs against the same targets' values as read
    best = json.loads((folder / 'best_net_G.json').read_text())
    assert (best['metric'], best['score'], best['scores']) == ('l1', mean['l1'], mean)
    assert f'G: {format_scores(line["scores"]["G"])}' in trained['stdout']


def test_8bit_pictures_keep_their_scores_and_other_data_is_scored_in_units():
    def evaluation(mapping):
        return Evaluation(ROLES, mappings={label: mapping for label in ROLES.values()})

    for channels in (1, 3):
        assert evaluation(ValueMapping.full('uint8', channels)).metrics == METRICS
    for mapping in (ValueMapping.full('uint8', 2), ValueMapping('uint8', [(20, 200)], 'given'),
                    ValueMapping.full('uint16', 1), ValueMapping('float32', [(0, 1)] * 4, 'measured')):
        assert evaluation(mapping).metrics == names_in_units(mapping.channels)


def test_without_the_targets_values_they_come_from_the_network_values():
    """A dataset plug-in that gives no target_units: 16-bit targets come back exactly from the network's values."""
    mapping = ValueMapping('uint16', [(1000, 9000), (0, 65535)], 'measured')
    rng = np.random.default_rng(0)
    target = torch.from_numpy(rng.integers(0, 20000, (2, 16, 16)).astype(np.float32))
    output = mapping.to_network(target + torch.from_numpy(rng.normal(0, 300, (2, 16, 16)).astype(np.float32)))
    visuals = {'real_A': output, 'fake_B': output, 'real_B': mapping.to_network(target)}
    scores = [Evaluation(ROLES, mappings=dict.fromkeys(ROLES.values(), mapping)).add('x', visuals, units)
              for units in (target, None)]
    assert scores[0] == scores[1] == score_in_units(mapping.to_array(output), target.permute(1, 2, 0).numpy(),
                                                    mapping.ranges)
    assert list(scores[0]) == list(names_in_units(2))
    assert format_scores(scores[0]).startswith(f'MAE {scores[0]["mae"]:.4g} (0: {scores[0]["mae[0]"]:.4g}, 1: ')
