"""app.py, the local web demo, driven in headless Chromium as a user drives it: pick an experiment, upload an image,
read the output back from the page and compare it with test.py --eval; a 16-bit PNG or a TIFF uploaded to a model of
16-bit data gives a download of test.py's 16-bit values; bad uploads get a message in the page and the server stays
up; neither the page nor the server reaches beyond 127.0.0.1."""
import base64
import io
import json
import os
import shutil
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from options.app_options import AppOptions
from tests import browser
from tests.isolation import sitecustomize_without
from tests.scripts import REPO, run
from tests.servers import Process, free_port
from tests.tiny_data import make_16bit_pairs, pair_image
from util.arrays import read_array, write_array
from util.errors import UserError

# Loaded by the app's interpreter: records (and refuses) every connection or name lookup beyond this machine.
OFFLINE = '''
import os, socket
_LOG = os.environ['OUTBOUND_LOG']
_LOCAL = ('127.0.0.1', '::1', 'localhost', '0.0.0.0', '')
_connect, _getaddrinfo = socket.socket.connect, socket.getaddrinfo


def _refuse(host):
    with open(_LOG, 'a') as log:
        log.write(f'{host}\\n')
    raise OSError(f'{host}: no internet in this test')


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOCAL:
        _refuse(address[0])
    return _connect(self, address)


def getaddrinfo(host, *args, **kwargs):
    if host not in _LOCAL and host is not None:
        _refuse(host)
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect, socket.getaddrinfo = connect, getaddrinfo
'''
LIMIT = 64  # --max_image_size


@pytest.fixture(scope='module')
def depth_run(train_tiny):
    """A tiny run on one-channel 16-bit data (tests/tiny_data.make_16bit_pairs), its value mappings measured."""
    return train_tiny('--n_epochs', 1, '--n_epochs_decay', 0, '--seed', 0, name='depth', count=3,
                      make=make_16bit_pairs)


@pytest.fixture(scope='module')
def local_run(train_tiny):
    """A tiny run of pix2pixHD's coarse-to-fine generator (--netG local: a global part and one local enhancer),
    initialised so that its output varies (the default init's output is flat gray at this size)."""
    return train_tiny('--n_epochs', 1, '--n_epochs_decay', 0, '--seed', 0, '--netG', 'local', '--n_downsample_global',
                      '2', '--n_blocks_global', '1', '--n_blocks_local', '1', '--init_type', 'xavier', '--init_gain',
                      '1', name='local', count=3)


@pytest.fixture(scope='module')
def app(tiny_run, depth_run, local_run, tmp_path_factory):
    """app.py serving five experiments: tiny, tiny_flipped whose last layer is negated (output = -tiny's), depth
    (16-bit in, 16-bit out), depth_float, depth's generator between float32 values of 0..4000, and local
    (pix2pixHD's generator)."""
    pytest.importorskip('gradio', reason='optional: pip install "gradio>=6"')
    browser.require_chromium()
    root = tmp_path_factory.mktemp('app')
    checkpoints = root / 'checkpoints'
    shutil.copytree(tiny_run.folder, checkpoints / 'tiny')
    shutil.copytree(tiny_run.folder, checkpoints / 'tiny_flipped')
    weights = torch.load(checkpoints / 'tiny_flipped' / 'latest_net_G.pth', weights_only=True)
    for key in ('model.model.3.weight', 'model.model.3.bias'):  # the outermost up-convolution, before tanh
        weights[key] = -weights[key]
    torch.save(weights, checkpoints / 'tiny_flipped' / 'latest_net_G.pth')
    shutil.copytree(depth_run.folder, checkpoints / 'depth')
    shutil.copytree(depth_run.folder, checkpoints / 'depth_float')
    shutil.copytree(local_run.folder, checkpoints / 'local')
    architecture = json.loads((checkpoints / 'depth_float' / 'architecture.json').read_text())
    for side in 'AB':
        architecture[f'mapping_{side}'] = {'type': 'float32', 'ranges': [[0.0, 4000.0]], 'how': 'given'}
    (checkpoints / 'depth_float' / 'architecture.json').write_text(json.dumps(architecture))
    site = root / 'site'
    site.mkdir()
    (site / 'sitecustomize.py').write_text(OFFLINE)
    port = free_port()
    url = f'http://127.0.0.1:{port}/'
    env = dict(os.environ, PYTHONPATH=str(site), OUTBOUND_LOG=str(root / 'outbound.log'), OMP_NUM_THREADS='1')
    server = Process([sys.executable, 'app.py', '--checkpoints_dir', str(checkpoints), '--name', 'tiny',
                      '--port', str(port), '--max_image_size', str(LIMIT)], root / 'app.log', cwd=REPO, env=env)
    try:
        assert server.wait_until_answers(url, timeout=120), server.log()
        yield server, url, checkpoints, root
    finally:
        server.stop()


def click(page, selector):
    """A real mouse click at the middle of the element."""
    box = page.evaluate(f"(r => [r.x + r.width / 2, r.y + r.height / 2])"
                        f"(document.querySelector({json.dumps(selector)}).getBoundingClientRect())")
    for kind in ('mousePressed', 'mouseReleased'):
        page.call('Input.dispatchMouseEvent', {'type': kind, 'x': box[0], 'y': box[1], 'button': 'left',
                                               'clickCount': 1}, session=page.session)


def upload(page, path):
    """Choose a file in the page's upload area, as the file dialog does (first clearing the previous one)."""
    if page.evaluate("!!document.querySelector('#upload button[aria-label=Clear]')"):
        click(page, '#upload button[aria-label=Clear]')  # which empties the status too
    page.wait_for("!!document.querySelector('#upload input[type=file]') && "
                  "!document.querySelector('#status [data-testid=markdown]').innerText.trim()")
    root = page.call('DOM.getDocument', session=page.session)['root']['nodeId']
    node = page.call('DOM.querySelector', {'nodeId': root, 'selector': '#upload input[type=file]'},
                     session=page.session)['nodeId']
    page.call('DOM.setFileInputFiles', {'files': [str(path)], 'nodeId': node}, session=page.session)
    return page.wait_for("document.querySelector('#status [data-testid=markdown]').innerText.trim()")


def fetched(page, selector, attribute):
    """The bytes of the file that the attribute (src, href) of the element names, fetched by the page."""
    data = page.evaluate(f"""fetch(document.querySelector({json.dumps(selector)}).{attribute})
        .then(r => r.arrayBuffer())
        .then(b => {{ let s = ''; new Uint8Array(b).forEach(c => s += String.fromCharCode(c)); return btoa(s); }})""")
    return base64.b64decode(data)


def shown(page, element):
    """The pixels of the image shown in #element, fetched by the page from the server."""
    return np.asarray(Image.open(io.BytesIO(fetched(page, f'#{element} img', 'src'))).convert('RGB')).astype(int)


def choose(page, experiment):
    click(page, 'input[aria-label=Experiment]')
    page.wait_for(f"!!document.querySelector('li[aria-label={experiment}]')")
    click(page, f'li[aria-label={experiment}]')


def test_the_page_translates_uploads_as_test_py_eval_does(app, runner, tmp_path):
    server, url, checkpoints, root = app
    photo = pair_image(str(tmp_path / 'photo.png'), 48, 40, seed=3)  # 40 is no multiple of 32: padded and cropped
    expected = runner.run('test.py', '--dataroot', tmp_path / 'photo.png', '--name', 'tiny', '--checkpoints_dir',
                          checkpoints, '--results_dir', tmp_path / 'results', '--eval', '--preprocess', 'none')
    assert expected.returncode == 0
    expected = np.asarray(Image.open(tmp_path / 'results' / 'tiny' / 'test_latest' / 'images' / 'photo_fake.png'))

    with browser.Browser() as page:
        page.call('Network.enable', session=page.session)
        page.open(url)
        page.wait_for("!!document.querySelector('#upload input[type=file]')")
        status = upload(page, tmp_path / 'photo.png')
        assert status.startswith('48x40 pixels:') and 'ms per image (cpu)' in status
        assert np.abs(shown(page, 'output') - expected).max() <= 1
        assert (shown(page, 'input') == photo).all()
        link = page.evaluate("(a => [a.getAttribute('download'), a.href === document.querySelector('#output img').src])"
                             "(document.querySelector('#output a[download]'))")
        assert link == ['photo_tiny.png', True]  # the download button gives this PNG
        page.screenshot(tmp_path / 'page.png')

        # Another experiment: the same upload again through the other generator, whose output is negated.
        choose(page, 'tiny_flipped')
        page.wait_for("document.querySelector('#output a[download]')?.getAttribute('download') === "
                      "'photo_tiny_flipped.png'")
        assert np.abs(shown(page, 'output') - (255 - expected)).max() <= 1

        requests = [e['params']['request']['url'] for e in page.events if e.get('method') == 'Network.requestWillBeSent']
    assert len(requests) > 10 and all(u.startswith((url, 'data:', 'blob:')) for u in requests), requests
    assert not (root / 'outbound.log').exists(), (root / 'outbound.log').read_text()
    screenshot = Image.open(tmp_path / 'page.png')
    assert screenshot.size == (1280, 900) and len(np.unique(np.asarray(screenshot.convert('L')))) > 20


def test_the_page_translates_with_pix2pixhd_s_generator_as_test_py_eval_does(app, runner, tmp_path):
    """A --netG local checkpoint: the page builds the generator from its saved architecture (global part and
    enhancer) and pads an upload to its size rule (multiples of 8 here) as test.py does."""
    server, url, checkpoints, root = app
    photo = pair_image(str(tmp_path / 'photo.png'), 44, 36, seed=5)
    expected = runner.run('test.py', '--dataroot', tmp_path / 'photo.png', '--name', 'local', '--checkpoints_dir',
                          checkpoints, '--results_dir', tmp_path / 'results', '--eval', '--preprocess', 'none')
    assert expected.returncode == 0 and 'netG: local' in expected.stdout
    expected = np.asarray(Image.open(tmp_path / 'results' / 'local' / 'test_latest' / 'images' / 'photo_fake.png'))
    assert expected.shape == (36, 44, 3) and expected.std() > 20

    with browser.Browser() as page:
        page.open(url)
        page.wait_for("!!document.querySelector('#upload input[type=file]')")
        choose(page, 'local')
        assert upload(page, tmp_path / 'photo.png').startswith('44x36 pixels:')
        page.wait_for("document.querySelector('#output a[download]')?.getAttribute('download') === 'photo_local.png'")
        assert np.abs(shown(page, 'output') - expected).max() <= 1
        assert (shown(page, 'input') == photo).all()


def test_bad_uploads_get_a_message_and_the_server_stays_up(app, tmp_path):
    server, url, checkpoints, root = app
    (tmp_path / 'notes.txt').write_text('not an image')
    pair_image(str(tmp_path / 'big.png'), LIMIT + 16, 40)
    Image.fromarray(np.full((32, 32), 128, np.uint8)).save(tmp_path / 'gray.png')
    pair_image(str(tmp_path / 'fine.png'), 32, 32)
    with browser.Browser() as page:
        page.open(url)
        page.wait_for("!!document.querySelector('#upload input[type=file]')")
        assert upload(page, tmp_path / 'notes.txt') == \
            'Error: notes.txt is not an image: upload a PNG, JPEG, BMP, TIFF, WebP or PPM image, or a NumPy .npy array'
        assert upload(page, tmp_path / 'big.png') == \
            (f'Error: big.png is {LIMIT + 16}x40 pixels, larger than this page takes: at most {LIMIT} pixels per '
             f'side (app.py --max_image_size); upload a smaller image')
        assert upload(page, tmp_path / 'gray.png') == \
            'Error: gray.png is a grayscale image, but tiny translates colour (RGB) images: upload a colour image'
        assert not page.evaluate("!!document.querySelector('#output img')")
        assert upload(page, tmp_path / 'fine.png').startswith('32x32 pixels:')
        assert page.evaluate("!!document.querySelector('#output img')")
    assert server.running()


def status_says(page, text):
    page.wait_for(f"document.querySelector('#status [data-testid=markdown]').innerText.includes({json.dumps(text)})")


def test_16_bit_and_float_uploads_give_downloads_of_test_py_values(app, runner, depth_run, tmp_path):
    """A 16-bit PNG, the same values as a TIFF and as a NumPy array, and float32 values as a TIFF: read without
    loss, mapped as the training mapped them, and the output, in the type of the data's B side (16-bit, or float32
    for depth_float), downloaded as test.py --eval writes it; the page shows test.py's 8-bit picture of it."""
    server, url, checkpoints, root = app
    values = read_array(str(depth_run.data / 'testA' / '001.png'))
    write_array(str(tmp_path / 'depth.png'), values)
    write_array(str(tmp_path / 'depth_copy.tif'), values)
    np.save(tmp_path / 'depth_array.npy', values[:, :, 0])  # H x W, as np.save users keep one channel
    write_array(str(tmp_path / 'float.tif'), values.astype(np.float32) + 0.25)
    cases = (('depth', 'depth.png', 'depth_depth.png', np.uint16),
             ('depth', 'depth_copy.tif', 'depth_copy_depth.png', np.uint16),
             ('depth', 'depth_array.npy', 'depth_array_depth.png', np.uint16),
             ('depth_float', 'float.tif', 'float_depth_float.tif', np.float32))
    with browser.Browser() as page:
        page.open(url)
        page.wait_for("!!document.querySelector('#upload input[type=file]')")
        chosen = None
        for experiment, upload_file, download, dtype in cases:
            stem = os.path.splitext(upload_file)[0]
            results = tmp_path / f'results_{stem}'
            runner.run('test.py', '--dataroot', tmp_path / upload_file, '--name', experiment, '--checkpoints_dir',
                       checkpoints, '--results_dir', results, '--eval', '--preprocess', 'none')
            images = results / experiment / 'test_latest' / 'images'
            expected = read_array(str(next(images.glob(f'{stem}_fake.*'))))
            if experiment != chosen:
                choose(page, experiment)
                if chosen:  # which translates the last upload again: here a 16-bit one, which depth_float refuses
                    status_says(page, f'{experiment} translates')
                chosen = experiment
            status = upload(page, tmp_path / upload_file)
            assert status.startswith('32x32 pixels:') and status.endswith(
                f'; {download}, below, holds the output in the data\'s own values'), status
            page.wait_for(f"document.querySelector('#download a[download]')?.getAttribute('download') === "
                          f"'{download}'")
            (tmp_path / download).write_bytes(fetched(page, '#download a[download]', 'href'))
            got = read_array(str(tmp_path / download))
            assert got.dtype == expected.dtype == dtype and got.shape == (32, 32, 1)
            assert (got == expected).all() and expected.max() > 1000  # the data's values, not 8-bit ones
            assert (shown(page, 'output') == np.asarray(Image.open(images / f'{stem}_fake_preview.png'))).all()
    assert server.running()


def test_bad_uploads_of_other_data_get_a_message(app, tmp_path):
    """Wrong type or channel count, NaN, an unreadable TIFF: one line naming the file and what to upload."""
    server, url, checkpoints, root = app
    Image.fromarray(np.full((32, 32), 1000, np.uint16)).save(tmp_path / 'deep.png')
    pair_image(str(tmp_path / 'photo.png'), 32, 32)
    write_array(str(tmp_path / 'bands.tif'), np.full((32, 32, 3), 1000, np.uint16))
    nan = np.full((32, 32, 1), 1000, np.float32)
    nan[3, 5] = np.nan
    write_array(str(tmp_path / 'holes.tif'), nan)
    write_array(str(tmp_path / 'cut.tif'), np.full((32, 32, 1), 1000, np.uint16))
    np.save(tmp_path / 'objects.npy', np.array([[None, 1]], dtype=object), allow_pickle=True)
    np.save(tmp_path / 'cube.npy', np.zeros((4, 4, 1, 1), np.uint16))
    cut = (tmp_path / 'cut.tif').read_bytes()
    (tmp_path / 'cut.tif').write_bytes(cut[:len(cut) // 2])  # its header whole, its pixels not
    with browser.Browser() as page:
        page.open(url)
        page.wait_for("!!document.querySelector('#upload input[type=file]')")
        assert upload(page, tmp_path / 'deep.png') == ('Error: deep.png holds uint16 values in 1 channel, but tiny '
                                                       'translates uint8 images of 3 channels, as it was trained: '
                                                       'upload such an image')
        choose(page, 'depth')
        status_says(page, 'deep_depth.png')  # the last upload again, which depth takes
        assert upload(page, tmp_path / 'photo.png') == ('Error: photo.png holds uint8 values in 3 channels, but depth '
                                                        'translates uint16 images of 1 channel, as it was trained: '
                                                        'upload such an image')
        status = upload(page, tmp_path / 'cut.tif')
        assert status.startswith('Error: cannot read image cut.tif: ') and '/' not in status, status
        assert upload(page, tmp_path / 'objects.npy') == (
            'Error: objects.npy holds Python objects, not numbers; it is refused, as unpickling it could run code. '
            'Save a numeric array (np.save with a uint8, uint16, int16 or float32 array).')
        assert upload(page, tmp_path / 'cube.npy') == ('Error: cube.npy holds an array of shape (4, 4, 1, 1); an image '
                                                       'is H x W or H x W x C (bands last, or bands first in a TIFF).')
        assert upload(page, tmp_path / 'bands.tif') == ('Error: bands.tif holds uint16 values in 3 channels, but '
                                                        'depth translates uint16 images of 1 channel, as it was '
                                                        'trained: upload such an image')
        choose(page, 'depth_float')
        status_says(page, 'depth_float translates')
        assert upload(page, tmp_path / 'holes.tif') == (
            'Error: holes.tif holds 1 NaN or infinite values (the first at row 3, column 5, channel 0). Replace them '
            '(for example with np.nan_to_num) or remove the file.')
        assert not page.evaluate("!!document.querySelector('#download a[download]')")
    assert server.running()


def test_without_gradio_the_app_says_how_to_install_it(tiny_run, tmp_path):
    site = sitecustomize_without(tmp_path / 'site', {'gradio'})
    proc = run('app.py', '--checkpoints_dir', tiny_run.checkpoints, '--name', 'tiny', check=False,
               env={'PYTHONPATH': site})
    assert proc.returncode == 1
    assert proc.stderr.strip() == 'error: app.py needs gradio, which is optional: pip install "gradio>=6"'


def test_the_app_names_the_experiments_there_are(runner, tiny_run):
    proc = runner.run('app.py', '--checkpoints_dir', tiny_run.checkpoints, '--name', 'nonexistent', check=False)
    assert proc.returncode == 1
    assert f'{tiny_run.checkpoints / "nonexistent" / "latest_net_G.pth"} does not exist; experiments with one: tiny' \
        in proc.stderr


def test_max_image_size_must_be_a_size():
    for size in ('0', '-5'):
        with pytest.raises(UserError) as error:
            AppOptions().parse(['--name', 'tiny', '--max_image_size', size])
        assert error.value.message == (f'--max_image_size {size}: give the largest side an upload may have, in pixels '
                                       f'(at least 1; the default is 2048)')
