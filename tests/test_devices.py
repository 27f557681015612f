"""--device: auto picks CUDA, then Apple's GPU (MPS), then the CPU; a device that is missing is a clear error.

This machine has neither CUDA nor MPS, so the choice among present devices is tested by making torch
report them present; what happens on this machine's real torch is tested as a user meets it."""
import os

import pytest
import torch

from tests.scripts import REPO, run
from util import devices, distributed
from util.errors import UserError


def present(monkeypatch, cuda=False, mps=False):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: cuda)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: int(cuda))
    monkeypatch.setattr(torch.backends.mps, 'is_available', lambda: mps)
    monkeypatch.setattr(torch.backends.mps, 'is_built', lambda: True)


@pytest.mark.parametrize('cuda, mps, chosen', [(True, True, 'cuda'), (True, False, 'cuda'), (False, True, 'mps'),
                                               (False, False, 'cpu')])
def test_auto_prefers_cuda_then_mps_then_the_cpu(monkeypatch, cuda, mps, chosen):
    present(monkeypatch, cuda=cuda, mps=mps)
    assert devices.resolve('auto') == chosen


def test_an_explicit_device_is_kept_when_present(monkeypatch):
    present(monkeypatch, cuda=True, mps=True)
    assert [devices.resolve(d) for d in ('cpu', 'cuda', 'cuda:0', 'mps')] == ['cpu', 'cuda', 'cuda:0', 'mps']


def test_mps_on_a_mac_without_it_says_why(monkeypatch):
    present(monkeypatch)
    with pytest.raises(UserError, match=r'--device mps: .*not available here \(it needs an Apple silicon Mac'):
        devices.resolve('mps')


@pytest.mark.parametrize('device, message', [('cuda:1', 'this machine has 1 CUDA device'),
                                             ('gpu', 'choose auto, cpu, cuda, cuda:N or mps')])
def test_devices_that_cannot_be_had_are_refused(monkeypatch, device, message):
    present(monkeypatch, cuda=True)
    with pytest.raises(UserError, match=message):
        devices.resolve(device)


def test_train_py_with_mps_where_torch_has_none():
    """This machine's torch: a one-line error and a non-zero exit, before anything is written."""
    result = run('train.py', '--device', 'mps', '--name', 'no_mps', check=False)
    assert result.returncode == 1
    expected = "error: --device mps: Apple's GPU (MPS) is not available here"
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and result.stderr.startswith(expected)
    assert not os.path.exists(os.path.join(REPO, 'checkpoints', 'no_mps'))


def test_torchrun_with_mps_is_refused(monkeypatch):
    for name, value in (('RANK', '0'), ('WORLD_SIZE', '2'), ('LOCAL_RANK', '0')):
        monkeypatch.setenv(name, value)
    with pytest.raises(UserError, match='--device mps runs in one process'):
        distributed.setup('mps', 'env://', 5, 1)
