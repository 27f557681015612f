"""Exact resume: where training stands (Progress) and the file that holds everything to continue it.

Every latest save writes, after the reference-compatible latest_net_G.pth and latest_net_D.pth,
checkpoints/NAME/latest_train_state.pth: the model's state (networks, weight averages, optimizers,
schedulers, gradient scaler: BaseModel.state_dict), the counters, the plateau loss's running sum
(training/plateau.py), what validation knows (--val_freq:
training/validation.py), the options (JSON) and the random states of every process. It is one file
renamed into place, so it is always a consistent snapshot whatever moment a crash hits; --continue_train
takes everything from it (the networks included, so it never pairs new weights with old moments) and the
net files serve test.py and the reference. It loads with torch.load(weights_only=True): tensors, numbers
and strings only.

Resuming re-creates the interrupted epoch's data order from (seed, epoch), which is all the sampler's
shuffle depends on, and starts the sampler after the samples already seen, so they are not even loaded.
Crops and flips come from (seed, epoch, sample index) and the DataLoader draws from a generator of its
own, so the random states put back at the start are all the training process needs, with or without
DataLoader workers.
"""
import json
import os
from dataclasses import dataclass

import torch

from training.guards import LossWatch
from training.random_states import rng_states, set_rng_states
from util.distributed import gather, is_main, rank, world_size
from util.errors import UserError
from util.files import atomic_torch_save, ensure_writable, options_dict, remove_stale_temporaries

STATE_FILE = 'latest_train_state.pth'
FORMAT = 1


@dataclass
class Progress:
    """Where training stands, counted in samples over all processes."""
    epoch: int
    epoch_iter: int = 0  # samples seen in this epoch
    total_iters: int = 0  # samples seen since the run began
    batch: int = 0  # samples in the last step

    def begin_epoch(self, epoch):
        """Start epoch; the interrupted epoch a resumed run begins with keeps what it had seen. Returns
        whether the epoch is a fresh one."""
        fresh = epoch != self.epoch
        if fresh:
            self.epoch, self.epoch_iter = epoch, 0
        return fresh

    def step(self, batch):
        self.batch = batch
        self.total_iters += batch
        self.epoch_iter += batch

    def crossed(self, freq):
        """True when total_iters just passed a multiple of freq."""
        return self.total_iters // freq != (self.total_iters - self.batch) // freq

    def state_dict(self):
        return {'epoch': self.epoch, 'epoch_iter': self.epoch_iter, 'total_iters': self.total_iters}

    @classmethod
    def from_state_dict(cls, saved):
        return cls(saved['epoch'], saved['epoch_iter'], saved['total_iters'])


class TrainingState:
    """The run's Progress, restored from the last save with --continue_train and written at every save.

    train.py makes one right after the configuration is resolved (it checks that the checkpoint folder is
    writable and, when resuming, reads the state to resume from), calls restore(saver, plateau) once the model
    is set up, then per epoch calls begin_epoch, iterates batches(loader), counting each step(), and calls save().
    """

    def __init__(self, opt):
        self.opt = opt
        self.dir = os.path.join(opt.checkpoints_dir, opt.name)
        self.path = os.path.join(self.dir, STATE_FILE)
        ensure_writable(self.dir)
        if is_main():
            remove_stale_temporaries(self.dir)
        self.progress = Progress(epoch=opt.epoch_count)
        self.saved = self.read_for_resume() if opt.continue_train else None
        self.saved_iters = None  # total_iters of the newest good latest checkpoint, if any
        self.losses = LossWatch()
        self.validation = {}  # the last validated epoch, its scores and the best ones (training/validation.py)

    def read_for_resume(self):
        path = resume_file(self.opt)
        if path is None:
            print(f'--continue_train from epoch {self.opt.epoch} (iter {self.opt.load_iter}): only the network '
                  f'weights are loaded; the optimizers start afresh at --epoch_count {self.opt.epoch_count}'
                  if self.opt.epoch != 'latest' or self.opt.load_iter > 0 else
                  f'--continue_train: no {self.path} (a reference checkpoint, or saved by an older version): only '
                  f'the network weights are loaded; the optimizers start afresh at --epoch_count {self.opt.epoch_count}')
            return None
        return load(path)

    def restore(self, saver, plateau):
        """Take the model (saver.model, written through saver: training/saving.py) and the Plateau that save()
        writes from now on. With --continue_train and a state file: put back the model's state, the counters,
        the plateau sum and this process's random states."""
        self.saver, self.plateau = saver, plateau
        if self.saved is None:
            return
        saved, self.saved = self.saved, None
        model = saver.model
        model.load_state_dict(saved)
        # The configuration has the saved --lr, --lr_D and --beta1 unless typed (options/resolution.py); a typed
        # one rescales the whole schedule, e.g. to resume a diverged run more gently.
        saved_rates = model.optimizer_rates(json.loads(saved['options']))
        rates = model.optimizer_rates(vars(self.opt))
        model.retune_optimizers([rate / saved_rate for rate, saved_rate in zip(rates, saved_rates)], self.opt.beta1)
        self.progress = Progress.from_state_dict(saved)
        plateau.load_state_dict(saved)
        self.saved_iters = self.progress.total_iters
        self.validation = saved.get('validation', {})  # absent from saves made before validation existed
        ranks = saved['rng']
        if len(ranks) == world_size():
            set_rng_states(ranks[rank()])
        else:
            print(f'note: saved by {len(ranks)} process(es), resumed by {world_size()}: the random states are '
                  f'not restored, so dropout differs from an uninterrupted run')
        print(f'resuming from {self.path}: epoch {self.progress.epoch}, {self.progress.epoch_iter} samples into it, '
              f'total_iters {self.progress.total_iters}')

    def begin_epoch(self, epoch, device):
        """Start epoch; the interrupted epoch a resumed run begins with keeps the samples it had seen and its
        plateau sum."""
        self.plateau.begin_epoch(self.progress.begin_epoch(epoch), device)

    def batches(self, loader):
        """This epoch's batches in the order (seed, epoch) gives, without those an interrupted epoch saw."""
        loader.sampler.set_epoch(self.progress.epoch)
        # epoch_iter counts the samples of all processes; each one skips its own share.
        loader.sampler.start_index = self.progress.epoch_iter // loader.sampler.num_replicas
        return loader

    def step(self, batch, losses):
        """Count a step of batch samples (over all ranks): into progress, the plateau sum, and the NaN/Inf
        watch (noted on the device; checked when printing or saving)."""
        self.progress.step(batch)
        self.plateau.add(losses, batch)
        self.losses.update(losses, self.progress.epoch, self.progress.total_iters)

    def check_losses(self):
        """Stop with a clear message if a loss was NaN or Inf since the last check (one host sync)."""
        bad = self.losses.first_bad()
        if bad is None:
            return
        epoch, iteration, values = bad
        kept = (f'the latest checkpoint (total_iters {self.saved_iters}) is kept as it was'
                if self.saved_iters is not None else 'no checkpoint was written by this run')
        raise UserError(f'a loss became NaN or Inf at iteration {iteration} (epoch {epoch}): '
                        f'{", ".join(f"{k} {v:g}" for k, v in values.items())}. Training stopped without '
                        f'saving; {kept} in {self.dir}. Lower --lr (now {self.opt.lr:g}) or check the data, '
                        f'then start again or resume with --continue_train.')

    def save(self):
        """Write latest_net_*.pth, then latest_train_state.pth. Every process calls it (DDP: the random
        states of all ranks are gathered); the main process writes."""
        self.check_losses()  # never replace a good checkpoint with a diverged one
        states = gather(rng_states())
        if is_main():
            self.saver.save('latest')
            atomic_torch_save({
                'format': FORMAT,
                **self.progress.state_dict(),
                **self.plateau.state_dict(),
                **self.saver.model.state_dict(),
                'options': json.dumps(options_dict(self.opt), sort_keys=True),
                'validation': self.validation,
                'rng': states,
            }, self.path)
        self.saved_iters = self.progress.total_iters

    def save_and_exit(self, stop):
        """After SIGINT/SIGTERM (guards.StopSignals): save unless this iteration was just saved, then exit."""
        if self.saved_iters != self.progress.total_iters:
            self.save()
        print(f'stopped by {stop.name} at epoch {self.progress.epoch}, total_iters {self.progress.total_iters}; '
              f'the latest checkpoint holds everything: continue with the same command plus --continue_train',
              flush=True)
        raise SystemExit(128 + stop.signum)


def resume_file(opt):
    """The training state --continue_train resumes exactly from, or None: only from --epoch latest, and only
    when the file exists (a reference checkpoint has none)."""
    path = os.path.join(opt.checkpoints_dir, opt.name, STATE_FILE)
    if not opt.continue_train or opt.epoch != 'latest' or opt.load_iter > 0 or not os.path.exists(path):
        return None
    return path


def saved_options(path):
    """The options the training state at path was saved with. Memory-mapped: the networks are not read."""
    return json.loads(load(path, mmap=True)['options'])


def load(path, mmap=False):
    try:
        saved = torch.load(path, map_location='cpu', weights_only=True, mmap=mmap)
    except Exception as e:  # truncated zip, refused pickle global, ...
        raise UserError(f'cannot load the training state {path}: {str(e).splitlines()[0]}. It is corrupt or '
                        f'not a training state; delete it to continue from latest_net_*.pth alone '
                        f'(fresh optimizers, not an exact resume).')
    if not isinstance(saved, dict) or saved.get('format') != FORMAT:
        raise UserError(f'{path} is not a training state this version can read (format '
                        f'{saved.get("format") if isinstance(saved, dict) else "unknown"}); delete it to '
                        f'continue from latest_net_*.pth alone.')
    return saved
