"""What every model shares: devices, saving and loading networks, schedules, visuals and losses.

A model names its pieces in lists (loss_names, visual_names, model_names) and this class finds the
attributes loss_<name>, <visual>, net<name> by those names. What train.py uses of a model:
    set_input(data), optimize_parameters(), update_averages()   one training step
    statistics_data                                              --ema_bn_images: a dataset, set by train.py
    get_current_losses(), get_current_visuals(), plateau_loss   what is shown, and what --lr_policy plateau follows
    networks(), wrap_networks(wrap)                              its networks by name; DDP wraps them
    state_dict(), load_state_dict(state)                         everything an exact resume needs
    save_networks(prefix), update_learning_rate(metric), learning_rate(), learning_rates()
    generators(), testing_with(net)                              what validation scores, and how
"""
import contextlib
import os
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch.utils.data import default_collate

from models import checkpoint, networks
from util.devices import keep_freed_memory
from util.errors import UserError
from util.files import atomic_torch_save


class BaseModel:
    def __init__(self, opt):
        self.opt = opt
        self.is_train = opt.is_train
        self.device = torch.device(opt.device)
        self.save_dir = os.path.join(opt.checkpoints_dir, opt.name)
        self.loss_names, self.model_names, self.visual_names = [], [], []
        self.optimizers, self.schedulers = [], []
        self.averages = {}  # name -> WeightAverage of a trained network, saved as <epoch>_net_<name>.pth
        self.statistics_data = None  # --ema_bn_images: the dataset the saved averages' statistics come from
        self.plateau_loss = None  # the loss name whose epoch mean --lr_policy plateau follows
        self.image_paths = []
        # --amp: the networks run in bfloat16/float16 inside self.autocast(); weights, gradients, optimizer
        # state and checkpoints stay float32, and losses are computed in float32.
        self.amp_dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(opt.amp)
        # float16 gradients can underflow, so the loss is scaled up before backward() and the gradients scaled
        # back before each step (steps with inf/NaN are skipped). Disabled, it passes everything through.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)

    @staticmethod
    def modify_commandline_options(parser, is_train):
        return parser

    # Subclasses define these four.
    def set_input(self, data):
        raise NotImplementedError

    def forward(self):
        raise NotImplementedError

    def optimize_parameters(self):
        raise NotImplementedError

    def networks(self):
        """{name: network}, as the attributes net<name> hold them (inside DDP once wrapped)."""
        return {name: getattr(self, 'net' + name) for name in self.model_names}

    def wrap_networks(self, wrap):
        """Replace each network by wrap(network), e.g. distributed.wrap for DDP."""
        for name, net in self.networks().items():
            setattr(self, 'net' + name, wrap(net))

    def setup(self, opt):
        """Load networks when testing or resuming, make the schedulers, print the networks, then apply
        the speed settings (docs/performance.md)."""
        if self.is_train:
            if opt.lr_policy == 'plateau' and opt.plateau_on == 'train' and self.plateau_loss is None:
                raise UserError(f'--lr_policy plateau follows a training loss, but --model {opt.model} names none; '
                                f'choose another --lr_policy, or follow validation scores (--plateau_on val)')
            self.schedulers = [networks.get_scheduler(optimizer, opt) for optimizer in self.optimizers]
        if not self.is_train or opt.continue_train:
            self.load_networks(checkpoint.file_prefix(opt))
        if not self.is_train:
            for net in self.networks().values():
                networks.normalize_each_image(net)
                if self.amp_dtype is not None:
                    networks.cast_convolutions(net, self.amp_dtype)
        self.print_networks(opt.verbose)
        keep_freed_memory()
        if self.device.type == 'cuda':
            torch.backends.cudnn.benchmark = True  # image sizes rarely change: time cuDNN's algorithms once
        for net in self.networks().values():
            if opt.channels_last:
                net.to(memory_format=torch.channels_last)  # in place: the optimizers keep the same tensors
            if opt.compile:
                net.compile(mode=opt.compile_mode)  # in place: state_dict keys and checkpoints are unchanged

    def autocast(self):
        """The precision the networks run in: float32, or bfloat16/float16 with --amp."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def adam(self, params, lr):
        """Adam with the paper's settings (lr, --beta1) and the kernel --adam_impl chooses."""
        impl = {'fused': {'fused': True}, 'foreach': {'foreach': True}, 'for_loop': {'foreach': False}}
        return torch.optim.Adam(params, lr=lr, betas=(self.opt.beta1, 0.999), **impl[self.opt.adam_impl])

    def optimizer_rates(self, options):
        """The learning rate each of self.optimizers starts from under these options (a dict of the
        options' values): --lr for all unless a model says otherwise."""
        return [options['lr']] * len(self.optimizers)

    def eval(self):
        for net in self.networks().values():
            net.eval()

    def train(self):
        for net in self.networks().values():
            net.train()

    def test(self):
        """Forward without gradients, for any image size the generator can take after padding."""
        with torch.inference_mode(), self.autocast():
            self.forward()

    def generate(self, netG, x):
        """netG(x), padding x to a size the generator accepts and cropping the output back."""
        multiple = generator_size_multiple(self.opt.netG)
        if self.opt.compile and self.opt.compile_mode in ('reduce-overhead', 'max-autotune'):
            # CUDA graphs replay into the same output memory: a step begins at G's forward, and the previous
            # step's outputs are not read after this point.
            torch.compiler.cudagraph_mark_step_begin()
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % multiple, (-w) % multiple
        if pad_h == 0 and pad_w == 0:
            return netG(x)
        # Reflection cannot pad more than the input's size; replicate covers any amount.
        mode = 'reflect' if pad_h < h and pad_w < w else 'replicate'
        return netG(F.pad(x, (0, pad_w, 0, pad_h), mode=mode))[..., :h, :w]

    def get_image_paths(self):
        return self.image_paths

    def update_learning_rate(self, metric=None):
        """Step every scheduler once per epoch; plateau watches metric (e.g. the epoch's mean L1) and waits
        when there is none (--plateau_on val between validations)."""
        for scheduler in self.schedulers:
            if self.opt.lr_policy != 'plateau':
                scheduler.step()
            elif metric is not None:
                scheduler.step(metric)
        return self.learning_rate()

    def learning_rate(self):
        return self.optimizers[0].param_groups[0]['lr']

    def learning_rates(self):
        """{network name: the current rate of its optimizer, optimizer_<name>}: G's and D's, which --lr_D
        sets apart."""
        return {name: getattr(self, 'optimizer_' + name).param_groups[0]['lr'] for name in self.model_names
                if hasattr(self, 'optimizer_' + name)}

    def get_current_visuals(self):
        return OrderedDict((name, getattr(self, name)) for name in self.visual_names)

    def get_current_losses(self):
        """Losses as tensors (no host sync here; call .item() only when printing)."""
        return OrderedDict((name, getattr(self, 'loss_' + name).detach()) for name in self.loss_names)

    def network_file(self, prefix, name):
        return os.path.join(self.save_dir, f'{prefix}_net_{name}.pth')

    def test_generator_from_suffix(self):
        """test.py --model_suffix S: netG is loaded from <epoch>_net_G<S>.pth (_ema: the weight average)."""
        self.model_names = ['G' + self.opt.model_suffix]
        setattr(self, 'netG' + self.opt.model_suffix, self.netG)

    def update_averages(self):
        """After each optimizer step: move the weight averages (--ema_decay) towards the new weights."""
        for average in self.averages.values():
            average.update()

    def state_dict(self):
        """Everything an exact resume needs of the model (training/state.py saves it with the counters):
        the networks, the weight averages, the optimizers, the schedulers and the gradient scaler."""
        return {
            'networks': {name: cpu_state(unwrap(net)) for name, net in self.networks().items()},
            'averages': {name: average.state_dict() for name, average in self.averages.items()},
            'optimizers': [optimizer.state_dict() for optimizer in self.optimizers],
            'schedulers': [scheduler.state_dict() for scheduler in self.schedulers],
            'grad_scaler': self.scaler.state_dict(),  # empty unless --amp fp16
        }

    def load_state_dict(self, state):
        for name, weights in state['networks'].items():
            unwrap(getattr(self, 'net' + name)).load_state_dict(weights)
        for optimizer, saved in zip(self.optimizers, state['optimizers']):
            optimizer.load_state_dict(saved)
        for scheduler, saved in zip(self.schedulers, state['schedulers']):
            scheduler.load_state_dict(saved)
        for name, average in self.averages.items():
            if name in state.get('averages', {}):
                average.load_state_dict(state['averages'][name])
            else:  # --ema_decay added on resuming: average from the weights reached so far
                print(f'note: the save has no {name}: the weight average starts from the resumed weights')
                average.restart()
        if state.get('grad_scaler'):  # --amp fp16: the loss scale it had found, not the default again
            self.scaler.load_state_dict(state['grad_scaler'])

    def retune_optimizers(self, lr_scales, beta1):
        """Scale each optimizer's learning rates by its factor in lr_scales, the schedule's included, and set
        Adam's beta1: for --lr, --lr_D and --beta1 typed on resuming. Scaling the current rate fits every
        policy (the linear, step and cosine rates are proportional to the base rate; plateau only ever
        multiplies the current one)."""
        for optimizer, scheduler, lr_scale in zip(self.optimizers, self.schedulers, lr_scales):
            for group in optimizer.param_groups:
                for key in ('lr', 'initial_lr'):  # initial_lr: where the linear/step/cosine schedules start from
                    if key in group:
                        group[key] *= lr_scale
                group['betas'] = (beta1, group['betas'][1])
            if hasattr(scheduler, 'base_lrs'):
                scheduler.base_lrs = [lr * lr_scale for lr in scheduler.base_lrs]

    def save_networks(self, prefix, names=None):
        """Save each network and weight average (or those in names) as a plain CPU state_dict, in the
        reference's file names and format."""
        os.makedirs(self.save_dir, exist_ok=True)
        nets = {name: unwrap(net) for name, net in self.networks().items()}
        nets.update({name: self.average_to_save(average) for name, average in self.averages.items()
                     if names is None or name in names})
        for name, net in nets.items():
            if names is None or name in names:
                atomic_torch_save(cpu_state(net), self.network_file(prefix, name))
        checkpoint.save_architecture(self.opt, self.model_names)

    def average_to_save(self, average):
        """The weight average as saved: with --ema_bn_images N and batch norm, with its running statistics
        recomputed over the first N samples of self.statistics_data (train.py gives it the training set)."""
        images = min(getattr(self.opt, 'ema_bn_images', 0), len(self.statistics_data or ()))
        if not images or self.opt.norm not in ('batch', 'syncbatch'):
            return average.net
        size = self.opt.batch_size  # the batches training normalises over
        batches = (self.generator_input(default_collate([self.statistics_data[i]
                                                         for i in range(start, min(start + size, images))]))
                   for start in range(0, images, size))
        with self.autocast():
            return average.with_recomputed_statistics(batches, self.generate)

    def load_networks(self, prefix):
        for name in self.model_names:
            net = unwrap(getattr(self, 'net' + name))
            path = self.network_file(prefix, name)
            print(f'loading the model from {path}')
            checkpoint.load_into(net, path, self.opt, role=name)
        for name, average in self.averages.items():  # resuming: the average saved with the weights, if any
            path = self.network_file(prefix, name)
            if os.path.exists(path):
                print(f'loading the weight average from {path}')
                checkpoint.load_into(average.net, path, self.opt, role=name)
            else:
                print(f'no {path}: the weight average starts again from the loaded weights')
                average.restart()

    def generators(self):
        """{name: generator} to validate: G (outside any DDP wrapper) and its weight average, if any."""
        return {'G': unwrap(self.netG), **{name: average.net for name, average in self.averages.items()}}

    @contextlib.contextmanager
    def testing_with(self, net):
        """test() runs net in netG's place, in the paper's test mode as test.py runs it: dropout on, and batch
        norm on each image's own statistics, which leaves the running statistics as training made them."""
        trained = self.netG
        self.netG = net
        networks.normalize_each_image(net)
        try:
            yield
        finally:
            networks.normalize_each_image(net, False)
            self.netG = trained

    def print_networks(self, verbose):
        for name in self.model_names:
            net = getattr(self, 'net' + name)
            if verbose:
                print(net)
            count = sum(p.numel() for p in net.parameters())
            print(f'[Network {name}] Total number of parameters : {count / 1e6:.3f} M')

    @staticmethod
    def set_requires_grad(nets, requires_grad=False):
        for net in nets if isinstance(nets, (list, tuple)) else [nets]:
            for param in net.parameters():
                param.requires_grad = requires_grad


def cpu_state(net):
    """net's state_dict on the CPU, in the default memory order (as without --channels_last)."""
    return {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}


def unwrap(net):
    """The plain network inside a DistributedDataParallel wrapper (checkpoints never hold 'module.')."""
    return getattr(net, 'module', net)


def generator_size_multiple(netG):
    return 2 ** networks.unet_depth(netG) if netG.startswith('unet_') else 4
