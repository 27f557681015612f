"""The random generators training draws from in the training process, saved and put back for an exact
resume. Crops and flips are not among them: they come from (seed, epoch, sample index) wherever the
sample is loaded (data/base_dataset.py), so DataLoader workers need no state of their own."""
import contextlib
import random

import numpy as np
import torch


def rng_states():
    """Python's, numpy's and torch's generators (and the accelerator's), as tensors and numbers, which
    torch.load(weights_only=True) can read back."""
    version, python_state, gauss_next = random.getstate()
    _, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    states = {
        'python': torch.tensor(python_state, dtype=torch.int64), 'python_version': version,
        'python_gauss': gauss_next,
        'numpy': torch.from_numpy(keys.astype(np.int64)), 'numpy_position': int(position),
        'numpy_has_gauss': int(has_gauss), 'numpy_gauss': float(cached_gaussian),
        'torch': torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state()  # this process's device (one per process under torchrun)
    if torch.backends.mps.is_available():
        states['mps'] = torch.mps.get_rng_state()
    return states


def set_rng_states(states):
    random.setstate((states['python_version'], tuple(states['python'].tolist()), states['python_gauss']))
    np.random.set_state(('MT19937', states['numpy'].numpy().astype(np.uint32), states['numpy_position'],
                         states['numpy_has_gauss'], states['numpy_gauss']))
    torch.set_rng_state(states['torch'])
    if 'cuda' in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states['cuda'])
    if 'mps' in states and torch.backends.mps.is_available():
        torch.mps.set_rng_state(states['mps'])


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def side_stream(device, seed):
    """Inside: torch's generators (the CPU's and the device's) seeded with seed; after: exactly as before.
    For work between training steps that draws random numbers (validation's dropout), so that the
    training's own streams go on as if it had not run."""
    devices = [] if device.type == 'cpu' else [device]
    with torch.random.fork_rng(devices=devices, device_type='cuda' if device.type == 'cpu' else device.type):
        torch.default_generator.manual_seed(seed)
        if device.type == 'cuda':  # this device's generator only: the others were not saved
            index = torch.cuda.current_device() if device.index is None else device.index
            torch.cuda.default_generators[index].manual_seed(seed)
        elif device.type == 'mps':
            torch.mps.manual_seed(seed)
        yield
