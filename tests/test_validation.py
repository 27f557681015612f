"""Validation while training (--val_freq), the best checkpoint, --plateau_on val and TensorBoard.

The tiny U-Net (unet_32) has no dropout layer, and validation normalises each image on its own, so its
scores are deterministic: they must be exactly what test.py computes for the same checkpoint.
"""
import json
import os

import pytest
import torch

from data import create_validation_loader
from models.segmenter import SegmenterNet, save_segmenter
from options.train_options import TrainOptions
from tests import browser
from tests.saved_networks import plateau_state
from tests.scripts import TINY_NET, run
from tests.tiny_data import make_aligned_pairs, make_palette_pairs
from training import state as training_state
from training.random_states import side_stream
from util.errors import UserError

NETWORKS = ('G', 'G_ema')
METRICS = ('l1', 'psnr', 'ssim')
SIZE = ['--load_size', 32, '--crop_size', 32]
# 4 pairs, batch 1, 3 epochs: losses every sample, visuals every 2nd, a validation and a checkpoint per epoch;
# D learns at twice G's rate.
ARGS = ['--n_epochs', 2, '--n_epochs_decay', 1, '--seed', 0, '--val_freq', 1, '--ema_decay', 0.5, '--ema_every', 1,
        '--save_epoch_freq', 1, '--print_freq', 1, '--display_freq', 2, '--tensorboard', '--lr_D', 4e-4]


@pytest.fixture(scope='module')
def validated(train_tiny):
    return train_tiny(*ARGS, name='validated')


def val_log(folder):
    return [json.loads(line) for line in (folder / 'val_log.jsonl').read_text().splitlines()]


def scores_by_test_py(runner, validated, tmp_path, epoch, suffix=''):
    """test.py's mean scores of the checkpoint <epoch>_net_G<suffix>.pth."""
    runner.run('test.py', '--dataroot', validated.data, '--name', 'validated', '--checkpoints_dir',
               validated.checkpoints, '--results_dir', tmp_path, '--epoch', epoch, '--model_suffix', suffix, *SIZE)
    return json.loads((tmp_path / 'validated' / f'test_{epoch}' / 'metrics.json').read_text())['mean']


def test_each_epoch_is_scored_as_test_py_scores_its_checkpoint(runner, validated, tmp_path):
    log = val_log(validated.folder)
    assert [(line['epoch'], line['total_iters'], line['images']) for line in log] == [(1, 4, 4), (2, 8, 4), (3, 12, 4)]
    assert all(line['split'] == str(validated.data / 'test') for line in log)  # no val/: the test split
    assert all(set(line['scores']) == set(NETWORKS) and set(line['scores']['G']) == set(METRICS) for line in log)
    for epoch, suffix in ((1, ''), (3, ''), (3, '_ema')):
        assert log[epoch - 1]['scores']['G' + suffix] == scores_by_test_py(runner, validated, tmp_path, epoch, suffix)
    # The average is not G: it is scored on its own.
    assert log[-1]['scores']['G'] != log[-1]['scores']['G_ema']


def test_best_checkpoint_is_the_best_validated_generator(runner, validated, tmp_path):
    log = val_log(validated.folder)
    for name in NETWORKS:
        l1 = [line['scores'][name]['l1'] for line in log]
        best_epoch = l1.index(min(l1)) + 1  # the first of equal scores: a later one must beat it
        # Each line lists the networks it improved on.
        assert [name in line['best'] for line in log] == [i == 0 or l1[i] < min(l1[:i]) for i in range(len(l1))]
        record = json.loads((validated.folder / f'best_net_{name}.json').read_text())
        assert record['epoch'] == best_epoch and record['total_iters'] == 4 * best_epoch
        assert (record['metric'], record['score'], record['scores']) == ('l1', min(l1), log[best_epoch - 1]['scores'][name])
        best = torch.load(validated.folder / f'best_net_{name}.pth', weights_only=True)
        saved = torch.load(validated.folder / f'{best_epoch}_net_{name}.pth', weights_only=True)
        assert best.keys() == saved.keys() and all(torch.equal(best[k], saved[k]) for k in saved)
    # test.py --epoch best loads it.
    assert scores_by_test_py(runner, validated, tmp_path, 'best') == json.loads(
        (validated.folder / 'best_net_G.json').read_text())['scores']


def test_the_state_records_the_last_validation_and_the_best(validated):
    saved = training_state.load(str(validated.folder / training_state.STATE_FILE))
    log = val_log(validated.folder)
    assert saved['validation']['epoch'] == 3 and saved['validation']['scores'] == log[-1]['scores']
    for name in NETWORKS:
        record = json.loads((validated.folder / f'best_net_{name}.json').read_text())
        assert saved['validation']['best'][name] == {'epoch': record['epoch'], 'metric': 'l1', 'score': record['score']}


def test_tensorboard_holds_losses_rate_scores_and_visuals(validated):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(validated.folder / 'tensorboard'), size_guidance={'scalars': 0, 'images': 0})
    events.Reload()
    losses = ['G_GAN', 'G_L1', 'D_real', 'D_fake']
    scores = [f'val/{name}/{metric}' for name in NETWORKS for metric in METRICS]
    rates = ['learning_rate/G', 'learning_rate/D']
    assert sorted(events.Tags()['scalars']) == sorted([f'loss/{k}' for k in losses] + rates + scores)
    logged = [line for line in (validated.folder / 'loss_log.txt').read_text().splitlines() if line.startswith('(')]
    for name in losses:
        points = events.Scalars(f'loss/{name}')
        assert [p.step for p in points] == list(range(1, 13))
        printed = [float(line.split(f' {name}: ')[1].split()[0]) for line in logged]
        assert [p.value for p in points] == pytest.approx(printed, abs=5e-4)  # the log rounds to 3 decimals
    # Linear decay over the last of 3 epochs: half of each rate in epoch 3.
    for tag, rate in zip(rates, (2e-4, 4e-4)):
        points = events.Scalars(tag)
        assert [p.step for p in points] == list(range(1, 13))
        assert [p.value for p in points] == pytest.approx([rate] * 8 + [rate / 2] * 4)
    for line in val_log(validated.folder):
        for name in NETWORKS:
            for metric in METRICS:
                point, = [p for p in events.Scalars(f'val/{name}/{metric}') if p.step == line['total_iters']]
                assert point.value == pytest.approx(line['scores'][name][metric], rel=1e-6)  # stored as float32
    assert all(len(events.Scalars(tag)) == 3 for tag in scores)
    assert sorted(events.Tags()['images']) == ['visuals/fake_B', 'visuals/real_A', 'visuals/real_B']
    for tag in events.Tags()['images']:
        assert [(image.step, image.width, image.height) for image in events.Images(tag)] == [
            (step, 32, 32) for step in (2, 4, 6, 8, 10, 12)]


def test_training_page_charts_each_metric_beside_the_losses(validated, tmp_path):
    browser.require_chromium()
    with browser.Browser() as page:
        page.open(validated.folder / 'web' / 'index.html')
        charts = page.evaluate("""[...document.querySelectorAll('svg.loss-plot')].map(chart => ({
            loss: chart.dataset.loss, metric: chart.dataset.metric,
            caption: chart.querySelector('text').textContent,
            top: chart.getBoundingClientRect().top,
            lines: [...chart.querySelectorAll('polyline')].map(line => [line.dataset.label,
                    [...line.points].map(p => [p.x, p.y]), line.getAttribute('stroke')])}))""")
        header = page.evaluate("document.querySelector('h3').textContent")
        page.screenshot(tmp_path / 'page.png')
    assert header == 'losses (from loss_log.txt) and validation scores (from val_log.jsonl)'
    assert [chart['loss'] for chart in charts[:4]] == ['G_GAN', 'G_L1', 'D_real', 'D_fake']
    assert [chart['metric'] for chart in charts[4:]] == list(METRICS)
    # In the same flex row as the loss charts: the first validation chart sits beside the last loss chart.
    assert charts[4]['top'] == charts[3]['top']
    log = val_log(validated.folder)
    for chart in charts[4:]:
        metric = chart['metric']
        last = log[-1]['scores']
        assert chart['caption'] == (f"val {metric}: G {last['G'][metric]:.4g}, G_ema {last['G_ema'][metric]:.4g} "
                                    f"at epoch 3.00")
        assert [label for label, _, _ in chart['lines']] == list(NETWORKS)
        assert chart['lines'][0][2] != chart['lines'][1][2]  # told apart by colour
        # One y axis for both lines; screen y grows downwards, so a larger score is drawn higher.
        values = [line['scores'][name][metric] for name in NETWORKS for line in log]
        ys = [y for _, points, _ in chart['lines'] for _, y in points]
        assert len(ys) == 6 and all((a - b) * (ya - yb) <= 0 for a, ya in zip(values, ys) for b, yb in zip(values, ys))
        for _, points, _ in chart['lines']:
            assert [x for x, _ in points] == sorted(x for x, _ in points)


def test_validation_split_and_its_preparation(tmp_path, monkeypatch):
    data = make_aligned_pairs(str(tmp_path / 'data'), count=3, size=32, phases=('train', 'val', 'test'))

    def loader(*extra):
        return create_validation_loader(TrainOptions().parse(['--dataroot', data, *TINY_NET, '--load_size', '48',
                                                              '--crop_size', '32', '--val_freq', '1', *extra]))

    batch = next(iter(loader()))
    assert loader().dataset.image_dir == os.path.join(data, 'val')  # val/ is preferred to test/
    assert batch['A'].shape[-2:] == (32, 32)  # resized to crop_size, as test.py does, not cropped at random
    assert [os.path.basename(p) for p in batch['A_paths']] == ['000.png']
    assert loader('--val_phase', 'test').dataset.image_dir == os.path.join(data, 'test')
    assert len(loader('--val_max', '2').dataset) == 2 and len(loader().dataset) == 3
    assert loader('--batch_size', '4').batch_size == 4
    assert loader('--batch_size', '4', '--preprocess', 'none').batch_size == 1  # sizes may differ: one at a time
    with monkeypatch.context() as patch:
        patch.setattr(os, 'cpu_count', lambda: 8)  # cores to spare for a worker
        with_workers = loader('--num_threads', '1')
    # Unlike the training loader's, its workers end with each validation instead of idling until the next.
    assert (with_workers.num_workers, with_workers.persistent_workers) == (1, False)
    assert create_validation_loader(TrainOptions().parse(['--dataroot', data, *TINY_NET])) is None  # no --val_freq
    for split in ('val', 'test'):
        os.rename(os.path.join(data, split), os.path.join(data, f'held_out_{split}'))
    with pytest.raises(UserError, match=r'--val_freq 1: there is no val/ or test/ \(nor valA/ and valB/ or testA/ and '
                                        r'testB/\) in .*data to validate on\. Put held-out pairs there \(laid out as '
                                        r"train's\), name another split of DATAROOT with --val_phase, or drop "
                                        r'--val_freq\.$'):
        loader()
    with pytest.raises(UserError, match=r'--val_phase tests: there is no tests/ \(nor testsA/ and testsB/\) in '):
        loader('--val_phase', 'tests')


@pytest.mark.parametrize('extra, message', [
    (['--lr_policy', 'plateau', '--plateau_on', 'val'], '--plateau_on val follows the validation scores, but there '
                                                        'are none: add --val_freq N'),
    (['--plateau_on', 'val', '--val_freq', 1], '--plateau_on val sets what --lr_policy plateau follows, but '
                                               '--lr_policy is linear'),
    (['--val_freq', -1], '--val_freq -1: give a number of epochs, or 0 for no validation'),
    (['--val_max', 0], '--val_max 0: validate on at least 1 image'),
    (['--segmenter', 'seg.pth'], '--segmenter scores the validations, but there are none: add --val_freq N'),
    (['--val_freq', 1, '--val_metric', 'mean_iou'], '--val_metric mean_iou is a semantic score: add --segmenter PATH'),
    (['--continue_train', '--epoch', 'best'], '--epoch best is the best validated generator alone (best_net_G.pth, '
                                              'for test.py); --continue_train needs D as well'),
])
def test_impossible_validation_options(extra, message):
    with pytest.raises(UserError) as error:
        TrainOptions().parse(['--dataroot', 'anywhere', *TINY_NET, *map(str, extra)])
    assert error.value.message.startswith(message)


def test_plateau_follows_the_validation_score(train_tiny):
    # Validations after epochs 2, 4 and 5 (the last); the rate steps after each but the last, which comes after
    # the final save. PSNR rises as G improves, so the scheduler watches for a maximum.
    run = train_tiny('--n_epochs', 5, '--n_epochs_decay', 0, '--seed', 0, '--val_freq', 2, '--lr_policy', 'plateau',
                     '--plateau_on', 'val', '--val_metric', 'psnr', count=2, name='plateau')
    log = val_log(run.folder)
    assert [line['epoch'] for line in log] == [2, 4, 5]
    saved = training_state.load(str(run.folder / training_state.STATE_FILE))
    expected = plateau_state([line['scores']['G']['psnr'] for line in log[:2]], 'psnr')
    for scheduler in saved['schedulers']:
        assert {k: scheduler[k] for k in ('mode', 'last_epoch', 'best', 'num_bad_epochs')} == \
            {k: expected[k] for k in ('mode', 'last_epoch', 'best', 'num_bad_epochs')}
    assert expected['mode'] == 'max' and expected['last_epoch'] == 2
    assert json.loads((run.folder / 'best_net_G.json').read_text())['metric'] == 'psnr'


@pytest.mark.parametrize('device', ['cpu', pytest.param('cuda', marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason='no CUDA device'))])
def test_the_side_stream_leaves_the_training_streams_as_they_were(device):
    device = torch.device(device)
    torch.manual_seed(1)
    expected = torch.rand(4, device=device), torch.rand(4)
    torch.manual_seed(1)
    with side_stream(device, 7):
        inside = torch.rand(4, device=device)
    assert all(torch.equal(a, b) for a, b in zip((torch.rand(4, device=device), torch.rand(4)), expected))
    with side_stream(device, 7):
        assert torch.equal(torch.rand(4, device=device), inside)  # the same numbers at every validation


BLOCK_TENSORBOARD = "import sys\nsys.modules['tensorboard'] = None  # as if not installed: importing it fails\n"


def test_without_tensorboard_installed(tmp_path):
    site = tmp_path / 'site'
    site.mkdir()
    (site / 'sitecustomize.py').write_text(BLOCK_TENSORBOARD)
    env = {'PYTHONPATH': os.pathsep.join(filter(None, [str(site), os.environ.get('PYTHONPATH')]))}
    data = make_aligned_pairs(str(tmp_path / 'data'), count=2, size=32)
    args = ['--dataroot', data, '--checkpoints_dir', tmp_path / 'checkpoints', *TINY_NET, '--n_epochs', 1,
            '--n_epochs_decay', 0, '--val_freq', 1]

    refused = run('train.py', *args, '--name', 'with', '--tensorboard', env=env, check=False)
    assert refused.returncode == 1 and 'Traceback' not in refused.stderr
    assert '--tensorboard needs the tensorboard package' in refused.stderr
    assert 'install it (pip install tensorboard) or leave out --tensorboard' in refused.stderr
    assert not (tmp_path / 'checkpoints' / 'with').exists()  # refused before anything was written

    trained = run('train.py', *args, '--name', 'without', env=env)
    assert 'validation at epoch 1' in trained.stdout
    assert (tmp_path / 'checkpoints' / 'without' / 'best_net_G.pth').exists()


def test_the_semantic_score_of_each_validation_is_test_py_s(runner, tmp_path):
    # Label maps of a known palette (JPEG, as facades), a segmenter trained on their photos, then training
    # validated with it: each validation has test.py --segmenter's whole-set figures for that checkpoint,
    # and --val_metric mean_iou picks the best.
    data = tmp_path / 'data'
    make_palette_pairs(str(data), ((20, 20, 200), (230, 40, 40), (40, 200, 60), (240, 230, 50)), count=4, size=64)
    segmenter = tmp_path / 'segmenter.pth'
    runner.run('scripts/train_segmenter.py', '--dataroot', data, '--direction', 'BtoA', '--crop_size', 32,
               '--load_size', 36, '--epochs', 2, '--batch_size', 2, '--width', 4, '--output', segmenter)
    checkpoints = tmp_path / 'checkpoints'
    runner.run('train.py', '--dataroot', data, '--direction', 'BtoA', '--name', 'semantic', '--checkpoints_dir',
               checkpoints, *TINY_NET, '--n_epochs', 2, '--n_epochs_decay', 0, '--save_epoch_freq', 1, '--seed', 0,
               '--val_freq', 1, '--segmenter', segmenter, '--val_metric', 'mean_iou')
    log = val_log(checkpoints / 'semantic')
    semantic = ('pixel_accuracy', 'class_accuracy', 'mean_iou')
    for line in log:
        runner.run('test.py', '--dataroot', data, '--direction', 'BtoA', '--name', 'semantic', '--checkpoints_dir',
                   checkpoints, '--results_dir', tmp_path / 'results', '--epoch', line['epoch'], *SIZE,
                   '--segmenter', segmenter)
        report = json.loads((tmp_path / 'results' / 'semantic' / f'test_{line["epoch"]}' / 'metrics.json').read_text())
        assert {k: line['scores']['G'][k] for k in semantic} == {k: report['semantic']['output'][k] for k in semantic}
    best = json.loads((checkpoints / 'semantic' / 'best_net_G.json').read_text())
    assert best['metric'] == 'mean_iou'
    assert best['score'] == max(line['scores']['G']['mean_iou'] for line in log)


def test_a_segmenter_of_other_label_maps_is_refused_before_training(runner, tmp_path):
    # Its palette (black and white) holds none of the dataset's label colours: train.py stops before the first
    # epoch trains, not at the first validation, hours in.
    data = tmp_path / 'data'
    make_palette_pairs(str(data), ((20, 20, 200), (230, 40, 40), (40, 200, 60), (240, 230, 50)), count=2, size=32)
    segmenter = tmp_path / 'other_palette.pth'
    save_segmenter(str(segmenter), SegmenterNet(2, width=4), [[0, 0, 0], [255, 255, 255]], 32, {})
    checkpoints = tmp_path / 'checkpoints'
    proc = runner.run('train.py', '--dataroot', data, '--direction', 'BtoA', '--name', 'other', '--checkpoints_dir',
                      checkpoints, *TINY_NET, '--n_epochs', 1, '--n_epochs_decay', 0, '--save_epoch_freq', 1,
                      '--print_freq', 1, '--val_freq', 1, '--segmenter', segmenter, check=False)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr[-2000:]
    assert f'error: {data / "test" / "000.jpg"} (real_A, the first validation image): 100% of the pixels are far ' \
           f"from every colour of the segmenter's palette (2 classes, {segmenter}), so it was trained on other label " \
           f'maps' in proc.stderr
    assert '(epoch: 1,' not in proc.stdout
    assert not list(checkpoints.glob('other/*.pth'))  # no epoch, latest or best checkpoint
