"""Files from elsewhere are data, never code: a checkpoint cannot run code when loaded, and file names
cannot inject markup into the galleries. (Archives: tests/test_download_scripts.py; servers on
127.0.0.1 only: tests/test_visdom.py.)"""
import os
import shutil

import pytest
import torch

from models import checkpoint
from util.errors import UserError
from tests import browser
from tests.scripts import TINY_NET
from tests.tiny_data import pair_image
from training import state as training_state


class WritesAFile:
    """Unpickling this runs exec(), which writes a file: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f'open({self.marker!r}, "w").write("code ran")',)


def malicious_checkpoint(path, marker):
    torch.save({'model.model.0.weight': torch.zeros(1), 'payload': WritesAFile(marker)}, path)


def test_the_crafted_pickle_does_run_code_when_loaded_unsafely(tmp_path):
    # Proves the payload is live, so the tests below that it stays inert mean something.
    malicious_checkpoint(tmp_path / 'evil.pth', tmp_path / 'marker')
    torch.load(tmp_path / 'evil.pth', weights_only=False)
    assert (tmp_path / 'marker').read_text() == 'code ran'


def test_checkpoint_loader_refuses_the_crafted_pickle(tmp_path):
    malicious_checkpoint(tmp_path / 'evil.pth', tmp_path / 'marker')
    with pytest.raises(UserError, match='not a weights file'):
        checkpoint.load_state_dict(str(tmp_path / 'evil.pth'))
    assert not (tmp_path / 'marker').exists()


def test_test_py_refuses_a_crafted_generator_file(runner, tiny_run, tmp_path):
    folder = tmp_path / 'checkpoints' / 'downloaded'
    folder.mkdir(parents=True)
    malicious_checkpoint(folder / 'latest_net_G.pth', tmp_path / 'marker')
    result = runner.run('test.py', '--dataroot', tiny_run.data, '--name', 'downloaded', '--checkpoints_dir',
                        tmp_path / 'checkpoints', '--results_dir', tmp_path / 'results', check=False)
    assert result.returncode != 0
    assert f'cannot load checkpoint {folder / "latest_net_G.pth"}' in result.stderr
    assert 'Traceback' not in result.stderr
    assert not (tmp_path / 'marker').exists()


def test_continue_train_refuses_a_crafted_training_state(runner, tiny_run, tmp_path):
    checkpoints = tmp_path / 'checkpoints'
    shutil.copytree(tiny_run.checkpoints, checkpoints)
    state = checkpoints / 'tiny' / training_state.STATE_FILE
    torch.save({'format': 1, 'payload': WritesAFile(tmp_path / 'marker')}, state)
    result = runner.run('train.py', '--dataroot', tiny_run.data, '--name', 'tiny', '--checkpoints_dir', checkpoints,
                        *TINY_NET, '--continue_train', check=False)
    assert result.returncode != 0 and f'cannot load the training state {state}' in result.stderr
    assert not (tmp_path / 'marker').exists()


NASTY_NAMES = ['<script>alert(1)<', '<img src=x onerror=alert(2)>', '"><b>bold', "a'b&c%20d#e?f"]


def test_gallery_escapes_image_names(runner, tiny_run, tmp_path):
    for i, name in enumerate(NASTY_NAMES):
        pair_image(os.path.join(tmp_path, 'data', 'test', name + '.png'), 64, 32, seed=i)
    runner.run('test.py', '--dataroot', tmp_path / 'data', '--name', 'tiny', '--checkpoints_dir',
               tiny_run.checkpoints, '--results_dir', tmp_path / 'results')
    page = tmp_path / 'results' / 'tiny' / 'test_latest' / 'index.html'
    html = page.read_text()

    assert '<script' not in html and '<img src=x' not in html and '<b>' not in html
    assert '&lt;script&gt;alert(1)&lt;' in html and '&lt;img src=x onerror=alert(2)&gt;' in html
    for name in NASTY_NAMES:
        assert (page.parent / 'images' / f'{name}_fake_B.png').exists()

    browser.require_chromium()
    with browser.Browser() as page_in_browser:
        page_in_browser.open(page)
        shown = page_in_browser.evaluate(
            '({scripts: document.scripts.length, bold: document.querySelectorAll("b").length,'
            ' headers: [...document.querySelectorAll("h3")].map(h => h.textContent),'
            ' images: [...document.images].map(img => img.complete && img.naturalWidth)})')
    assert shown['scripts'] == 0 and shown['bold'] == 0
    # Each name shows as plain text, and every image (linked through its percent-encoded name) loads.
    assert len(shown['headers']) == len(NASTY_NAMES)
    assert all(any(header.startswith(name) for header in shown['headers']) for name in NASTY_NAMES)
    # Every image loaded, each 32x32 half at test.py's default size (naturalWidth is 0 for a broken one).
    assert shown['images'] == [256] * 3 * len(NASTY_NAMES)
