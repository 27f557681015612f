"""The training web page and test.py's gallery, as headless Chromium shows them."""
import math
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from tests import browser
from util.display import loss_plot
from util.display.loss_plot import MAX_POINTS, LossLog, loss_plots, nice_ticks

LOSS_NAMES = ['G_GAN', 'G_L1', 'D_real', 'D_fake']
# Test images whose names would be markup if a page did not escape them; '/' cannot be in a
# file name, so the first is a folder '<script>alert(1)<' holding 'script>.png'.
HOSTILE = ['<script>alert(1)</script>.png', '"><img src=x onerror=alert(2)> #1 & 100%.png']
# What the gallery calls them: the path below the data folder, '/' made '_'.
HOSTILE_STEMS = ['<script>alert(1)<_script>', '"><img src=x onerror=alert(2)> #1 & 100%']
# Records alert() calls instead of showing a dialog, before any script of the page runs.
TRAP_ALERTS = 'window.alerts = []; window.alert = message => window.alerts.push(String(message));'


@pytest.fixture(scope='module')
def trained(train_tiny):
    """4 training pairs, 2 epochs, a loss line and a display every iteration; the test split also
    holds copies of two pairs under HOSTILE names."""
    tiny = train_tiny('--n_epochs', 1, '--n_epochs_decay', 1, '--print_freq', 1, '--display_freq', 1, '--seed', 0,
                      name='pages')
    for index, name in enumerate(HOSTILE):
        (tiny.data / 'test' / name).parent.mkdir(exist_ok=True)
        shutil.copy(tiny.data / 'test' / f'{index:03d}.png', tiny.data / 'test' / name)
    return tiny.checkpoints, tiny.data, tiny.folder


def open_page(page, path):
    page.call('Page.addScriptToEvaluateOnNewDocument', {'source': TRAP_ALERTS}, session=page.session)
    page.open(path)
    page.wait_for('[...document.images].every(img => img.complete)')


def test_training_page_shows_loss_charts_and_visuals_newest_first(trained, tmp_path):
    browser.require_chromium()
    checkpoints, data, experiment = trained
    logged = LossLog(experiment / 'loss_log.txt').points()
    assert [x for x, _ in logged] == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    with browser.Browser() as page:
        open_page(page, experiment / 'web' / 'index.html')
        images = page.evaluate("[...document.images].map(img => [img.getAttribute('src'), img.naturalWidth])")
        # The first display of each epoch goes to the page (--update_html_freq 1000 is never reached).
        assert images == [[f'images/epoch{epoch:03d}_{label}.png', 32]
                          for epoch in (2, 1) for label in ('real_A', 'fake_B', 'real_B')]
        headers = page.evaluate("[...document.querySelectorAll('h3')].map(h => h.textContent)")
        assert headers == ['losses (from loss_log.txt)', 'epoch [2]', 'epoch [1]']
        charts = page.evaluate("""[...document.querySelectorAll('svg.loss-plot')].map(chart => ({
            name: chart.dataset.loss,
            caption: chart.querySelector('text').textContent,
            width: chart.getBoundingClientRect().width,
            points: [...chart.querySelector('polyline').points].map(p => [p.x, p.y])}))""")
        page.screenshot(tmp_path / 'training_page.png')
    assert [chart['name'] for chart in charts] == LOSS_NAMES
    for chart in charts:
        values = [losses[chart['name']] for _, losses in logged]
        assert chart['width'] == 360
        assert chart['caption'] == f"{chart['name']}: {values[-1]:.4g} at epoch 2.00"
        xs, ys = np.array(chart['points']).T
        assert len(xs) == 8 and np.all(np.diff(xs) > 0)
        # Screen y grows downwards: the largest loss is the highest point, the smallest the lowest.
        assert np.argmin(ys) == np.argmax(values) and np.argmax(ys) == np.argmin(values)
    assert Image.open(tmp_path / 'training_page.png').size == (1280, 900)


def test_gallery_escapes_names_links_images_relatively_and_sums_up(runner, trained, tmp_path):
    browser.require_chromium()
    checkpoints, data, experiment = trained
    proc = runner.run('test.py', '--dataroot', data, '--name', 'pages', '--checkpoints_dir', checkpoints,
                      '--results_dir', tmp_path / 'results', '--load_size', 32, '--crop_size', 32)
    assert '\r' not in proc.stdout + proc.stderr  # no progress bar without a terminal
    # Relative links: the gallery still works moved elsewhere, its old folder gone.
    moved = tmp_path / 'moved'
    shutil.move(tmp_path / 'results' / 'pages' / 'test_latest', moved)
    with browser.Browser() as page:
        open_page(page, moved / 'index.html')
        images = page.evaluate("[...document.images].map(img => [img.getAttribute('src'), img.naturalWidth])")
        assert len(images) == 6 * 3 and all(src.startswith('images/') and width == 32 for src, width in images)
        assert page.evaluate('[document.scripts.length, window.alerts]') == [0, []]
        headers = page.evaluate("[...document.querySelectorAll('h3')].map(h => h.textContent.split(': L1')[0])")
        assert sorted(headers) == sorted(['000', '001', '002', '003', *HOSTILE_STEMS])
        rows = page.evaluate("""[...document.querySelectorAll('table:not(.summary)')].map(table =>
            [...table.rows].map(row => [...row.cells].map(cell => cell.innerText.trim())))""")
        assert rows == [[['real_A', 'fake_B', 'real_B']]] * 6
        summary = dict(page.evaluate("[...document.querySelectorAll('table.summary tr')]"
                                     ".map(row => [row.cells[0].innerText, row.cells[1].innerText])"))
        page.screenshot(tmp_path / 'gallery.png')
    assert summary['model'] == 'pix2pix, generator unet_32 (ngf 8, norm batch)'
    assert summary['checkpoint'].endswith('pages, epoch latest')
    assert summary['images'].startswith('6 from ')
    assert summary['command'].startswith('python test.py --dataroot ')
    assert summary['options'] == 'all options'  # folded until clicked
    for stem in HOSTILE_STEMS:
        assert (moved / 'images' / f'{stem}_fake_B.png').exists()


HEADER = '================ Training Loss (Mon Jan  5 10:00:00 2026) ================\n'


def loss_lines(rows):
    return ''.join(f'(epoch: {epoch}, iters: {iters}, time: 0.100, data: 0.010) '
                   + ' '.join(f'{name}: {value}' for name, value in losses.items()) + '\n'
                   for epoch, iters, losses in rows)


def test_loss_log_restart_replaces_what_came_after_it(tmp_path):
    log = tmp_path / 'loss_log.txt'
    first = [(epoch, iters, {'G_L1': epoch * 10 + iters}) for epoch in (1, 2, 3) for iters in (50, 100)]
    # --continue_train --epoch_count 2: epoch 2 again, from the epoch-1 checkpoint.
    again = [(2, 50, {'G_L1': -1.0}), (2, 100, {'G_L1': -2.0})]
    log.write_text(HEADER + loss_lines(first) + HEADER + 'a line that is no loss line\n' + loss_lines(again))
    assert LossLog(log).points() == [(0.5, {'G_L1': 60.0}), (1.0, {'G_L1': 110.0}),
                                  (1.5, {'G_L1': -1.0}), (2.0, {'G_L1': -2.0})]


def test_loss_chart_leaves_out_values_that_are_not_finite(tmp_path):
    log = tmp_path / 'loss_log.txt'
    log.write_text(HEADER + loss_lines([(1, 1, {'D_real': 0.5}), (1, 2, {'D_real': 'nan'}),
                                        (1, 3, {'D_real': 'inf'}), (1, 4, {'D_real': 0.25})]))
    chart = loss_plots(LossLog(log).points()).children[0]
    html = chart.render()
    assert 'D_real: 0.25 at epoch 1.00 (2 not finite, left out)' in html
    assert len(re.search(r'points="([^"]*)"', html).group(1).split()) == 2


def test_long_curves_are_drawn_through_means():
    curve = [(i / 1000, float(i % 2)) for i in range(1000)]
    thinned = loss_plot.thin(curve)
    assert len(thinned) == MAX_POINTS
    # Runs of 2 or 3 alternating 0/1 values: means between 1/3 and 2/3, x in order.
    assert all(1 / 3 - 1e-9 <= y <= 2 / 3 + 1e-9 for _, y in thinned)
    assert all(b[0] > a[0] for a, b in zip(thinned, thinned[1:]))
    assert loss_plot.thin(curve[:10]) == curve[:10]


@pytest.mark.parametrize('low, high, ticks', [
    (0.63, 0.87, [0.6, 0.7, 0.8, 0.9]),
    (0, 2, [0, 0.5, 1, 1.5, 2]),
    (12.3, 97.1, [0, 50, 100]),
    (5, 5, [4.5, 5, 5.5]),
])
def test_nice_ticks_cover_the_range_in_round_steps(low, high, ticks):
    assert nice_ticks(low, high, 4) == pytest.approx(ticks)
    assert not any(math.isnan(t) for t in nice_ticks(0, 0, 4))
