"""Command-line options shared by train.py and test.py.

The parser is built in two passes: the first reads --model and --dataset_mode, then the chosen
model and dataset add their own options or change defaults, and the second pass parses everything.
Flag names and defaults follow the reference implementation so that its scripts carry over.
"""
import argparse
import json
import os
import shutil
import sys

import torch

import data
import models
from data import demo
from models import discriminators, networks, perceptual
from options.recipes import apply_recipe
from util import devices
from util.display import tensorboard
from util.errors import UserError
from util.evaluation.scores import METRICS
from util.files import atomic_write_text, mkdirs, options_dict


class BaseOptions:
    is_train = None
    reads_data = True  # False for commands that use only the checkpoints (export.py, app.py): no demo data

    def initialize(self, parser):
        # Basic parameters
        parser.add_argument('--dataroot', default=None,
                            help='path to images (should have subfolders train, test, ...); '
                                 'omitted: a small generated demo dataset in datasets/demo')
        parser.add_argument('--name', type=str, default='experiment_name',
                            help='name of the experiment; checkpoints go to checkpoints_dir/name')
        parser.add_argument('--device', type=str, default='auto',
                            help='auto (CUDA, else Apple\'s GPU, else the CPU), cpu, cuda, cuda:N or mps')
        parser.add_argument('--gpu_ids', type=str, default=None,
                            help='reference-compatible device choice: -1 for CPU, 0 for cuda:0 '
                                 '(several ids: use torchrun, see README)')
        parser.add_argument('--checkpoints_dir', type=str, default='./checkpoints', help='models are saved here')
        parser.add_argument('--seed', type=int, default=None, help='random seed for python, numpy and torch')
        # Model parameters
        parser.add_argument('--model', type=str, default='pix2pix', help='which model: pix2pix | colorization | test')
        parser.add_argument('--input_nc', type=int, default=3, help='# of input image channels: 3 RGB, 1 grayscale')
        parser.add_argument('--output_nc', type=int, default=3, help='# of output image channels: 3 RGB, 1 grayscale')
        parser.add_argument('--ngf', type=int, default=64, help='# of gen filters in the last conv layer')
        parser.add_argument('--ndf', type=int, default=64, help='# of discrim filters in the first conv layer')
        parser.add_argument('--netD', type=str, default='basic',
                            help='discriminator: basic (70x70 PatchGAN) | n_layers | pixel | multiscale '
                                 "(pix2pixHD's: --num_D PatchGANs of --n_layers_D layers on the pair at full, "
                                 'half, quarter ... size)')
        parser.add_argument('--netG', type=str, default='resnet_9blocks',
                            help='generator: resnet_9blocks | resnet_6blocks | unet_256 | unet_128 | unet_N')
        parser.add_argument('--n_layers_D', type=int, default=3, help='only used if netD==n_layers or multiscale')
        parser.add_argument('--num_D', type=int, default=2, help='number of scales of --netD multiscale')
        parser.add_argument('--spectral_norm_D', action='store_true',
                            help="spectral normalisation of every convolution of D (SPADE's), on top of --norm")
        parser.add_argument('--upsample', choices=networks.UPSAMPLES, default='transpose',
                            help="the generator's x2 upsampling: transpose (the reference's transposed "
                                 'convolutions) or resize (nearest x2, then a 3x3 convolution: no checkerboard)')
        parser.add_argument('--norm', type=str, default='instance', help='instance | batch | syncbatch | none')
        parser.add_argument('--init_type', type=str, default='normal', help='normal | xavier | kaiming | orthogonal')
        parser.add_argument('--init_gain', type=float, default=0.02, help='scaling factor for normal, xavier, orthogonal')
        parser.add_argument('--no_dropout', action='store_true', help='no dropout for the generator')
        # Dataset parameters
        parser.add_argument('--dataset_mode', type=str, default='aligned', help='aligned | single | colorization')
        parser.add_argument('--direction', type=str, default='AtoB', help='AtoB or BtoA')
        parser.add_argument('--serial_batches', action='store_true',
                            help='take images in order to make batches, otherwise take them randomly')
        parser.add_argument('--num_threads', default=4, type=int, help='# threads for loading data')
        parser.add_argument('--batch_size', type=int, default=1, help='input batch size (per process under torchrun)')
        parser.add_argument('--load_size', type=int, default=286, help='scale images to this size')
        parser.add_argument('--crop_size', type=int, default=256, help='then crop to this size')
        parser.add_argument('--max_dataset_size', type=int, default=float('inf'),
                            help='maximum number of samples allowed per dataset')
        parser.add_argument('--preprocess', type=str, default='resize_and_crop',
                            help='resize_and_crop | crop | scale_width | scale_width_and_crop | none')
        parser.add_argument('--no_flip', action='store_true', help='do not flip the images for data augmentation')
        parser.add_argument('--display_winsize', type=int, default=256, help='display window size for visdom and HTML')
        # Additional parameters
        parser.add_argument('--epoch', type=str, default='latest',
                            help='which epoch to load: latest, a number, or for test.py best (the best validated '
                                 'generator, train.py --val_freq)')
        parser.add_argument('--load_iter', type=int, default=0,
                            help='if > 0, load iter_[load_iter] checkpoints instead of [epoch]')
        parser.add_argument('--verbose', action='store_true', help='print network details')
        parser.add_argument('--suffix', default='', type=str,
                            help='customized suffix: opt.name = opt.name + suffix, e.g. {model}_{netG}_size{load_size}')
        # Speed (docs/performance.md): none of these changes the saved weights, which stay float32
        parser.add_argument('--amp', choices=('none', 'bf16', 'fp16'), default='none',
                            help='mixed precision: run the networks in bfloat16 (CPUs with AVX-512 BF16 or AMX, '
                                 'recent GPUs) or float16 (CUDA only, with a gradient scaler) under autocast')
        parser.add_argument('--channels_last', action='store_true',
                            help='keep weights and activations in channels-last memory order (faster on GPUs '
                                 'with bf16/fp16; no gain in float32 on CPUs)')
        parser.add_argument('--compile', action='store_true',
                            help='torch.compile the networks: the first iterations take 30-60 s longer to compile')
        parser.add_argument('--compile_mode', choices=COMPILE_MODES, default='default',
                            help="torch.compile's mode with --compile; reduce-overhead replays each step as CUDA "
                                 'graphs (CUDA only), which helps where small batches leave the GPU waiting for '
                                 'kernel launches (docs/performance.md); max-autotune also autotunes kernels (longer '
                                 'compiles), with CUDA graphs on CUDA only')
        return parser

    def gather_options(self, argv):
        parser = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        parser = self.initialize(parser)
        opt, _ = parser.parse_known_args(argv)
        model_class = models.find_model_class(opt.model)
        parser = model_class.modify_commandline_options(parser, self.is_train)
        opt, _ = parser.parse_known_args(argv)  # the model may have changed --dataset_mode's default
        dataset_class = data.find_dataset_class(opt.dataset_mode)
        parser = dataset_class.modify_commandline_options(parser, self.is_train)
        self.parser = parser
        opt = parser.parse_args(argv)
        opt.explicit = explicit_options(parser, argv)
        return opt

    def parse(self, argv=None):
        """The options for argv (default: the command line), with defaults applied and checked. Reads and
        writes no file: the architecture saved with a checkpoint is taken by models.resolve_architecture."""
        argv = sys.argv[1:] if argv is None else argv
        opt = self.gather_options(argv)
        opt.is_train = self.is_train
        if opt.dataroot is None and self.reads_data:
            apply_demo_defaults(opt, self.parser)
        if self.is_train:
            apply_recipe(opt)
        if opt.suffix:
            opt.name = opt.name + '_' + opt.suffix.format(**vars(opt))
        resolve_device(opt)
        validate(opt)
        return opt

    def save_and_print(self, opt, file_stem):
        """Print the options (non-defaults marked) and write them as text and JSON beside the checkpoints."""
        lines = ['----------------- Options ---------------']
        for key, value in sorted(vars(opt).items()):
            if key == 'explicit':
                continue
            default = self.parser.get_default(key)
            comment = f'\t[default: {default}]' if value != default and default is not None else ''
            lines.append(f'{key:>25}: {str(value):<30}{comment}')
        lines.append('----------------- End -------------------')
        message = '\n'.join(lines)
        print(message)
        expr_dir = os.path.join(opt.checkpoints_dir, opt.name)
        mkdirs(expr_dir)
        atomic_write_text(os.path.join(expr_dir, f'{file_stem}.txt'), message + '\n')
        atomic_write_text(os.path.join(expr_dir, f'{file_stem}.json'),
                          json.dumps(options_dict(opt), indent=1, sort_keys=True) + '\n')


def explicit_options(parser, argv):
    """Names of the options the user typed (so saved or demo settings never override them)."""
    given = set()
    for action in parser._actions:
        for flag in action.option_strings:
            if any(token == flag or token.startswith(flag + '=') for token in argv):
                given.add(action.dest)
    return given


DEMO_SETTINGS = dict(load_size=64, crop_size=64, preprocess='resize_and_crop', netG='unet_64', ngf=32, ndf=32,
                     n_epochs=10, n_epochs_decay=10, batch_size=4, print_freq=400, save_epoch_freq=10,
                     display_freq=400, direction='AtoB')


def apply_demo_defaults(opt, parser):
    """No --dataroot: the demo set (data/demo.py makes it when the dataset is first built), with sizes that
    train in minutes on a CPU."""
    if opt.model not in ('pix2pix', 'test'):
        raise UserError(f'--dataroot is required for --model {opt.model} (the built-in demo data is for pix2pix)')
    opt.dataroot = demo.DEMO_ROOT
    if opt.model == 'test':
        opt.dataroot = os.path.join(opt.dataroot, 'testA')
    for key, value in DEMO_SETTINGS.items():
        if hasattr(opt, key) and key not in opt.explicit:
            setattr(opt, key, value)
    print(f'No --dataroot given: using the built-in demo dataset at {opt.dataroot}')


def resolve_device(opt):
    if opt.gpu_ids is not None and 'device' not in opt.explicit:
        first = opt.gpu_ids.split(',')[0].strip()
        opt.device = 'cpu' if first == '-1' else f'cuda:{first}'
    opt.device = devices.resolve(opt.device)


def validate(opt):
    """Catch impossible combinations here, with the fix, rather than as a tensor error deep inside."""
    checks = [
        (opt.direction in ('AtoB', 'BtoA'), f'--direction {opt.direction}: choose AtoB or BtoA'),
        (opt.norm in networks.NORMS, f'--norm {opt.norm}: choose from {", ".join(networks.NORMS)}'),
        (opt.netD in discriminators.NET_DS, f'--netD {opt.netD}: choose from {", ".join(discriminators.NET_DS)}'),
        (opt.netD == 'multiscale' or 'num_D' not in opt.explicit,
         f'--num_D {opt.num_D} is the number of scales of a multi-scale D: add --netD multiscale, or drop --num_D'),
        (opt.num_D >= 1, f'--num_D {opt.num_D}: give a number of scales, at least 1'),
        (opt.init_type in networks.INIT_TYPES, f'--init_type {opt.init_type}: choose from {", ".join(networks.INIT_TYPES)}'),
        (opt.preprocess in PREPROCESS_MODES, f'--preprocess {opt.preprocess}: choose from {", ".join(PREPROCESS_MODES)}'),
        (opt.batch_size >= 1, '--batch_size must be at least 1'),
        (opt.input_nc >= 1 and opt.output_nc >= 1, '--input_nc and --output_nc must be at least 1'),
    ]
    if opt.is_train:
        checks += [
            (opt.gan_mode in networks.GAN_MODES, f'--gan_mode {opt.gan_mode}: choose from {", ".join(networks.GAN_MODES)}'),
            (opt.lr_policy in networks.LR_POLICIES, f'--lr_policy {opt.lr_policy}: choose from {", ".join(networks.LR_POLICIES)}'),
            (opt.n_epochs >= 0 and opt.n_epochs_decay >= 0, '--n_epochs and --n_epochs_decay must not be negative'),
            (not (opt.continue_train and opt.epoch == 'best'),
             '--epoch best is the best validated generator alone (best_net_G.pth, for test.py); --continue_train '
             'needs D as well: resume from --epoch latest (the default) or a numbered epoch'),
        ]
        if opt.lr_D is not None:
            checks.append((opt.lr_D > 0, f'--lr_D {opt.lr_D}: give a positive learning rate, or drop --lr_D to use --lr'))
        if hasattr(opt, 'lambda_vgg'):
            checks += vgg_checks(opt)
            checks.append((opt.lambda_feat >= 0, f'--lambda_feat {opt.lambda_feat}: give a weight of 0 (off) or more'))
        checks += [
            (opt.val_freq >= 0, f'--val_freq {opt.val_freq}: give a number of epochs, or 0 for no validation'),
            (opt.val_max >= 1, f'--val_max {opt.val_max}: validate on at least 1 image'),
            (opt.plateau_on == 'train' or opt.lr_policy == 'plateau',
             f'--plateau_on val sets what --lr_policy plateau follows, but --lr_policy is {opt.lr_policy}; '
             f'add --lr_policy plateau or drop --plateau_on'),
            (opt.segmenter is None or opt.val_freq > 0,
             '--segmenter scores the validations, but there are none: add --val_freq N (or score the '
             'finished model with test.py --segmenter)'),
            (opt.val_metric in METRICS or opt.segmenter is not None,
             f'--val_metric {opt.val_metric} is a semantic score: add --segmenter PATH '
             f'(scripts/train_segmenter.py makes one)'),
            (opt.plateau_on == 'train' or opt.val_freq > 0,
             '--plateau_on val follows the validation scores, but there are none: add --val_freq N'),
        ]
        if opt.tensorboard:
            tensorboard.require()
        if hasattr(opt, 'ema_decay'):
            checks.append((0 <= opt.ema_decay < 1, f'--ema_decay {opt.ema_decay}: give a decay between 0 and 1, '
                                                   f'e.g. 0.999 (an average over about 1,000 steps), or 0 for none'))
            checks.append((opt.ema_every >= 1, f'--ema_every {opt.ema_every}: give a number of steps, at least 1'))
            checks.append((opt.ema_bn_images >= 0, f'--ema_bn_images {opt.ema_bn_images}: give a number of '
                                                   f'images, or 0 to keep the averaged statistics'))
            if opt.ema_bn_images and 'ema_bn_images' in opt.explicit:  # a recipe's value is harmless without them
                checks.append((opt.ema_decay > 0, f'--ema_bn_images recomputes the weight average\'s statistics, '
                                                  f'but there is no average: add --ema_decay 0.999, or drop --ema_bn_images'))
                checks.append((opt.norm in ('batch', 'syncbatch'),
                               f'--ema_bn_images recomputes batch norm statistics, but --norm {opt.norm} keeps '
                               f'none: drop --ema_bn_images, or train with --norm batch'))
    if 'crop' in opt.preprocess:
        checks.append((opt.crop_size <= opt.load_size,
                       f'--crop_size {opt.crop_size} is larger than --load_size {opt.load_size}: a crop cannot be '
                       f'larger than the image it is cut from; set --load_size to at least {opt.crop_size}'))
    if opt.amp == 'fp16' and not opt.device.startswith('cuda'):
        checks.append((False, f'--amp fp16 needs CUDA (--device is {opt.device}): CPUs run float16 slowly; '
                              f'use --amp bf16 there (fast on CPUs with AVX512-BF16 or AMX)'))
    if opt.amp == 'bf16' and opt.device == 'cpu' and not devices.cpu_has_bf16_instructions():
        print('warning: --amp bf16: this CPU has no bfloat16 instructions (AVX512-BF16 or AMX), so torch emulates '
              'them and training is several times slower than without --amp', file=sys.stderr)
    if opt.amp == 'bf16' and opt.device.startswith('cuda'):
        checks.append((torch.cuda.is_bf16_supported(), f'--amp bf16: {opt.device} has no bfloat16 support; use --amp fp16'))
    if opt.compile and opt.device == 'cpu' and not shutil.which(os.environ.get('CXX', 'g++')):
        checks.append((False, '--compile on the CPU needs a C++ compiler (g++, or the one $CXX names); install it '
                              '(apt-get install g++) or leave out --compile'))
    if opt.compile_mode != 'default':
        checks.append((opt.compile, f'--compile_mode {opt.compile_mode} is a mode of --compile: add --compile'))
    # Off CUDA, inductor skips the CUDA graphs of reduce-overhead and max-autotune and compiles the rest
    # (torch/_inductor/cudagraph_utils.py): max-autotune still autotunes, but reduce-overhead is left as default.
    if opt.compile_mode == 'reduce-overhead':
        checks.append((opt.device.startswith('cuda'), f'--compile_mode reduce-overhead only adds CUDA graphs, which '
                                                      f'torch skips off CUDA (--device is {opt.device}), so it '
                                                      f'would compile as --compile_mode default: use that'))
    if opt.is_train and opt.norm == 'syncbatch' and not opt.device.startswith('cuda'):
        # Testing needs no synchronisation: a syncbatch model runs anywhere as plain batch norm.
        checks.append((False, '--norm syncbatch needs CUDA (torch cannot synchronise BatchNorm on CPU); '
                              'use --norm batch (per-process statistics) or --norm instance'))
    try:
        networks.unet_depth(opt.netG) if opt.netG.startswith('unet_') else networks.resnet_blocks(opt.netG)
    except ValueError as e:
        raise UserError(f'--netG: {e}')
    for ok, message in checks:
        if not ok:
            raise UserError(message)


def vgg_checks(opt):
    get = perceptual.GET_WEIGHTS
    if not opt.lambda_vgg:
        return [(opt.vgg_weights is None, "--vgg_weights is used only by the VGG loss: add --lambda_vgg 10 "
                                          "(pix2pixHD's weight), or drop --vgg_weights")]
    return [
        (opt.lambda_vgg > 0, f'--lambda_vgg {opt.lambda_vgg}: give a weight of 0 (off) or more'),
        (opt.vgg_weights is not None, f'--lambda_vgg needs --vgg_weights PATH: {get} (nothing is downloaded for you)'),
        (opt.vgg_weights is None or os.path.isfile(opt.vgg_weights), f'--vgg_weights {opt.vgg_weights}: no such file; {get}'),
        (opt.output_nc in (1, 3), f'--lambda_vgg compares RGB or gray images, but --output_nc is {opt.output_nc} '
                                  f'(--model {opt.model}); drop --lambda_vgg'),
    ]


COMPILE_MODES = ('default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs')
PREPROCESS_MODES = ('resize_and_crop', 'crop', 'scale_width', 'scale_width_and_crop', 'none')
