"""An exponential moving average (EMA) of a network's weights: train.py --ema_decay D.

    W_ema <- D * W_ema + (1 - D) * W        after every optimizer step

A GAN generator's weights never settle: each step of D moves G's target, so the last iterate carries
the noise of the last few hundred steps. Their average is a better generator than any one of them
(docs/quality.md: better L1, PSNR and SSIM on facades in both test modes, and no slower to train).
It is a second copy of the weights that is never trained; batch norm's running statistics are
averaged like the weights, so that in --eval mode the average normalises with statistics that
match it. It is saved beside the generator as <epoch>_net_G_ema.pth, a plain state_dict that
test.py loads with --model_suffix _ema (and the reference implementation with its --model test).
"""
import copy

import torch


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

    @torch.no_grad()
    def update(self):
        self.steps += 1
        if self.steps % self.every:
            return
        if self.steps == self.every:
            # The first update copies: the average starts from trained weights, which every DDP rank shares
            # (the random initial weights it was copied from differ by rank until DDP's first broadcast).
            decay = 0.0
        else:
            # Warm-up (as TensorFlow's ExponentialMovingAverage with num_updates): early on, average over
            # the steps so far rather than the full window, so the first weights fade fast.
            decay = min(self.decay, (1 + self.steps) / (10 + self.steps)) ** self.every
        averaged, live = self.tensor_pairs()
        floats = [i for i, t in enumerate(averaged) if t.is_floating_point()]
        torch._foreach_lerp_([averaged[i] for i in floats], [live[i] for i in floats], 1 - decay)
        for i in set(range(len(averaged))) - set(floats):  # counters such as num_batches_tracked
            averaged[i].copy_(live[i])

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

    def state_dict(self):
        return {'weights': {k: v.detach().cpu() for k, v in self.net.state_dict().items()}, 'steps': self.steps}

    def load_state_dict(self, state):
        self.net.load_state_dict(state['weights'])
        self.steps = state['steps']
