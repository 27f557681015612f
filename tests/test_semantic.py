"""The semantic score: palettes found in JPEG label maps, the three figures from a confusion matrix, the
segmenter's training script, and test.py --segmenter (metrics.json/csv, the gallery, errors)."""
import csv
import io
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from models.segmenter import SegmenterNet, load_segmenter, save_segmenter
from tests.scripts import TINY_NET
from tests.tiny_data import CITYSCAPES_PALETTE, FACADES_PALETTE, make_palette_pairs
from util.errors import UserError
from util.evaluation.palette import IGNORE, discover_palette, label_classes, nearest_classes
from util.evaluation.semantic import SemanticScore, confusion_matrix, scores, to_network_range, to_uint8


def jpeg(image, quality=95):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, 'JPEG', quality=quality, subsampling='4:2:0')
    return np.array(Image.open(buffer).convert('RGB'))


def assert_same_palette(found, known, levels):
    """Each known colour has exactly one found colour within `levels` in every channel, and nothing else."""
    distance = np.abs(found.astype(int)[:, None] - np.array(known)[None]).max(-1)
    assert found.shape == (len(known), 3), found.tolist()
    assert (distance.min(0) <= levels).all() and (distance.argmin(0) != -1).all()
    assert sorted(distance.argmin(0).tolist()) == list(range(len(known))), found.tolist()


@pytest.mark.parametrize('palette, size, quality', [(FACADES_PALETTE, 96, 75), (CITYSCAPES_PALETTE, 128, 90)],
                         ids=['facades', 'cityscapes'])
def test_palette_and_classes_are_found_in_jpeg_label_maps(tmp_path, palette, size, quality):
    # Label maps drawn with a known palette, shrunk (blended edges) and saved as JPEG with half-resolution
    # colour, as facades' are. Cityscapes' palette has colours only 20 levels apart (bus, train).
    truths = make_palette_pairs(str(tmp_path), palette, count=8, size=size, quality=quality, phases=('train',))
    labels = np.stack([np.asarray(Image.open(tmp_path / 'train' / f'{i:03d}.jpg'))[:, size:] for i in range(8)])
    assert len(np.unique(labels.reshape(-1, 3), axis=0)) > 10 * len(palette)  # JPEG made many colours

    found = discover_palette(list(labels))
    assert_same_palette(found, palette, levels=4)

    classes = label_classes(torch.from_numpy(labels), found).numpy()
    truth = np.argmin(np.abs(found.astype(int)[None] - np.array(palette)[:, None]).max(-1), 1)[truths['train']]
    # Away from edges (the 3x3 truth is one class) the classes agree; on edges a pixel is a blend of two
    # and its truth (one of the four pixels it was shrunk from) is a toss-up.
    padded = np.pad(truth, ((0, 0), (1, 1), (1, 1)), mode='edge')
    inner = np.all([padded[:, 1 + dy:1 + dy + size, 1 + dx:1 + dx + size] == truth
                    for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)
    assert (classes == truth)[inner].mean() > 0.99
    assert (classes == truth).mean() > 0.93
    assert (classes != IGNORE).all()


def test_a_thin_bar_keeps_its_class_through_jpeg_colour_blur():
    # A 4-pixel yellow bar on facades' blue: JPEG averages colour over 2x2 pixels, so its edges take a colour
    # nearer light green (a third class) than yellow or blue. Read as a blend of the bar and its
    # surroundings, every pixel gets its class back.
    palette = np.array(FACADES_PALETTE, np.uint8)
    blue, yellow, green = 1, 11, 7
    truth = np.full((32, 32), blue)
    truth[:, 14:18] = yellow
    image = jpeg(palette[truth])
    nearest = nearest_classes(torch.from_numpy(image), palette, float('inf')).numpy()
    assert (nearest == green).any()  # the naive reading
    assert (label_classes(torch.from_numpy(image[None]), palette)[0].numpy() == truth).all()


def test_scores_equal_hand_computed_values():
    truth = torch.tensor([[0, 0, 1, 1], [2, 2, IGNORE, 0]])
    predicted = torch.tensor([[0, 1, 1, 1], [2, 0, 3, 3]])
    confusion = confusion_matrix(truth, predicted, 5)
    assert confusion.tolist() == [[1, 1, 0, 1, 0], [0, 2, 0, 0, 0], [1, 0, 1, 0, 0], [0] * 5, [0] * 5]
    result = scores(confusion)
    assert result['pixel_accuracy'] == pytest.approx(4 / 7)  # the IGNORE pixel is not counted
    # Class 3 has no true pixel (no accuracy); class 4 none at all (no accuracy, no IoU): both left out of
    # the means. Class 3 was predicted once, wrongly: IoU 0, counted.
    assert result['class_accuracy'] == pytest.approx((1 / 3 + 2 / 2 + 1 / 2) / 3)
    assert result['mean_iou'] == pytest.approx((1 / 4 + 2 / 3 + 1 / 2 + 0) / 4)
    assert result['per_class_accuracy'][3] is None and result['per_class_iou'][4] is None
    assert math.isnan(scores(torch.zeros(3, 3, dtype=torch.long))['pixel_accuracy'])


class NearestColourSegmenter:
    """A segmenter whose answer is known: each photo pixel's class is its nearest palette colour."""

    def __init__(self, palette):
        self.palette = torch.tensor(palette, dtype=torch.uint8)
        self.device = torch.device('cpu')
        self.path = 'nearest-colour'

    def classes(self, photos):
        return nearest_classes(to_uint8(photos), self.palette, float('inf'))


def test_the_semantic_score_accumulates_one_confusion_over_the_set():
    palette = ((0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255))
    colours = np.array(palette, np.uint8)

    def batch(classes):  # (N, 1, 4) class maps -> photos or label maps (N, 3, 1, 4) in [-1, 1]
        return to_network_range(torch.from_numpy(colours[np.array(classes)]))

    truth = [[[0, 0, 1, 1]], [[2, 2, 0, 0]]]
    fake = [[[0, 1, 1, 1]], [[2, 0, 3, 3]]]
    score = SemanticScore(NearestColourSegmenter(palette))
    per_image = score.update(batch(fake[:1]), batch(truth[:1]), batch(truth[:1]))
    per_image += score.update(batch(fake[1:]), batch(truth[1:]), batch(truth[1:]))
    result = score.result()
    # Over the set: truth 0 is predicted 0, 1, 3, 3; truth 1 is 1, 1; truth 2 is 2, 0.
    assert result['output']['pixel_accuracy'] == pytest.approx(4 / 8)
    assert result['output']['class_accuracy'] == pytest.approx((1 / 4 + 1 + 1 / 2) / 3)
    assert result['output']['mean_iou'] == pytest.approx((1 / 5 + 2 / 3 + 1 / 2 + 0) / 4)
    # Not the mean of the images' own figures (0.75 and 0.25 class accuracy):
    assert [p['class_accuracy'] for p in per_image] == pytest.approx([0.75, 0.25])
    assert [p['pixel_accuracy'] for p in per_image] == pytest.approx([0.75, 0.25])
    # The real photos here are the label maps themselves: a perfect ceiling.
    assert (result['target']['pixel_accuracy'], result['target']['mean_iou']) == (1.0, 1.0)
    assert result['classes'] == 4 and result['unmatched_pixels'] == 0

    no_ceiling = SemanticScore(NearestColourSegmenter(palette))
    no_ceiling.update(batch(fake), None, batch(truth))
    assert no_ceiling.result()['output'] == result['output'] and 'target' not in no_ceiling.result()


def test_label_maps_of_another_palette_are_refused():
    score = SemanticScore(NearestColourSegmenter(((0, 0, 0), (255, 255, 255))))
    reds = torch.full((1, 3, 8, 8), -1.0)
    reds[:, 0] = 1
    with pytest.raises(UserError, match=r'img7: 100% of the pixels are far from every colour of the segmenter'):
        score.update(reds, None, reds, names=['img7'])


def test_segmenter_files_load_and_bad_ones_are_refused(tmp_path):
    torch.manual_seed(0)
    net = SegmenterNet(3, width=4)
    path = str(tmp_path / 'seg.pth')
    save_segmenter(path, net, [[1, 2, 3], [4, 5, 6], [7, 8, 9]], 16, {'epochs': 2})
    segmenter = load_segmenter(path)
    assert segmenter.palette.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]] and segmenter.size == 16
    assert segmenter.info == {'epochs': 2}
    photos = torch.rand(2, 3, 20, 28) * 2 - 1
    # Any photo size: run at the trained size, scores resized back.
    expected = torch.nn.functional.interpolate(
        net.eval()(torch.nn.functional.interpolate(photos, size=(16, 16), mode='bilinear', antialias=True)),
        size=(20, 28), mode='bilinear').argmax(1)
    assert torch.equal(segmenter.classes(photos), expected)

    saved = torch.load(path, weights_only=True)
    for name, content, message in [('missing.pth', None, 'no such file'),
                                   ('truncated.pth', open(path, 'rb').read()[:200], 'cannot read it'),
                                   ('generator.pth', net.state_dict(), 'is not a segmenter file'),
                                   ('no_palette.pth', {k: v for k, v in saved.items() if k not in ('palette', 'size')},
                                    f'--segmenter {tmp_path / "no_palette.pth"} lacks its palette, size; the file is '
                                    f'damaged')]:
        bad = tmp_path / name
        if isinstance(content, bytes):
            bad.write_bytes(content)
        elif content is not None:
            torch.save(content, bad)
        with pytest.raises(UserError, match=message) as error:
            load_segmenter(str(bad))
        assert 'scripts/train_segmenter.py' in str(error.value) and '\n' not in str(error.value)


# ------------------------------------------------------------------------------------------------
# The commands: scripts/train_segmenter.py, then test.py --segmenter on a tiny pix2pix

E2E_PALETTE = ((20, 20, 200), (230, 40, 40), (40, 200, 60), (240, 230, 50))
SIZE = ['--load_size', 32, '--crop_size', 32]


@pytest.fixture(scope='module')
def semantic_run(runner, tmp_path_factory):
    root = tmp_path_factory.mktemp('semantic')
    data = root / 'data'
    make_palette_pairs(str(data), E2E_PALETTE, count=6, size=64)
    segmenter = root / 'segmenter.pth'
    trained = runner.run('scripts/train_segmenter.py', '--dataroot', data, '--direction', 'BtoA', '--crop_size', 32,
                         '--load_size', 36, '--epochs', 4, '--batch_size', 3, '--output', segmenter)
    checkpoints = root / 'checkpoints'
    runner.run('train.py', '--dataroot', data, '--direction', 'BtoA', '--name', 'tiny', '--checkpoints_dir',
               checkpoints, *TINY_NET, '--n_epochs', 1, '--n_epochs_decay', 0, '--seed', 0)
    tests = {}
    for mode in ('paper', 'eval'):
        results = root / mode
        proc = runner.run('test.py', '--dataroot', data, '--direction', 'BtoA', '--name', 'tiny', '--checkpoints_dir',
                          checkpoints, '--results_dir', results, *SIZE, '--segmenter', segmenter,
                          *(['--eval'] if mode == 'eval' else []))
        tests[mode] = (proc, results / 'tiny' / 'test_latest')
    return data, segmenter, checkpoints, trained, tests


def test_train_segmenter_saves_the_palette_size_and_ceiling(semantic_run):
    _, path, _, trained, _ = semantic_run
    segmenter = load_segmenter(str(path))
    assert_same_palette(segmenter.palette.numpy(), E2E_PALETTE, levels=4)
    assert segmenter.size == 32
    assert segmenter.info['epochs'] == 4 and segmenter.info['direction'] == 'BtoA'
    assert set(segmenter.info['ceiling']) == {'pixel_accuracy', 'class_accuracy', 'mean_iou'}
    assert 'epoch 4/4' in trained.stdout and 'on the real photos of' in trained.stdout


def recompute(segmenter, folder, names):
    """The whole-set semantic figures of the PNGs in folder, computed here with numpy from the classes."""
    confusions = {'fake_B': np.zeros((4, 4)), 'real_B': np.zeros((4, 4))}
    for name in names:
        label_map = torch.from_numpy(np.array(Image.open(folder / 'images' / f'{name}_real_A.png')))[None]
        truth = label_classes(label_map, segmenter.palette)[0].numpy()
        for role, confusion in confusions.items():
            photo = torch.from_numpy(np.array(Image.open(folder / 'images' / f'{name}_{role}.png')))[None]
            predicted = segmenter.classes(to_network_range(photo))[0].numpy()
            np.add.at(confusion, (truth.ravel(), predicted.ravel()), 1)
    figures = {}
    for role, c in confusions.items():
        with np.errstate(invalid='ignore', divide='ignore'):
            figures[role] = {'pixel_accuracy': np.trace(c) / c.sum(),
                             'class_accuracy': np.nanmean(np.diag(c) / c.sum(1)),
                             'mean_iou': np.nanmean(np.diag(c) / (c.sum(1) + c.sum(0) - np.diag(c)))}
    return figures


@pytest.mark.parametrize('mode', ['paper', 'eval'])
def test_test_py_reports_the_semantic_score_of_outputs_and_real_photos(semantic_run, mode):
    _, path, _, _, tests = semantic_run
    proc, folder = tests[mode]
    report = json.loads((folder / 'metrics.json').read_text())
    semantic = report['semantic']
    names = [image['name'] for image in report['images']]
    assert len(names) == 6 and semantic['classes'] == 4 and semantic['segmenter'] == str(path)
    segmenter = load_segmenter(str(path))
    figures = recompute(segmenter, folder, names)
    for role, visual in (('output', 'fake_B'), ('target', 'real_B')):
        for key, value in figures[visual].items():
            assert semantic[role][key] == pytest.approx(value, abs=1e-12), (role, key)
    # The ceiling test.py measures is the one the training script measured on the same photos.
    for key, value in segmenter.info['ceiling'].items():
        assert semantic['target'][key] == pytest.approx(value, abs=1e-9)

    with open(folder / 'metrics.csv', newline='') as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['name', 'l1', 'psnr', 'ssim', 'pixel_accuracy', 'class_accuracy', 'mean_iou']
    for row, image in zip(rows[1:7], report['images']):
        assert row[0] == image['name'] and float(row[4]) == image['pixel_accuracy']
    assert rows[7][0] == 'mean' and [float(v) for v in rows[7][4:]] == [
        semantic['output'][k] for k in ('pixel_accuracy', 'class_accuracy', 'mean_iou')]
    assert rows[8][:4] == ['real photos', '', '', ''] and [float(v) for v in rows[8][4:]] == [
        semantic['target'][k] for k in ('pixel_accuracy', 'class_accuracy', 'mean_iou')]

    line = (f'pixel accuracy {semantic["output"]["pixel_accuracy"]:.3f}, mean class accuracy '
            f'{semantic["output"]["class_accuracy"]:.3f}, mean IoU {semantic["output"]["mean_iou"]:.3f} (real photos, '
            f'the ceiling: pixel accuracy {semantic["target"]["pixel_accuracy"]:.3f}')
    assert line in (folder / 'index.html').read_text() and line in proc.stdout


def test_the_ceiling_is_the_same_in_both_test_modes(semantic_run):
    *_, tests = semantic_run
    paper, evaluated = (json.loads((tests[m][1] / 'metrics.json').read_text())['semantic'] for m in ('paper', 'eval'))
    assert paper['target'] == evaluated['target']


def test_test_py_refuses_what_it_cannot_score(semantic_run, runner, tmp_path):
    data, path, checkpoints, _, _ = semantic_run
    common = ['--dataroot', data, '--direction', 'BtoA', '--name', 'tiny', '--checkpoints_dir', checkpoints,
              '--results_dir', tmp_path, *SIZE]
    other = tmp_path / 'other_palette.pth'
    save_segmenter(str(other), SegmenterNet(2, width=4), [[0, 0, 0], [255, 255, 255]], 32, {})
    cases = [(['--segmenter', checkpoints / 'tiny' / 'latest_net_G.pth'], 'is not a segmenter file'),
             (['--segmenter', tmp_path / 'nothing.pth'], 'no such file'),
             (['--segmenter', other], 'pixels are far from every colour of the segmenter'),
             (['--segmenter', path, '--model', 'test', '--dataset_mode', 'single'], '--segmenter scores photos made from label maps')]
    for args, message in cases:
        proc = runner.run('test.py', *common, *args, check=False)
        assert proc.returncode == 1 and message in proc.stderr, (args, proc.stderr[-2000:])
        assert proc.stderr.strip().count('\n') == 0 and 'Traceback' not in proc.stderr


def test_train_segmenter_refuses_photos_as_label_maps(semantic_run, runner, tmp_path):
    data, *_ = semantic_run
    proc = runner.run('scripts/train_segmenter.py', '--dataroot', data, '--direction', 'AtoB', '--epochs', 1,
                      '--crop_size', 32, '--output', tmp_path / 'seg.pth', check=False)
    assert proc.returncode == 1 and 'A (left) side, as --direction AtoB says' in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / 'seg.pth').exists()


@pytest.mark.parametrize('flags, message', [
    (['--lr', 0], '--lr 0.0: give a positive learning rate, e.g. 0.002 (the default)'),
    (['--min_class_fraction', 0.6], '--min_class_fraction 0.6: give a share above 0 and at most 0.5 (two classes at '
                                    'least), e.g. 0.001 (the default)'),
    (['--min_class_fraction', 0], '--min_class_fraction 0.0: give a share above 0'),
])
def test_train_segmenter_refuses_rates_and_shares_out_of_range(runner, tmp_path, flags, message):
    proc = runner.run('scripts/train_segmenter.py', '--dataroot', tmp_path, *flags, '--output', tmp_path / 'seg.pth',
                      check=False)
    assert proc.returncode == 1 and proc.stderr.startswith(f'error: {message}'), proc.stderr[-2000:]
    assert not (tmp_path / 'seg.pth').exists()


def test_train_segmenter_takes_a_given_palette(semantic_run, runner, tmp_path):
    data, *_ = semantic_run
    given = ' '.join(','.join(map(str, c)) for c in E2E_PALETTE[::-1])  # any order: class i is colour i
    path = tmp_path / 'seg.pth'
    proc = runner.run('scripts/train_segmenter.py', '--dataroot', data, '--direction', 'BtoA', '--epochs', 1,
                      '--crop_size', 32, '--palette', given, '--eval_phase', '', '--output', path)
    segmenter = load_segmenter(str(path))
    assert segmenter.palette.tolist() == [list(c) for c in E2E_PALETTE[::-1]]
    assert 'ceiling' not in segmenter.info and 'on the real photos' not in proc.stdout
    for bad in ('1,2,3', '1,2,3 4,5', '1,2,3 4,5,256'):
        proc = runner.run('scripts/train_segmenter.py', '--dataroot', data, '--palette', bad, check=False)
        assert proc.returncode == 1 and 'give two or more colours as "R,G,B R,G,B ..."' in proc.stderr
