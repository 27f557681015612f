"""Watching a real train.py run: visdom (server on 127.0.0.1), no display, no server, progress bars."""
import base64
import fcntl
import io
import json
import os
import re
import socket
import struct
import subprocess
import termios
import threading

import numpy as np
import pytest
from PIL import Image

from tests import browser, servers
from tests.scripts import PYTHON, REPO, TINY_NET, run
from tests.tiny_data import make_aligned_pairs

pytest.importorskip('visdom', reason='visdom not installed: pip install visdom')
# visdom 0.2.4 calls the deprecated logger.warn when made without its event socket.
pytestmark = pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning")

LOSS_NAMES = ['G_GAN', 'G_L1', 'D_real', 'D_fake']
VISUALS = ['real_A', 'fake_B', 'real_B']
# 4 images, 2 epochs, a loss line and a display every iteration.
TRAIN = ['--n_epochs', 1, '--n_epochs_decay', 1, '--print_freq', 1, '--display_freq', 1, '--seed', 0,
         '--display_server', 'http://127.0.0.1']
ITERATIONS = 8
LOSS_LINE = re.compile(r'^\(epoch: (\d), iters: (\d), time: [\d.]+, data: [\d.]+\) '
                       r'G_GAN: ([\d.]+) G_L1: ([\d.]+) D_real: ([\d.]+) D_fake: ([\d.]+)$')


def train(data, checkpoints, *args, runner=run):
    return runner('train.py', '--dataroot', data, '--name', 'watch', '--checkpoints_dir', checkpoints,
                  *TINY_NET, *TRAIN, *args)


def logged_losses(checkpoints):
    """[(epoch, iters, [G_GAN, G_L1, D_real, D_fake])] from loss_log.txt."""
    rows = []
    for line in (checkpoints / 'watch' / 'loss_log.txt').read_text().splitlines():
        match = LOSS_LINE.match(line)
        if match:
            epoch, iters, *values = match.groups()
            rows.append((int(epoch), int(iters), [float(v) for v in values]))
    return rows


def run_in_terminal(script, *args):
    """Run script with stdout and stderr on a pseudo-terminal of 120x24; returns what it showed."""
    controller, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 120, 0, 0))
    process = subprocess.Popen([PYTHON, os.path.join(REPO, script), *map(str, args)], cwd=REPO,
                               stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal,
                               # Redraw the bar on every step: with tqdm's default 0.1 s, an epoch of these
                               # tiny steps can end before a redraw, and the bar still shows 0/4 and ?it/s.
                               env=dict(os.environ, OMP_NUM_THREADS='1', TQDM_MININTERVAL='0'))
    os.close(terminal)
    shown = b''
    while True:
        try:
            chunk = os.read(controller, 1 << 16)
        except OSError:  # EIO: the terminal's other end closed
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    assert process.wait(timeout=300) == 0, shown.decode(errors='replace')[-3000:]
    return shown.decode(errors='replace')


class ConnectionRecorder:
    """A socket listening on a 127.0.0.1 port that accepts, counts and closes every connection."""

    def __init__(self):
        self.socket = socket.create_server(('127.0.0.1', 0))
        self.port = self.socket.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:  # closed
                return
            self.connections += 1
            connection.close()

    def close(self):
        self.socket.shutdown(socket.SHUT_RDWR)
        self.socket.close()
        self.thread.join()


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_aligned_pairs(str(tmp_path_factory.mktemp('data')), count=4, size=32, phases=('train', 'test'))


@pytest.fixture(scope='module')
def visdom_run(tmp_path_factory, data):
    """A visdom server and a training run that displayed into its env 'watch'."""
    root = tmp_path_factory.mktemp('visdom_run')
    with servers.visdom_server(root) as server:
        proc = train(data, root / 'checkpoints', '--display_id', 1, '--display_port', server.port,
                     '--display_env', 'watch', '--update_html_freq', 1)
        yield server, proc, root / 'checkpoints'


@pytest.fixture(scope='module')
def display_off_run(tmp_path_factory, data):
    """A run with --display_id 0 whose --display_port has a listener that records connections."""
    checkpoints = tmp_path_factory.mktemp('display_off') / 'checkpoints'
    recorder = ConnectionRecorder()
    try:
        proc = train(data, checkpoints, '--display_id', 0, '--display_port', recorder.port)
    finally:
        recorder.close()
    return proc, recorder.connections, checkpoints


def window(server, win):
    import visdom

    client = visdom.Visdom(server='http://127.0.0.1', port=server.port, env='watch',
                           use_incoming_socket=False, raise_exceptions=True)
    return json.loads(client.get_window_data(win=win, env='watch'))


def test_loss_plot_holds_every_logged_loss_at_its_epoch(visdom_run):
    server, proc, checkpoints = visdom_run
    assert 'Warning' not in proc.stdout + proc.stderr
    plot = window(server, '1')
    assert plot['title'] == 'watch loss over time'
    traces = plot['content']['data']
    assert [trace['name'] for trace in traces] == LOSS_NAMES
    logged = logged_losses(checkpoints)
    assert len(logged) == ITERATIONS
    for index, trace in enumerate(traces):
        # x in epochs trained: iteration i of epoch e (4 samples each) is at e - 1 + i / 4.
        assert trace['x'] == [epoch - 1 + iters / 4 for epoch, iters, _ in logged]
        # The log rounds to 3 decimals; the plot has the full values.
        assert np.allclose(trace['y'], [values[index] for _, _, values in logged], atol=5e-4, rtol=0)


def test_image_window_holds_the_last_visuals_as_png(visdom_run):
    server, proc, checkpoints = visdom_run
    images = window(server, '2')
    assert images['title'] == 'watch images'
    prefix = 'data:image/png;base64,'
    assert images['content']['src'].startswith(prefix)
    grid = Image.open(io.BytesIO(base64.b64decode(images['content']['src'][len(prefix):])))
    assert grid.format == 'PNG'
    # Three 32x32 visuals in one row, 2 px of padding around each.
    assert grid.size == (3 * 36, 36)
    grid = np.asarray(grid.convert('RGB'), dtype=int)
    # --update_html_freq 1 saved the same (last) visuals to the web page: the tiles are those images.
    for index, label in enumerate(VISUALS):
        saved = np.asarray(Image.open(checkpoints / 'watch' / 'web' / 'images' / f'epoch002_{label}.png'), dtype=int)
        tile = grid[3:35, index * 36 + 3:index * 36 + 35]
        assert np.abs(tile - saved).max() <= 1, label
    labels = window(server, '3')['content']
    assert 'epoch 2' in labels and all(f'<td>{label}</td>' in labels for label in VISUALS)


def test_visdom_page_draws_the_run_in_chromium(visdom_run, tmp_path):
    browser.require_chromium()
    server, proc, checkpoints = visdom_run
    with browser.Browser() as page:
        page.open(f'{server.url}/env/watch')
        page.wait_for("document.querySelector('.js-plotly-plot .scatterlayer path.js-line')"
                      " && [...document.images].some(img => img.complete && img.naturalWidth > 0)")
        legend = page.evaluate("[...document.querySelectorAll('.js-plotly-plot .legendtext')].map(e => e.textContent)")
        assert legend == LOSS_NAMES
        lines = page.evaluate("document.querySelectorAll('.js-plotly-plot .scatterlayer path.js-line').length")
        assert lines == len(LOSS_NAMES)
        sizes = page.evaluate("[...document.images].map(img => [img.naturalWidth, img.naturalHeight])")
        assert sizes == [[108, 36]]
        text = page.evaluate('document.body.innerText')
        assert 'watch loss over time' in text and 'watch images' in text
        page.screenshot(tmp_path / 'visdom.png')
    assert Image.open(tmp_path / 'visdom.png').size == (1280, 900)


def test_display_off_makes_no_network_call(display_off_run):
    proc, connections, checkpoints = display_off_run
    assert connections == 0
    assert 'Warning' not in proc.stdout + proc.stderr
    assert len(logged_losses(checkpoints)) == ITERATIONS


def test_missing_server_costs_one_warning_and_training_completes(data, tmp_path):
    port = servers.free_port()  # nothing listens there
    proc = train(data, tmp_path, '--display_id', 1, '--display_port', port)
    output = proc.stdout + proc.stderr
    assert output.count('Warning') == 1
    assert f'no visdom server at http://127.0.0.1:{port}' in proc.stderr
    assert f'bash scripts/start_visdom.sh {port}' in proc.stderr
    assert len(logged_losses(tmp_path)) == ITERATIONS
    assert (tmp_path / 'watch' / 'latest_net_G.pth').exists()


def test_progress_bar_is_quiet_without_a_terminal(display_off_run):
    proc, connections, checkpoints = display_off_run
    output = proc.stdout + proc.stderr
    assert '\r' not in output and 'it/s' not in output
    lines = [line for line in proc.stdout.splitlines() if line.startswith('(epoch:')]
    assert len(lines) == ITERATIONS and all(LOSS_LINE.match(line) for line in lines)


def test_terminal_shows_bar_and_whole_loss_lines_and_a_broken_server_is_tried_once(data, tmp_path):
    # The port accepts connections and drops them: the display gives up after the first.
    recorder = ConnectionRecorder()
    try:
        shown = train(data, tmp_path, '--display_id', 1, '--display_port', recorder.port, runner=run_in_terminal)
    finally:
        recorder.close()
    assert recorder.connections == 1
    assert shown.count('Warning') == 1
    assert re.search(r'epoch 2/2: +\d+%\|.*\| \d/4 \[[\d:]+<[\d:]+, +[\d.]+(it/s|s/it), G_GAN=[\d.]+, G_L1=', shown)
    # A terminal shows what follows the last carriage return of each line.
    visible = [line.rsplit('\r', 1)[-1] for line in shown.split('\r\n')]
    loss_lines = [line for line in visible if line.startswith('(epoch:')]
    assert len(loss_lines) == ITERATIONS and all(LOSS_LINE.match(line) for line in loss_lines), loss_lines
    assert 'epoch 1/2' in shown and 'End of epoch 2 / 2' in visible[-2]


def test_test_script_shows_a_progress_bar_on_a_terminal(data, display_off_run, tmp_path):
    proc, connections, checkpoints = display_off_run
    shown = run_in_terminal('test.py', '--dataroot', data, '--name', 'watch', '--checkpoints_dir', checkpoints,
                            '--results_dir', tmp_path, '--load_size', 32, '--crop_size', 32)
    assert re.search(r'test: 100%\|.*\| 4/4 \[', shown)
    assert 'processed 4 images' in shown
