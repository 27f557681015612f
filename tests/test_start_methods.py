"""Training and testing with DataLoader workers under every start method: fork (Linux up to Python 3.13),
forkserver (Linux from 3.14) and spawn (macOS, Windows).

This machine has 2 cores, where data.loader_workers() starts no workers, so each run here gets a
sitecustomize.py that makes Python report 8 cores and sets the start method, as on a user's machine.
Workers re-import the script under spawn and forkserver: train.py and test.py must do nothing at import.
Crops and flips come from (seed, epoch, sample index), so a run with workers gives bitwise the weights of
a run without, and a run killed with kill -9 and resumed with workers ends with them too.
"""
import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest
import torch
from PIL import Image

from tests.saved_networks import assert_same_latest_networks
from tests.scripts import PYTHON, REPO, run
from tests.tiny_data import make_aligned_pairs

# Random 64-pixel crops of 72-pixel images, flips, and unet_64's dropout: every random draw is in play.
ARGS = ['--device', 'cpu', '--netG', 'unet_64', '--ngf', 8, '--ndf', 8, '--load_size', 72, '--crop_size', 64,
        '--batch_size', 2, '--n_epochs', 1, '--n_epochs_decay', 2, '--print_freq', 2, '--save_latest_freq', 4,
        '--seed', 7, '--display_id', 0, '--no_html']
NETWORKS = ('G', 'D')
SITECUSTOMIZE = '''import multiprocessing, os
os.cpu_count = lambda: 8
multiprocessing.set_start_method({method!r}, force=True)
'''


def environment(tmp_path, method):
    """The environment of a process that believes it has 8 cores and starts processes by `method`."""
    folder = tmp_path / f'site_{method}'
    folder.mkdir(exist_ok=True)
    (folder / 'sitecustomize.py').write_text(SITECUSTOMIZE.format(method=method))
    return dict(os.environ, OMP_NUM_THREADS='1',
                PYTHONPATH=os.pathsep.join(filter(None, [str(folder), os.environ.get('PYTHONPATH')])))


def command(script, *args):
    return [PYTHON, os.path.join(REPO, script), *map(str, args)]


def assert_same_weights(folder, expected_folder):
    assert_same_latest_networks(folder, expected_folder, NETWORKS)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('start_methods')
    data = make_aligned_pairs(str(root / 'data'), count=7, size=32, phases=('train', 'test'))
    checkpoints = root / 'checkpoints'

    def train_args(name, *extra):
        return ['--dataroot', data, '--checkpoints_dir', checkpoints, '--name', name, *ARGS, *extra]

    in_process = run('train.py', *train_args('in_process', '--num_threads', 0))
    assert '(0 loader worker processes)' in in_process.stdout
    return root, data, checkpoints, train_args


@pytest.mark.parametrize('method', ['fork', 'forkserver', 'spawn'])
def test_training_with_workers_gives_the_weights_of_training_without(setup, method):
    root, data, checkpoints, train_args = setup
    result = run('train.py', *train_args(method, '--num_threads', 2), env=environment(root, method))
    assert '(2 loader worker processes)' in result.stdout
    assert_same_weights(checkpoints / method, checkpoints / 'in_process')


def test_a_run_with_workers_killed_and_resumed_ends_with_the_same_weights(setup):
    root, data, checkpoints, train_args = setup
    env = environment(root, 'spawn')
    args = train_args('killed', '--num_threads', 2)
    with open(root / 'killed.log', 'w') as log:
        child = subprocess.Popen(command('train.py', *args), cwd=REPO, env=env, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        try:
            # Killed in epoch 2, whichever save (at samples 4, 8, 12, ...) the run has finished by then.
            wait_for(root / 'killed.log', r'saving the latest model \(epoch 2', child)
            os.kill(child.pid, signal.SIGKILL)
            assert child.wait(timeout=30) == -signal.SIGKILL
        finally:
            os.killpg(child.pid, signal.SIGKILL)  # the workers, had they outlived their parent
    saved = torch.load(checkpoints / 'killed' / 'latest_train_state.pth', weights_only=True)
    assert 0 < saved['total_iters'] < 21  # mid-run

    resumed = run('train.py', *args, '--continue_train', env=env)
    assert '(2 loader worker processes)' in resumed.stdout
    assert f"epoch {saved['epoch']}, {saved['epoch_iter']} samples into it" in resumed.stdout
    assert_same_weights(checkpoints / 'killed', checkpoints / 'in_process')


def wait_for(log_path, pattern, child, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_path.read_text()
        if re.search(pattern, text):
            return
        if child.poll() is not None:
            raise AssertionError(f'train.py ended (status {child.returncode}) before {pattern!r}:\n{text[-3000:]}')
        time.sleep(0.05)
    raise AssertionError(f'no {pattern!r} after {timeout} s:\n{log_path.read_text()[-3000:]}')


@pytest.mark.parametrize('method', ['forkserver', 'spawn'])
def test_testing_with_workers_writes_the_images_of_testing_without(setup, method):
    root, data, checkpoints, _ = setup
    # --eval: no dropout, so that two runs of test.py can give the same pixels at all.
    common = ['--dataroot', data, '--checkpoints_dir', checkpoints, '--name', 'in_process', '--device', 'cpu',
              '--eval', '--load_size', 64, '--crop_size', 64]
    run('test.py', *common, '--num_threads', 0, '--results_dir', root / 'results_in_process')
    result = run('test.py', *common, '--num_threads', 2, '--results_dir', root / f'results_{method}',
                 env=environment(root, method))
    assert '(2 loader worker processes)' in result.stdout and 'processed 7 images' in result.stdout
    expected_dir = root / 'results_in_process' / 'in_process' / 'test_latest' / 'images'
    got_dir = root / f'results_{method}' / 'in_process' / 'test_latest' / 'images'
    names = sorted(os.listdir(expected_dir))
    assert len(names) == 21 and sorted(os.listdir(got_dir)) == names
    for name in names:
        assert np.array_equal(np.asarray(Image.open(got_dir / name)), np.asarray(Image.open(expected_dir / name))), name


def test_a_bad_image_met_by_a_worker_is_one_clear_error(setup, tmp_path):
    root, _, _, _ = setup
    data = make_aligned_pairs(str(tmp_path / 'data'), count=4, size=32, phases=('train',))
    bad = tmp_path / 'data' / 'train' / '002.png'
    bad.write_bytes(b'not an image')
    result = run('train.py', '--dataroot', data, '--checkpoints_dir', tmp_path / 'checkpoints', '--name', 'bad',
                 *ARGS, '--num_threads', 2, env=environment(root, 'spawn'), check=False)
    assert '(2 loader worker processes)' in result.stdout
    assert result.returncode == 1
    assert result.stderr.startswith(f'error: cannot read image {bad}: ') and 'Remove or replace the file' in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
