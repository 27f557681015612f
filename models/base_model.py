"""What every model shares: devices, saving and loading networks, schedules, visuals and losses.

A model is models/NAME_model.py with NAMEModel(BaseModel). It must define (models.create_model checks it,
with missing_parts below):
    set_input(data)            take a loader batch: G's input, the target if any, image_paths
    forward()                  the outputs, through self.generate(self.netG, input)
    optimize_parameters()      one training step (a model that trains)
    netG                       the generator: test.py, validation and export.py run it
    loss_names, visual_names, model_names   names of its attributes loss_<name>, <visual> and net<name>
                               (losses: a model that trains)
    visual_roles               {'input': visual, 'output': visual, 'target': visual}: G's input, its output and
                               what the output should be (no 'target': nothing to score against)
It may override:
    modify_commandline_options(parser, is_train)   its flags and defaults
    validate_options(opt)      its flags' checks (UserError), made while the configuration is resolved
    generator_input(data)      G's input in a loader batch (--ema_bn_images recomputes statistics with it)
    plateau_loss               the loss whose epoch mean --lr_policy plateau follows (None: none)
    optimizer_rates(options)   each optimizer's starting learning rate (pix2pix: --lr for G, --lr_D for D)
    translates_label_maps      True when its input may be a label map (the semantic score, --segmenter)
    get_current_visuals()      e.g. to make pictures of its tensors (colorization)
    begin_epoch(epoch)         told at the start of each training epoch (pix2pix: --niter_fix_global)

What training uses of a model:
    begin_epoch(epoch), set_input(data), optimize_parameters(), update_averages()   an epoch, a step
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

from models import checkpoint, networks, tiling
from util.devices import keep_freed_memory
from util.files import atomic_torch_save


class BaseModel:
    translates_label_maps = False

    def __init__(self, opt):
        self.opt = opt
        self.is_train = opt.is_train
        self.device = torch.device(opt.device)
        self.save_dir = os.path.join(opt.checkpoints_dir, opt.name)
        self.loss_names, self.model_names, self.visual_names = [], [], []
        self.optimizers, self.schedulers = [], []
        self.averages = {}  # name -> WeightAverage of a trained network, saved as <epoch>_net_<name>.pth
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

    @staticmethod
    def validate_options(opt):
        """Raise UserError for an impossible setting of the flags this model adds (the general checks are
        options/checks.py's)."""

    def begin_epoch(self, epoch):
        """train.py calls it as each epoch (1, 2, ...) begins, a resumed one included."""

    def networks(self):
        """{name: network}, as the attributes net<name> hold them (inside DDP once wrapped)."""
        return {name: getattr(self, 'net' + name) for name in self.model_names}

    def wrap_networks(self, wrap):
        """Replace each network by wrap(network), e.g. distributed.wrap for DDP."""
        for name, net in self.networks().items():
            setattr(self, 'net' + name, wrap(net))

    def setup(self, opt, plateau_mode='min'):
        """Load networks when testing or resuming, make the schedulers, print the networks, then apply
        the speed settings (docs/performance.md). plateau_mode: --lr_policy plateau's 'min' or 'max'
        (training/plateau.py)."""
        if self.is_train:
            self.schedulers = [networks.get_scheduler(optimizer, opt, plateau_mode) for optimizer in self.optimizers]
        if not self.is_train or opt.continue_train:
            self.load_networks(checkpoint.file_prefix(opt))
        if not self.is_train:
            for net in self.networks().values():
                networks.set_test_mode(net, 'eval' if opt.eval else 'paper')  # test.py's --eval, or the paper's
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

    def test(self):
        """Forward without gradients, for any image size the generator can take after padding."""
        with torch.inference_mode(), self.autocast():
            self.forward()

    def generate(self, netG, x):
        """netG(x), whole (generate_whole) or, testing with --tile, in overlapping tiles of that size blended
        together (models/tiling.py) when x is larger."""
        tile = getattr(self.opt, 'tile', 0)
        if tile and not self.is_train and max(x.shape[-2:]) > tile:
            # Tiles start on the generator's grid of strides, so that each is computed as the whole image would
            # be there: exact for a generator of bounded reach, and for a U-Net (whose reach spans the tile) far
            # closer than tiles off its grid (docs/performance.md, "Large images").
            return tiling.translate(lambda tiles: self.generate_whole(netG, tiles), netG, x, tile,
                                    self.opt.tile_overlap, self.opt.tile_batch, generator_size_multiple(self.opt))
        return self.generate_whole(netG, x)

    def generate_whole(self, netG, x):
        """netG(x), padding x to a size the generator accepts and cropping the output back."""
        multiple = generator_size_multiple(self.opt)
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

    def save_networks(self, prefix, names=None, averages=None):
        """Save each network and weight average (or those in names) as a plain CPU state_dict, in the
        reference's file names and format. averages: {name: network} saved in place of those weight
        averages (training/saving.py: with recomputed batch norm statistics)."""
        os.makedirs(self.save_dir, exist_ok=True)
        nets = {name: unwrap(net) for name, net in self.networks().items()}
        nets.update({name: average.net for name, average in self.averages.items()})
        nets.update(averages or {})
        for name, net in nets.items():
            if names is None or name in names:
                atomic_torch_save(cpu_state(net), self.network_file(prefix, name))
        checkpoint.save_architecture(self.opt, self.model_names)

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
        networks.set_test_mode(net, 'paper')
        try:
            yield
        finally:
            networks.set_training_mode(net)
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


def missing_parts(model):
    """What the model lacks of what it must define (the module docstring), as phrases naming each part."""
    methods = ('set_input', 'forward') + (('optimize_parameters',) if model.is_train else ())
    missing = [f'{name}()' for name in methods if not callable(getattr(model, name, None))]
    lists = ('visual_names', 'model_names') + (('loss_names',) if model.is_train else ())
    missing += [f'{name} (empty)' for name in lists if not getattr(model, name)]
    missing += [f'net{name}' for name in ['G', *model.model_names] if not hasattr(model, 'net' + name)]
    roles = getattr(model, 'visual_roles', None)
    if roles is None:
        missing.append('visual_roles')
    elif not {'input', 'output'} <= set(roles) <= {'input', 'output', 'target'} or \
            not set(roles.values()) <= set(model.visual_names):
        missing.append(f"visual_roles naming its visual_names as 'input', 'output' and maybe 'target' "
                       f"(it has {roles})")
    return list(dict.fromkeys(missing))  # netG named once when model_names lists G too


def cpu_state(net):
    """net's state_dict on the CPU, in the default memory order (as without --channels_last)."""
    return {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}


def unwrap(net):
    """The plain network inside a DistributedDataParallel wrapper (checkpoints never hold 'module.')."""
    return getattr(net, 'module', net)


def generator_size_multiple(opt):
    """The multiple of which the sides of the generator's input must be (generate pads to it)."""
    return networks.size_multiple(opt.netG, opt.n_downsample_global, opt.n_local_enhancers)
