"""Starting several training processes, and what happens when one fails, stalls or never comes (CPU, gloo).

Most tests start the ranks as bare processes with torchrun's environment variables (RANK, LOCAL_RANK,
WORLD_SIZE) meeting through a file, with no launcher to kill the others: each rank must end on its own.
"""
import builtins
import contextlib
import os
import signal
import sys
import time

import pytest
import torch

from models import networks
from util.errors import UserError
from options.test_options import TestOptions
from options.train_options import TrainOptions
from tests.scripts import PYTHON, REPO, TINY_NET, run
from tests.tiny_data import make_aligned_pairs
from tests.servers import Process
from util import distributed

TORCHRUN = os.path.join(os.path.dirname(sys.executable), 'torchrun')
LAUNCH_GUARD = 180  # seconds: only a hang gets near it


def start_ranks(tmp_path, world_size, args, ranks=None):
    processes = []
    for rank in range(world_size) if ranks is None else ranks:
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                   GLOO_SOCKET_IFNAME='lo', OMP_NUM_THREADS='1')
        processes.append(Process([PYTHON, os.path.join(REPO, 'train.py'), *map(str, args),
                                  '--dist_url', f'file://{tmp_path}/meet'], tmp_path / f'rank{rank}.log',
                                 cwd=REPO, env=env))
    return processes


def wait_for(condition, processes, timeout=LAUNCH_GUARD):
    deadline = time.monotonic() + timeout
    while not condition():
        assert all(p.running() for p in processes), [p.log()[-2000:] for p in processes]
        assert time.monotonic() < deadline, 'timed out'
        time.sleep(0.2)


@contextlib.contextmanager
def two_ranks_training(tmp_path, dist_timeout):
    """Two bare ranks on 4 images for 1000 epochs (--serial_batches: rank r reads images r and r + 2), yielded
    once the second epoch is logged; stopped at the end, whatever state they are in."""
    data = make_aligned_pairs(str(tmp_path / 'data'), count=4, size=32, phases=('train',))
    ranks = start_ranks(tmp_path, 2, ['--dataroot', data, '--name', 'run', '--checkpoints_dir', tmp_path, *TINY_NET,
                                      '--serial_batches', '--n_epochs', 1000, '--n_epochs_decay', 0, '--print_freq', 2,
                                      '--dist_timeout', dist_timeout])
    log = tmp_path / 'run' / 'loss_log.txt'
    try:
        wait_for(lambda: log.exists() and 'epoch: 2,' in log.read_text(), ranks)
        yield ranks
    finally:
        for p in ranks:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGCONT)  # a stopped process acts on stop()'s SIGTERM only once continued
            p.stop()


def test_the_torchrun_command_from_the_readme_trains_and_saves(tmp_path):
    data = make_aligned_pairs(str(tmp_path / 'data'), count=4, size=32, phases=('train',))
    # torchrun's rendezvous store listens on every interface while it runs (see NOTES.md), so only this
    # short run uses it.
    proc = run(TORCHRUN, '--standalone', '--nproc_per_node=2', 'train.py', '--dataroot', data, '--name', 'tr',
               '--checkpoints_dir', tmp_path, *TINY_NET, '--n_epochs', 1, '--n_epochs_decay', 0, '--print_freq', 2,
               env={'GLOO_SOCKET_IFNAME': 'lo'}, timeout=LAUNCH_GUARD)
    state = torch.load(tmp_path / 'tr' / 'latest_net_G.pth', weights_only=True)
    assert list(state) == list(networks.define_G(3, 3, 8, 'unet_32', 'batch', True).state_dict())
    log = (tmp_path / 'tr' / 'loss_log.txt').read_text()
    assert log.count('(epoch: 1, iters: 2,') == 1 and log.count('(epoch: 1, iters: 4,') == 1  # 2 ranks x 2 images
    assert proc.stdout.count('End of epoch 1 / 1') == 1  # printed by rank 0 alone


def test_a_rank_that_fails_ends_every_process_in_seconds(tmp_path):
    # --dist_timeout far beyond the guard: the ranks must notice the failure itself, not wait it out.
    with two_ranks_training(tmp_path, dist_timeout=3600) as ranks:
        image = tmp_path / 'data' / 'train' / '001.png'  # in rank 1's share: it breaks mid-run
        image.write_bytes(image.read_bytes()[:60])
        codes = [p.popen.wait(LAUNCH_GUARD) for p in ranks]
    assert codes[1] == 1 and 'cannot read image' in ranks[1].log() and '001.png' in ranks[1].log()
    assert codes[0] != 0 and 'error: process 0 of 2 stopped: an exchange with the other processes' in ranks[0].log()
    assert 'an exchange with the other processes' not in ranks[1].log()  # its own error, told as it is


def test_a_stalled_rank_makes_the_others_fail_after_the_timeout(tmp_path):
    with two_ranks_training(tmp_path, dist_timeout=5) as ranks:
        os.kill(ranks[0].pid, signal.SIGSTOP)  # alive but silent, as a rank stuck in a driver or on a dead node
        code = ranks[1].popen.wait(LAUNCH_GUARD)
    # gloo words a timeout in several ways; the explanation after the traceback is ours, shown on rank 1 too
    assert code != 0 and 'error: process 1 of 2 stopped: an exchange with the other processes failed' in ranks[1].log()
    assert '--dist_timeout 5 s' in ranks[1].log()


def test_ranks_other_than_0_print_errors_only(capsys, monkeypatch):
    monkeypatch.setattr(builtins, 'print', print)
    distributed.print_on_main_only(False)
    print('a loss line')
    print('a progress line', file=sys.stdout)
    print('error: a bad image', file=sys.stderr)
    assert capsys.readouterr() == ('', 'error: a bad image\n')


def raised_in(filename, error):
    """(type, error, traceback) of error raised from code that claims to live in filename."""
    try:
        exec(compile('raise error', filename, 'exec'), {'error': error})
    except type(error) as e:
        return type(e), e, e.__traceback__


@pytest.mark.parametrize('filename, error, explained', [
    # gloo's timeout inside DDP's buffer broadcast: a plain RuntimeError, no gloo in its text
    (os.path.join(os.path.dirname(torch.nn.parallel.__file__), 'distributed.py'),
     RuntimeError('Application timeout caused pair closure'), True),
    # from the C++ reducer in backward(): no Python frame of torch.distributed, gloo's path in the text
    (__file__, RuntimeError('[../gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 5000ms'), True),
    (__file__, torch.distributed.DistBackendError('NCCL communicator was aborted'), True),
    (__file__, RuntimeError('mat1 and mat2 shapes cannot be multiplied'), False),  # a process's own error
])
def test_errors_from_exchanges_are_explained_after_the_traceback(filename, error, explained, capsys, monkeypatch):
    monkeypatch.setattr(sys, 'excepthook', sys.__excepthook__)
    monkeypatch.setattr(builtins, 'print', print)
    distributed.print_on_main_only(False)  # as on rank 1: its print() to stdout is silenced
    distributed.explain_failed_exchanges(1, 4, 30)
    sys.excepthook(*raised_in(filename, error))
    printed = capsys.readouterr().err
    assert str(error) in printed and 'Traceback' in printed
    assert ('error: process 1 of 4 stopped: an exchange with the other processes failed' in printed) == explained
    assert ('--dist_timeout 30 s' in printed) == explained


def test_a_group_that_cannot_form_times_out_with_a_clear_message(tmp_path):
    data = make_aligned_pairs(str(tmp_path / 'data'), count=1, size=32, phases=('train',))
    [rank0] = start_ranks(tmp_path, 2, ['--dataroot', data, '--name', 'run', '--checkpoints_dir', tmp_path, *TINY_NET,
                                        '--dist_timeout', 2], ranks=[0])  # rank 1 never comes
    try:
        code = rank0.popen.wait(LAUNCH_GUARD)
    finally:
        rank0.stop()
    log = rank0.log()
    assert code == 1 and 'Traceback' not in log
    assert 'process 0 of 2 could not form the process group' in log and '--dist_timeout 2 s' in log
    assert 'Start all 2 processes' in log
    assert not (tmp_path / 'run').exists()  # nothing written


def test_syncbatch_on_cpu_is_refused_with_what_to_use_instead(tmp_path):
    data = make_aligned_pairs(str(tmp_path / 'data'), count=1, size=32, phases=('train', 'test'))
    with pytest.raises(UserError) as refused:
        TrainOptions().parse(['--dataroot', data, '--checkpoints_dir', str(tmp_path), '--norm', 'syncbatch',
                              '--device', 'cpu'])
    message = str(refused.value)
    assert 'needs CUDA' in message and 'use --norm batch' in message and '--norm instance' in message
    # A model trained with syncbatch on GPUs is tested anywhere: outside a process group it is batch norm.
    opt = TestOptions().parse(['--dataroot', data, '--checkpoints_dir', str(tmp_path), '--norm', 'syncbatch',
                               '--device', 'cpu', '--netG', 'unet_32'])
    G = networks.define_G(3, 3, 8, opt.netG, opt.norm, False).eval()
    assert G(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)
