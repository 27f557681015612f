"""An exponential moving average (EMA) of a network's weights: train.py --ema_decay D.

    W_ema <- D * W_ema + (1 - D) * W        after every optimizer step

A GAN generator's weights never settle: each step of D moves G's target, so the last iterate carries
the noise of the last few hundred steps. Their average is a better generator than any one of them
(docs/quality.md: better L1, PSNR and SSIM on facades in both test modes, for under 1% more
training time).
It is a second copy of the weights that is never trained. Batch norm's running statistics are
averaged like the weights, but they remain statistics of the trained weights' activations, which the
averaged weights do not reproduce: in --eval mode the average then normalises with the wrong ones
(facades, docs/quality.md: mean IoU 0.203 in --eval mode against 0.231 in train mode). With
--ema_bn_images N they are recomputed for the saved copy over N training images, as SWA does
(torch.optim.swa_utils.update_bn, which keeps dropout on; --eval mode tests without it).
It is saved beside the generator as <epoch>_net_G_ema.pth, a plain state_dict that
test.py loads with --model_suffix _ema (and the reference implementation with its --model test).
"""
import copy

import torch
from torch import nn

from models import networks


class WeightAverage:
    def __init__(self, net, decay, every=1):
        self.source = net  # the network being trained (the same module inside a DDP wrapper or after compile)
        self.decay = decay
        # Averaging every Nth step with decay ** N follows the same average to within the noise it removes,
        # for 1/N of the cost (--ema_every): one lerp over unet_128's 42 M parameters takes about 10 ms on
        # 2 CPU cores, 6% of a bf16 training iteration at 128x128.
        self.every = every
        self.net = copy.deepcopy(net).requires_grad_(False)
        self.steps = 0
        self.recomputed = None  # (steps, copy) from with_recomputed_statistics, until the average moves

    @torch.no_grad()
    def update(self):
        self.steps += 1
        if self.steps % self.every:
            return
        # Bias-corrected, as Adam's moments: the k-th update keeps 1 - (1 - D) / (1 - D^k) of the average
        # (D = decay ** every), so the average always weighs the steps so far as D^age, normalised, with
        # no share left to the weights it started from. The first update is a copy (the random initial
        # weights differ by DDP rank until DDP's first broadcast; trained ones are the same on every rank),
        # and the decay tends to D once the run is a few windows long.
        updates = self.steps // self.every
        decay = self.decay ** self.every
        keep = 1 - (1 - decay) / (1 - decay ** updates)
        pairs = list(zip(*self.tensor_pairs()))
        floats = [(a, w) for a, w in pairs if a.is_floating_point()]
        torch._foreach_lerp_([a for a, _ in floats], [w for _, w in floats], 1 - keep)
        for averaged, live in pairs:
            if not averaged.is_floating_point():  # counters such as num_batches_tracked
                averaged.copy_(live)

    def tensor_pairs(self):
        # state_dict() each time: setup() may have moved the live weights (channels_last) since the last call.
        averaged, live = self.net.state_dict(), self.source.state_dict()
        return list(averaged.values()), [live[k].detach() for k in averaged]

    @torch.no_grad()
    def restart(self):
        """Start the average again from the live weights (e.g. resuming a run that had none)."""
        for averaged, live in zip(*self.tensor_pairs()):
            averaged.copy_(live)
        self.steps = 0
        self.recomputed = None

    @torch.no_grad()
    def with_recomputed_statistics(self, batches, generate):
        """A copy of the average whose batch norm running statistics are the mean, over batches (inputs of
        G), of the statistics each batch normalises with in training, and otherwise in eval mode (no
        dropout). The average itself is left as it is, so saving never changes the training (exact resume).
        The copy is reused until the average moves: train.py saves 'latest' and the epoch's files in turn."""
        if self.recomputed and self.recomputed[0] == self.steps:
            return self.recomputed[1]
        print("recomputing the weight average's batch norm statistics (--ema_bn_images)", flush=True)
        net = copy.deepcopy(self.net).eval()
        networks.normalize_each_image(net, False)  # per-image statistics would leave the running ones as they are
        norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        counters = [norm.num_batches_tracked.clone() for norm in norms]
        for norm in norms:
            if isinstance(norm, nn.SyncBatchNorm):
                # Only the saving process runs this pass, so there is no other rank to sync with; the
                # networks.BatchNorm2d class has the same parameters, buffers and state_dict keys.
                norm.__class__ = networks.BatchNorm2d
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative mean over the batches, not a moving one
            norm.train()
        for batch in batches:
            generate(net, batch)
        for norm, counter in zip(norms, counters):  # the file differs from the average by the statistics alone
            norm.num_batches_tracked.copy_(counter)
        self.recomputed = (self.steps, net.eval())
        return net

    def state_dict(self):
        return {'weights': {k: v.detach().cpu() for k, v in self.net.state_dict().items()}, 'steps': self.steps}

    def load_state_dict(self, state):
        self.net.load_state_dict(state['weights'])
        self.steps = state['steps']
        self.recomputed = None
