"""app.py, the local web demo, driven in headless Chromium as a user drives it: pick an experiment, upload an image,
read the output back from the page and compare it with test.py --eval; bad uploads get a message in the page and
the server stays up; neither the page nor the server reaches beyond 127.0.0.1."""
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
from tests.tiny_data import pair_image
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
def app(tiny_run, tmp_path_factory):
    """app.py serving two experiments: tiny, and tiny_flipped whose last layer is negated (output = -tiny's)."""
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


def shown(page, element):
    """The pixels of the image shown in #element, fetched by the page from the server."""
    data = page.evaluate(f"""fetch(document.querySelector('#{element} img').src).then(r => r.arrayBuffer())
        .then(b => {{ let s = ''; new Uint8Array(b).forEach(c => s += String.fromCharCode(c)); return btoa(s); }})""")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert('RGB')).astype(int)


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
        click(page, 'input[aria-label=Experiment]')
        page.wait_for("!!document.querySelector('li[aria-label=tiny_flipped]')")
        click(page, 'li[aria-label=tiny_flipped]')
        page.wait_for("document.querySelector('#output a[download]')?.getAttribute('download') === "
                      "'photo_tiny_flipped.png'")
        assert np.abs(shown(page, 'output') - (255 - expected)).max() <= 1

        requests = [e['params']['request']['url'] for e in page.events if e.get('method') == 'Network.requestWillBeSent']
    assert len(requests) > 10 and all(u.startswith((url, 'data:', 'blob:')) for u in requests), requests
    assert not (root / 'outbound.log').exists(), (root / 'outbound.log').read_text()
    screenshot = Image.open(tmp_path / 'page.png')
    assert screenshot.size == (1280, 900) and len(np.unique(np.asarray(screenshot.convert('L')))) > 20


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
            'Error: notes.txt is not an image: upload a PNG, JPEG, BMP, TIFF, WebP or PPM image'
        assert upload(page, tmp_path / 'big.png') == \
            (f'Error: big.png is {LIMIT + 16}x40 pixels, larger than this page takes: at most {LIMIT} pixels per '
             f'side (app.py --max_image_size); upload a smaller image')
        assert upload(page, tmp_path / 'gray.png') == \
            'Error: gray.png is a grayscale image, but tiny translates colour (RGB) images: upload a colour image'
        assert not page.evaluate("!!document.querySelector('#output img')")
        assert upload(page, tmp_path / 'fine.png').startswith('32x32 pixels:')
        assert page.evaluate("!!document.querySelector('#output img')")
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
