"""Training's displays of data that is not 8-bit RGB: visdom, TensorBoard and the training page show 8-bit previews
(one channel as gray through its range's window, of more than three the ones --preview_channels names), and the
page links the full-precision file beside each preview. --preview_channels' errors."""
import base64
import html.parser
import io
import json
from types import SimpleNamespace

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from options.checks import preview_checks
from tests import servers
from tests.scripts import TINY_NET
from util.arrays import read_array
from util.value_mapping import ValueMapping

# visdom 0.2.4 calls the deprecated logger.warn when made without its event socket.
pytestmark = pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning")

VISUALS = ['real_A', 'fake_B', 'real_B']
SHOWN = (4, 2, 0)  # --preview_channels of the five-band run
TRAIN = ['--n_epochs', 1, '--n_epochs_decay', 0, '--seed', 0, '--no_flip', '--display_freq', 1,
         '--update_html_freq', 1, '--tensorboard']


def make_band_pairs(root, count=2, size=32):
    """root/trainA and root/trainB: five-band uint16 TIFFs, each band a pattern of its own over a range of its
    own (band c: a ramp along a direction of its own between 1000 (c + 1) and 1000 (c + 1) + 400 (c + 1)), plus
    noise, so that a preview of other bands differs."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    ramps = [xx, yy, 1 - xx, 1 - yy, (xx + yy) / 2]
    for side in 'AB':
        (root / f'train{side}').mkdir(parents=True)
        for i in range(count):
            bands = [1000 * (c + 1) + 400 * (c + 1) * ramp + rng.normal(0, 30, (size, size))
                     for c, ramp in enumerate(ramps)]
            array = np.stack(bands, axis=-1).round().astype(np.uint16)
            tifffile.imwrite(root / f'train{side}' / f'{i:03d}.tif', array, photometric='minisblack',
                             planarconfig='contig')
    return root


def make_gray16_pairs(root, count=2, size=32):
    """root/trainA and root/trainB: one-channel 16-bit PNGs whose values lie between 2000 and 6000, a range an
    8-bit picture of the type's full range would show nearly black."""
    rng = np.random.default_rng(1)
    for side in 'AB':
        (root / f'train{side}').mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(2000, 6000, (size, size)).astype(np.uint16)).save(
                root / f'train{side}' / f'{i:03d}.png')
    return root


class PageImages(html.parser.HTMLParser):
    """The training page's images in order: [(src, the link around it, the download link below it)]."""

    def __init__(self, text):
        super().__init__()
        self.images, self.link, self.in_data_file = [], None, False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == 'a' and self.in_data_file:
            self.images[-1] = (*self.images[-1][:2], attrs['href'])
        elif tag == 'a':
            self.link = attrs['href']
        elif tag == 'img':
            self.images.append((attrs['src'], self.link, None))
        self.in_data_file = tag == 'p' and attrs.get('class') == 'data-file'


def train_run(runner, root, data, extension, *args):
    """A tiny training run on data, whose full-precision files have extension; with the visuals' mappings."""
    checkpoints = root / 'checkpoints'
    runner.run('train.py', '--dataroot', data, '--name', 'run', '--checkpoints_dir', checkpoints, *TINY_NET,
               *TRAIN, *args)
    folder = checkpoints / 'run'
    architecture = json.loads((folder / 'architecture.json').read_text())
    mappings = {side: ValueMapping.from_dict(architecture[f'mapping_{side}']) for side in 'AB'}
    return SimpleNamespace(data=data, folder=folder, images=folder / 'web' / 'images', extension=extension,
                           mappings={label: mappings[label[-1]] for label in VISUALS})


@pytest.fixture(scope='module')
def visdom_server(tmp_path_factory):
    with servers.visdom_server(tmp_path_factory.mktemp('visdom')) as server:
        yield server


@pytest.fixture(scope='module')
def band_run(runner, visdom_server, tmp_path_factory):
    """1 epoch on two five-band pairs, showing bands 4, 2 and 0, a display every iteration into visdom's env
    'bands', TensorBoard and the page."""
    root = tmp_path_factory.mktemp('bands')
    return train_run(runner, root, make_band_pairs(root / 'data'), '.tif',
                     '--preview_channels', ','.join(map(str, SHOWN)), '--display_id', 1,
                     '--display_server', 'http://127.0.0.1', '--display_port', visdom_server.port,
                     '--display_env', 'bands')


@pytest.fixture(scope='module')
def gray16_run(runner, tmp_path_factory):
    """1 epoch on two one-channel 16-bit pairs, a display every iteration into TensorBoard and the page."""
    root = tmp_path_factory.mktemp('gray16')
    return train_run(runner, root, make_gray16_pairs(root / 'data'), '.png')


def network_values(mapping, array):
    """The network's (C, H, W) values of an H x W x C array in the data's units, as the dataset computes them."""
    return mapping.to_network(torch.from_numpy(array.astype(np.float32)).permute(2, 0, 1))


def picture(path):
    return np.asarray(Image.open(path))


def saved_visuals(run):
    """{label: (its preview on the page, its full-precision file's array)}, of the last display."""
    return {label: (picture(run.images / f'epoch001_{label}_preview.png'),
                    read_array(str(run.images / f'epoch001_{label}{run.extension}'))) for label in VISUALS}


def assert_previews_show_the_values(run, channels):
    """Each preview is the mapping's preview of its file's values: exactly for the real images (their files
    hold the data's own values); for G's output, whose file holds its values rounded to the data's type, within
    one level."""
    sources = {side: [read_array(str(path)) for path in sorted((run.data / f'train{side}').iterdir())]
               for side in 'AB'}
    reals = {}
    for label, (shown, array) in saved_visuals(run).items():
        mapping = run.mappings[label]
        assert shown.shape == (32, 32, 3) and shown.dtype == np.uint8
        assert array.dtype == np.uint16 and array.shape == (32, 32, mapping.channels)
        expected = mapping.preview(network_values(mapping, array), channels).astype(int)
        difference = np.abs(shown.astype(int) - expected)
        assert difference.max() <= (1 if label == 'fake_B' else 0), label
        if label.startswith('real'):
            reals[label[-1]] = [index for index, source in enumerate(sources[label[-1]])
                                if np.array_equal(source, array)]
    # The real images' files are bit for bit a pair of the data (--no_flip).
    assert reals['A'] == reals['B'] and len(reals['A']) == 1


def test_five_band_page_shows_the_named_bands_and_links_the_tiffs(band_run):
    assert [mapping.channels for mapping in band_run.mappings.values()] == [5, 5, 5]
    assert_previews_show_the_values(band_run, SHOWN)
    for label, (shown, array) in saved_visuals(band_run).items():
        # Red, green and blue are bands 4, 2 and 0, each through its own range's window.
        for color, band in enumerate(SHOWN):
            low, high = band_run.mappings[label].ranges[band]
            window = np.clip((array[:, :, band] - low) / (high - low), 0, 1) * 255
            assert np.abs(shown[:, :, color] - window).max() <= 1, (label, band)
    page = PageImages((band_run.folder / 'web' / 'index.html').read_text())
    assert page.images == [(f'images/epoch001_{label}_preview.png', f'images/epoch001_{label}.tif',
                            f'images/epoch001_{label}.tif') for label in VISUALS]


def test_gray16_page_shows_gray_through_the_window_beside_16_bit_pngs(gray16_run):
    assert_previews_show_the_values(gray16_run, (0, 1, 2))
    for label, (shown, array) in saved_visuals(gray16_run).items():
        assert (shown == shown[:, :, :1]).all(), label  # gray
        if label.startswith('real'):
            # The window spans the measured range, not the type's 0..65535 (which would show 8..23 of 255).
            assert shown.max() - shown.min() > 200, label
    page = PageImages((gray16_run.folder / 'web' / 'index.html').read_text())
    assert page.images == [(f'images/epoch001_{label}_preview.png', f'images/epoch001_{label}.png',
                            f'images/epoch001_{label}.png') for label in VISUALS]


def tensorboard_last_images(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder / 'tensorboard'), size_guidance={'images': 0})
    events.Reload()
    return {tag: [(image.step, np.asarray(Image.open(io.BytesIO(image.encoded_image_string))))
                  for image in events.Images(tag)] for tag in events.Tags()['images']}


@pytest.mark.parametrize('run', ['band_run', 'gray16_run'])
def test_tensorboard_shows_the_previews(run, request):
    run = request.getfixturevalue(run)
    images = tensorboard_last_images(run.folder)
    assert sorted(images) == sorted(f'visuals/{label}' for label in VISUALS)
    for label in VISUALS:
        steps = images[f'visuals/{label}']
        assert [step for step, _ in steps] == [1, 2]  # a display at every sample
        # The last display is the page's: the same picture.
        assert np.array_equal(steps[-1][1], picture(run.images / f'epoch001_{label}_preview.png')), label


def test_visdom_shows_the_previews(visdom_server, band_run):
    import visdom

    client = visdom.Visdom(server='http://127.0.0.1', port=visdom_server.port, env='bands',
                           use_incoming_socket=False, raise_exceptions=True)
    src = json.loads(client.get_window_data(win='2', env='bands'))['content']['src']
    grid = np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(',', 1)[1]))).convert('RGB'))
    assert grid.shape == (36, 3 * 36, 3)  # three 32x32 tiles, 2 pixels of padding around each
    for index, label in enumerate(VISUALS):
        tile = grid[3:35, index * 36 + 3:index * 36 + 35]
        assert np.array_equal(tile, picture(band_run.images / f'epoch001_{label}_preview.png')), label


@pytest.mark.parametrize('flag, message', [
    ('0,1', 'name the three channels that pictures show as red, green and blue'),
    ('nir,red,green', 'name the three channels that pictures show as red, green and blue'),
    ('4,5,0', 'A (the input) has 5 channels, numbered 0 to 4; name three of them'),
])
def test_bad_preview_channels_are_refused_before_training(runner, tmp_path, flag, message):
    data = make_band_pairs(tmp_path / 'data')
    proc = runner.run('train.py', '--dataroot', data, '--name', 'bad', '--checkpoints_dir', tmp_path / 'checkpoints',
                      *TINY_NET, '--preview_channels', flag, check=False)
    assert proc.returncode != 0
    assert f'--preview_channels {flag}: {message}' in proc.stderr
    assert 'Traceback' not in proc.stderr
    assert not (tmp_path / 'checkpoints' / 'bad' / 'loss_log.txt').exists()


def options(preview_channels, input_nc=5, output_nc=3, direction='AtoB'):
    return SimpleNamespace(preview_channels=preview_channels, input_nc=input_nc, output_nc=output_nc,
                           direction=direction)


def refused(opt):
    return [message for ok, message in preview_checks(opt) if not ok]


def test_preview_channels_check():
    assert refused(options('4,2,0')) == []
    assert refused(options(' 4, 2, 0')) == []
    assert refused(options('0,0,0')) == []  # one band as gray
    # Sides of one to three channels are pictured whole: the flag does not concern them.
    assert refused(options('7,8,9', input_nc=3, output_nc=1)) == []
    for bad in ('', '1,2', '0,1,2,3', '-1,0,1', '1.5,2,3', '0;1;2'):
        assert refused(options(bad)) == [f'--preview_channels {bad}: name the three channels that pictures show as '
                                          f'red, green and blue, as channel numbers from 0 separated by commas: for '
                                          f'example 0,1,2 (the default) or 4,2,0'], bad
    assert refused(options('0,1,6', input_nc=4, output_nc=13, direction='BtoA')) == [
        '--preview_channels 0,1,6: B (the input) has 4 channels, numbered 0 to 3; name three of them, for example '
        '0,1,2 (the default)']
    assert len(refused(options('0,1,6', input_nc=4, output_nc=5))) == 2


def test_test_gallery_links_the_full_precision_files_too(runner, band_run, tmp_path):
    runner.run('test.py', '--dataroot', band_run.data, '--name', 'run', '--checkpoints_dir', band_run.folder.parent,
               '--results_dir', tmp_path, '--phase', 'train', '--load_size', 32, '--crop_size', 32,
               '--preview_channels', ','.join(map(str, SHOWN)))
    gallery = tmp_path / 'run' / 'train_latest'
    page = PageImages((gallery / 'index.html').read_text())
    assert page.images == [(f'images/{stem}_{label}_preview.png', f'images/{stem}_{label}.tif',
                            f'images/{stem}_{label}.tif') for stem in ('000', '001') for label in VISUALS]
    for stem in ('000', '001'):
        assert np.array_equal(read_array(str(gallery / 'images' / f'{stem}_real_A.tif')),
                              read_array(str(band_run.data / 'trainA' / f'{stem}.tif')))
