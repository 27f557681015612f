"""A trainer killed with kill -9 at any moment, saving included, leaves only files that load, and
--continue_train carries on from them."""
import json
import os
import random
import signal
import time

import pytest

from models import checkpoint
from tests.scripts import TINY_NET
from tests.tiny_data import make_aligned_pairs
from training import state as training_state
from util.files import UMASK, atomic_write, atomic_write_text


def check_every_file_loads(folder):
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if name == training_state.STATE_FILE:
            training_state.load(path)
        elif name.endswith('.pth'):
            checkpoint.load_state_dict(path)
        elif name.endswith('.json'):
            with open(path) as f:
                json.load(f)


def temporaries(folder):
    return [name for name in os.listdir(folder) if name.endswith('.tmp')]


def test_kill_9_at_random_moments_while_saving(runner, tmp_path):
    data = make_aligned_pairs(str(tmp_path / 'data'), count=4, size=32, phases=('train',))
    folder = tmp_path / 'checkpoints' / 'crashy'
    # A save (nets, then the state) after every iteration: most of the time is spent saving.
    args = ['--dataroot', data, '--checkpoints_dir', tmp_path / 'checkpoints', '--name', 'crashy', *TINY_NET,
            '--save_latest_freq', 1, '--print_freq', 1, '--n_epochs', 1000, '--seed', 0]
    moments = random.Random(0)
    progress, torn_saves = 0, 0
    for round in range(12):
        child = runner.start('train.py', *args, *(['--continue_train'] if round else []))
        child.wait_for(r'saving the latest model')
        if round:
            assert f'total_iters {progress}' in child.stdout, 'the resumed run did not start from the last save'
        time.sleep(moments.uniform(0, 0.3))
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL, child.stderr[-2000:]
        torn_saves += bool(temporaries(folder))
        check_every_file_loads(folder)
        saved = training_state.load(str(folder / training_state.STATE_FILE))['total_iters']
        assert saved >= progress
        progress = saved
    assert torn_saves >= 1, 'no kill landed during a save, so this test checked nothing'

    # The next start removes what the killed saves left behind, and resumes from the last good state.
    stale = temporaries(folder)
    child = runner.start('train.py', *args, '--continue_train')
    child.wait_for(r'resuming from')
    assert not set(stale) & set(temporaries(folder))
    os.kill(child.pid, signal.SIGKILL)
    child.wait()


def test_a_failed_write_leaves_the_previous_file(tmp_path):
    path = tmp_path / 'latest_net_G.pth'
    path.write_bytes(b'previous')

    def write_half_then_fail(f):
        f.write(b'half of the new')
        raise OSError('disk full')

    with pytest.raises(OSError):
        atomic_write(str(path), write_half_then_fail)
    assert path.read_bytes() == b'previous'
    assert os.listdir(tmp_path) == ['latest_net_G.pth']


def test_written_files_get_the_usual_permissions(tmp_path):
    # Not mkstemp's 0600: galleries and checkpoints stay readable by others as with open().
    atomic_write_text(str(tmp_path / 'index.html'), '<html></html>')
    assert os.stat(tmp_path / 'index.html').st_mode & 0o777 == 0o666 & ~UMASK
