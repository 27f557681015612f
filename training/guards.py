"""What stops training cleanly: a NaN or Inf loss (stop without saving it) and SIGINT/SIGTERM (save the
latest checkpoint after the current iteration, then exit)."""
import os
import signal
import sys

import torch
import torch.distributed as dist


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


class StopSignals:
    """Catches SIGINT and SIGTERM from its creation on: the first asks training to save and exit after the
    current iteration, a second stops the process at once (files are replaced atomically, so none is torn)."""

    def __init__(self, device):
        self.device = device
        self.signum = None
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self.on_signal)

    def on_signal(self, signum, frame):
        if self.signum is not None:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signum = signum
        # os.write, not print: the handler can run while the main code is inside a print.
        os.write(sys.stderr.fileno(), f'\n{signal.Signals(signum).name} received: saving the latest checkpoint '
                                      f'after this iteration (send it again to stop at once)\n'.encode())

    def requested(self, agree_now):
        """True once a signal came. Several processes must stop at the same iteration, so under DDP they
        agree only when agree_now (at each --print_freq, where they exchange losses anyway)."""
        if not dist.is_initialized():
            return self.signum is not None
        if not agree_now:
            return False
        flag = torch.tensor(float(self.signum is not None), device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item() and self.signum is None:
            self.signum = signal.SIGTERM
        return bool(flag.item())

    @property
    def name(self):
        return signal.Signals(self.signum).name
