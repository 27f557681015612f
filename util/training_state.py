"""Exact resume, stop on SIGINT/SIGTERM, and a NaN guard for train.py.

Every latest save writes, after the reference-compatible latest_net_G.pth and latest_net_D.pth,
checkpoints/NAME/latest_train_state.pth: the networks again, the weight averages (--ema_decay) with
their step counts, both optimizers (Adam moments), the schedulers, the epoch, the samples seen in it,
total_iters, the options (JSON) and the random states (python, numpy, torch, CUDA). It is one file
renamed into place, so it is always a consistent snapshot whatever moment a crash hits;
--continue_train takes everything from it (the networks included, so it never pairs new weights with
old moments) and the net files serve test.py and the reference. It loads with
torch.load(weights_only=True): tensors, numbers and strings only.

Resuming re-creates the interrupted epoch's data order from (seed, epoch), which is all the
DistributedSampler's shuffle depends on, and starts the sampler after the samples already seen, so
they are not even loaded. The random states are put back after the epoch's DataLoader iterator is made
(making one draws from torch's generator), so crops, flips and dropout continue as if never stopped.
That is exact when the data is loaded in the training process (--num_threads 0, or no spare cores):
DataLoader workers draw crops and flips from generators of their own, which no checkpoint holds.
"""
import json
import os
import random
import re
import signal
import sys
import tempfile

import numpy as np
import torch
import torch.distributed as dist

from models.base_model import unwrap
from models.checkpoint import CheckpointError
from options.base_options import OptionError, options_dict
from util.distributed import is_main
from util.util import atomic_torch_save

STATE_FILE = 'latest_train_state.pth'
FORMAT = 1
# What util.util.atomic_write leaves behind when killed: .NAME.RANDOM.tmp
STALE_TEMPORARY = re.compile(r'^\..+\.(pth|json|txt)\.[^.]+\.tmp$')


class TrainingError(SystemExit):
    def __init__(self, message):
        super().__init__(f'error: {message}')


class TrainingState:
    """Where training stands: restored from the last save with --continue_train, written at every save.

    train.py makes one right after parsing the options (it checks that the checkpoint folder is
    writable and, when resuming, adopts the run's seed), calls start(model) once the model is set up,
    then per epoch iterates batches(loader, epoch), starting from the counters seen(epoch) gives.
    """

    def __init__(self, opt):
        self.opt = opt
        self.dir = os.path.join(opt.checkpoints_dir, opt.name)
        self.path = os.path.join(self.dir, STATE_FILE)
        ensure_writable(self.dir)
        if is_main():
            remove_stale_temporaries(self.dir)
        self.saved = self.read_for_resume() if opt.continue_train else None
        self.epoch, self.epoch_iter, self.total_iters, self.l1_sum = opt.epoch_count, 0, 0, 0.0
        self.saved_iters = None  # total_iters of the newest good latest checkpoint, if any
        self.rng = None  # random states to put back when the resumed epoch's iterator exists
        self.losses = LossWatch()
        self.stop_signal = None

    def read_for_resume(self):
        if self.opt.epoch != 'latest' or self.opt.load_iter > 0:
            print(f'--continue_train from epoch {self.opt.epoch} (iter {self.opt.load_iter}): only the network '
                  f'weights are loaded; the optimizers start afresh at --epoch_count {self.opt.epoch_count}')
            return None
        if not os.path.exists(self.path):
            print(f'--continue_train: no {self.path} (a reference checkpoint, or saved by an older version): only '
                  f'the network weights are loaded; the optimizers start afresh at --epoch_count {self.opt.epoch_count}')
            return None
        saved = load(self.path)
        options = json.loads(saved['options'])
        # The seed orders every epoch's data, and epoch_count shapes the learning-rate schedule: the run's own
        # values make the resumed run the same run.
        for key in ('seed', 'epoch_count'):
            if key in self.opt.explicit and getattr(self.opt, key) != options[key]:
                print(f'note: --{key} {getattr(self.opt, key)} ignored: resuming the run saved with '
                      f'--{key} {options[key]} (it decides the data order and the learning-rate schedule)')
            setattr(self.opt, key, options[key])
        # The optimizers come back with their own settings; a typed --lr or --beta1 replaces them (start()).
        for key in ('lr', 'beta1'):
            if key not in self.opt.explicit:
                setattr(self.opt, key, options[key])
        self.saved_lr = options['lr']
        current = options_dict(self.opt)
        changed = [f'--{k} {options[k]} -> {current[k]}' for k in sorted(options)
                   if k in current and current[k] != options[k] and k not in ('continue_train', 'explicit')]
        if changed:
            print('note: options changed since the save: ' + ', '.join(changed))
        return saved

    def start(self, model):
        """Put back what the save held (with --continue_train) and catch SIGINT/SIGTERM from now on."""
        if self.saved is not None:
            saved = self.saved
            for name, state in saved['networks'].items():
                unwrap(getattr(model, 'net' + name)).load_state_dict(state)
            for optimizer, state in zip(model.optimizers, saved['optimizers']):
                optimizer.load_state_dict(state)
            for scheduler, state in zip(model.schedulers, saved['schedulers']):
                scheduler.load_state_dict(state)
            for name, average in model.averages.items():
                if name in saved.get('averages', {}):
                    average.load_state_dict(saved['averages'][name])
                else:  # --ema_decay added on resuming: average from the weights reached so far
                    print(f'note: the save has no {name}: the weight average starts from the resumed weights')
                    average.restart()
            if saved.get('grad_scaler'):  # --amp fp16: the loss scale it had found, not the default again
                model.scaler.load_state_dict(saved['grad_scaler'])
            self.apply_typed_optimizer_options(model)
            self.epoch, self.epoch_iter, self.total_iters = saved['epoch'], saved['epoch_iter'], saved['total_iters']
            self.l1_sum, self.saved_iters = saved['l1_sum'], saved['total_iters']
            ranks = saved['rng']
            if len(ranks) == world_size():
                self.rng = ranks[rank()]
            else:
                print(f'note: saved by {len(ranks)} process(es), resumed by {world_size()}: the random states are '
                      f'not restored, so crops, flips and dropout differ from an uninterrupted run')
            print(f'resuming from {self.path}: epoch {self.epoch}, {self.epoch_iter} samples into it, '
                  f'total_iters {self.total_iters}')
            self.saved = None
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self.on_signal)

    def apply_typed_optimizer_options(self, model):
        """--lr and --beta1 typed with --continue_train: scale the whole schedule to the new rate, e.g. to
        resume a diverged run more gently. Scaling the current rate fits every policy (the linear, step
        and cosine rates are proportional to the base rate; plateau only ever multiplies the current one)."""
        scale = self.opt.lr / self.saved_lr
        for optimizer, scheduler in zip(model.optimizers, model.schedulers):
            for group in optimizer.param_groups:
                for key in ('lr', 'initial_lr'):  # initial_lr: where the linear/step/cosine schedules start from
                    if key in group:
                        group[key] *= scale
                group['betas'] = (self.opt.beta1, group['betas'][1])
            if hasattr(scheduler, 'base_lrs'):
                scheduler.base_lrs = [lr * scale for lr in scheduler.base_lrs]

    def seen(self, epoch, device):
        """(epoch_iter, l1_sum) at the start of epoch: what the save had seen of an interrupted epoch, else zero."""
        if epoch == self.epoch:
            return self.epoch_iter, torch.tensor(self.l1_sum, device=device)
        return 0, torch.zeros((), device=device)

    def batches(self, loader, epoch):
        """This epoch's batches in the order (seed, epoch) gives, without those an interrupted epoch saw."""
        loader.sampler.set_epoch(epoch)
        # epoch_iter counts the samples of all processes; each one skips its own share.
        loader.sampler.start_index = self.epoch_iter // loader.sampler.num_replicas if epoch == self.epoch else 0
        rng, self.rng = self.rng, None
        return EpochBatches(loader, rng)

    def watch(self, losses, epoch, total_iters):
        self.losses.update(losses, epoch, total_iters)

    def check_losses(self):
        """Stop with a clear message if a loss was NaN or Inf since the last check (one host sync)."""
        bad = self.losses.first_bad()
        if bad is None:
            return
        epoch, iteration, values = bad
        kept = (f'the latest checkpoint (total_iters {self.saved_iters}) is kept as it was'
                if self.saved_iters is not None else 'no checkpoint was written by this run')
        raise TrainingError(f'a loss became NaN or Inf at iteration {iteration} (epoch {epoch}): '
                            f'{", ".join(f"{k} {v:g}" for k, v in values.items())}. Training stopped without '
                            f'saving; {kept} in {self.dir}. Lower --lr (now {self.opt.lr:g}) or check the data, '
                            f'then start again or resume with --continue_train.')

    def save(self, model, epoch, epoch_iter, total_iters, l1_sum):
        """Write latest_net_*.pth, then latest_train_state.pth. Every process calls it (DDP: the random
        states of all ranks are gathered); the main process writes."""
        self.check_losses()  # never replace a good checkpoint with a diverged one
        states = gather(rng_states())
        if is_main():
            model.save_networks('latest')
            atomic_torch_save({
                'format': FORMAT,
                'epoch': epoch, 'epoch_iter': epoch_iter, 'total_iters': total_iters,
                'l1_sum': float(l1_sum),
                'networks': {name: cpu_state(unwrap(getattr(model, 'net' + name)).state_dict())
                             for name in model.model_names},
                'averages': {name: average.state_dict() for name, average in model.averages.items()},
                'optimizers': [optimizer.state_dict() for optimizer in model.optimizers],
                'schedulers': [scheduler.state_dict() for scheduler in model.schedulers],
                'grad_scaler': model.scaler.state_dict(),  # empty unless --amp fp16
                'options': json.dumps(options_dict(self.opt), sort_keys=True),
                'rng': states,
            }, self.path)
        self.saved_iters = total_iters

    def on_signal(self, signum, frame):
        if self.stop_signal is not None:  # a second signal: stop now (files are replaced atomically)
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.stop_signal = signum
        # os.write, not print: the handler can run while the main code is inside a print.
        os.write(sys.stderr.fileno(), f'\n{signal.Signals(signum).name} received: saving the latest checkpoint '
                                      f'after this iteration (send it again to stop at once)\n'.encode())

    def should_stop(self, total_iters, batch):
        """True once SIGINT or SIGTERM came. Several processes must stop at the same iteration, so under
        DDP they agree at each --print_freq (where they exchange losses anyway), not every iteration."""
        if not dist.is_initialized():
            return self.stop_signal is not None
        if total_iters // self.opt.print_freq == (total_iters - batch) // self.opt.print_freq:
            return False
        flag = torch.tensor(float(self.stop_signal is not None), device=self.opt.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item() and self.stop_signal is None:
            self.stop_signal = signal.SIGTERM
        return bool(flag.item())

    def save_and_exit(self, model, epoch, epoch_iter, total_iters, l1_sum):
        if self.saved_iters != total_iters:
            self.save(model, epoch, epoch_iter, total_iters, l1_sum)
        name = signal.Signals(self.stop_signal).name
        print(f'stopped by {name} at epoch {epoch}, total_iters {total_iters}; the latest checkpoint holds '
              f'everything: continue with the same command plus --continue_train', flush=True)
        raise SystemExit(128 + self.stop_signal)


class EpochBatches:
    """One epoch of a loader (with its length, for progress bars) that puts saved random states back right
    after making the iterator, since making it draws from torch's generator."""

    def __init__(self, loader, rng):
        self.loader, self.rng = loader, rng

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        iterator = iter(self.loader)
        if self.rng is not None:
            set_rng_states(self.rng)
        return iterator


class LossWatch:
    """Remembers, on the device and without a host sync, the first iteration whose losses were not all
    finite; first_bad() reads it (one sync), so the check costs nothing between prints and saves."""

    def __init__(self):
        self.names = None

    def update(self, losses, epoch, total_iters):
        values = torch.stack([v.detach().float().reshape(()) for v in losses.values()])
        if self.names is None:
            self.names = list(losses)
            self.bad_epoch = torch.full((), -1, dtype=torch.int64, device=values.device)
            self.bad_iter = torch.full((), -1, dtype=torch.int64, device=values.device)
            self.bad_values = torch.zeros_like(values)
        first = ~torch.isfinite(values).all() & (self.bad_iter < 0)
        self.bad_epoch = torch.where(first, epoch, self.bad_epoch)
        self.bad_iter = torch.where(first, total_iters, self.bad_iter)
        self.bad_values = torch.where(first, values, self.bad_values)

    def first_bad(self):
        """(epoch, total_iters, {loss: value}) of the first non-finite iteration, or None. Collective under DDP."""
        if self.names is None:
            return None
        bad_at = torch.stack([self.bad_epoch, self.bad_iter])
        if dist.is_initialized():  # every rank must stop if any must, or the others would wait forever
            dist.all_reduce(bad_at, op=dist.ReduceOp.MAX)
        epoch, iteration = bad_at.tolist()
        if iteration < 0:
            return None
        return epoch, iteration, dict(zip(self.names, self.bad_values.tolist()))


def ensure_writable(directory):
    """Fail at the start, with the fix, rather than at the first save hours later."""
    try:
        os.makedirs(directory, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=directory, prefix='.write_test.', suffix='.tmp')
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise OptionError(f'cannot write checkpoints to {directory}: {e.strerror or e}. Choose a writable '
                          f'--checkpoints_dir (or fix the permissions of that folder).')


def remove_stale_temporaries(directory):
    """Temporary files left by a process killed while saving (complete files are never touched)."""
    for name in os.listdir(directory):
        if STALE_TEMPORARY.match(name):
            os.remove(os.path.join(directory, name))


def load(path):
    try:
        saved = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # truncated zip, refused pickle global, ...
        raise CheckpointError(f'cannot load the training state {path}: {str(e).splitlines()[0]}. It is corrupt or '
                              f'not a training state; delete it to continue from latest_net_*.pth alone '
                              f'(fresh optimizers, not an exact resume).')
    if not isinstance(saved, dict) or saved.get('format') != FORMAT:
        raise CheckpointError(f'{path} is not a training state this version can read (format '
                              f'{saved.get("format") if isinstance(saved, dict) else "unknown"}); delete it to '
                              f'continue from latest_net_*.pth alone.')
    return saved


def cpu_state(state_dict):
    return {k: v.detach().cpu() for k, v in state_dict.items()}


def rng_states():
    """Every random generator training draws from, as tensors and numbers (weights_only can load them)."""
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
    return states


def set_rng_states(states):
    random.setstate((states['python_version'], tuple(states['python'].tolist()), states['python_gauss']))
    np.random.set_state(('MT19937', states['numpy'].numpy().astype(np.uint32), states['numpy_position'],
                         states['numpy_has_gauss'], states['numpy_gauss']))
    torch.set_rng_state(states['torch'])
    if 'cuda' in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states['cuda'])


def rank():
    return dist.get_rank() if dist.is_initialized() else 0


def world_size():
    return dist.get_world_size() if dist.is_initialized() else 1


def gather(value):
    """[value of rank 0, value of rank 1, ...] on every rank ([value] in a single process)."""
    if not dist.is_initialized():
        return [value]
    values = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values
