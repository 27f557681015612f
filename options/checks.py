"""The general checks of a resolved configuration: impossible combinations caught here, with the fix, rather
than as a tensor error deep inside. A model or dataset checks its own flags (validate_options); a command
its own (BaseOptions.check)."""
import os
import shutil
import sys

import torch

import data
import models
from models import discriminators, export, networks
from util import devices
from util.display import tensorboard
from util.errors import UserError
from util.evaluation.scores import METRICS
from util.value_mapping import parse_channels

COMPILE_MODES = ('default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs')
PREPROCESS_MODES = ('resize_and_crop', 'crop', 'scale_width', 'scale_width_and_crop', 'none')


def validate(opt):
    """Raise UserError for the first impossible setting: the general ones, then the model's and the dataset's."""
    for ok, message in general_checks(opt) + training_checks(opt) + speed_checks(opt):
        if not ok:
            raise UserError(message)
    check_generator_name(opt.netG)
    check_coarse_to_fine_options(opt)
    if getattr(opt, 'tile', 0):
        check_tiles(opt)
    if opt.is_train:
        check_training_image_size(opt)
    models.find_model_class(opt.model).validate_options(opt)
    data.find_dataset_class(opt.dataset_mode).validate_options(opt)


def general_checks(opt):
    checks = [
        (opt.direction in ('AtoB', 'BtoA'), f'--direction {opt.direction}: choose AtoB or BtoA'),
        (opt.norm in networks.NORMS, f'--norm {opt.norm}: choose from {", ".join(networks.NORMS)}'),
        (opt.netD in discriminators.NET_DS, f'--netD {opt.netD}: choose from {", ".join(discriminators.NET_DS)}'),
        (opt.netD == 'multiscale' or not opt.is_typed('num_D'),
         f'--num_D {opt.num_D} is the number of scales of a multi-scale D: add --netD multiscale, or drop --num_D'),
        (opt.num_D >= 1, f'--num_D {opt.num_D}: give a number of scales, at least 1'),
        (opt.init_type in networks.INIT_TYPES, f'--init_type {opt.init_type}: choose from {", ".join(networks.INIT_TYPES)}'),
        (opt.preprocess in PREPROCESS_MODES, f'--preprocess {opt.preprocess}: choose from {", ".join(PREPROCESS_MODES)}'),
        (opt.batch_size >= 1, '--batch_size must be at least 1'),
        (opt.input_nc >= 1 and opt.output_nc >= 1, '--input_nc and --output_nc must be at least 1'),
    ]
    if 'crop' in opt.preprocess:
        checks.append((opt.crop_size <= opt.load_size,
                       f'--crop_size {opt.crop_size} is larger than --load_size {opt.load_size}: a crop cannot be '
                       f'larger than the image it is cut from; set --load_size to at least {opt.crop_size}'))
    return checks + preview_checks(opt)


def preview_checks(opt):
    """--preview_channels: three channel numbers, each a channel of every side with more than three (a side of
    one to three channels is pictured whole, so the flag does not concern it)."""
    flag = f'--preview_channels {opt.preview_channels}'
    try:
        channels = parse_channels(opt.preview_channels)
    except ValueError:
        channels = ()
    if len(channels) != 3 or min(channels) < 0:
        return [(False, f'{flag}: name the three channels that pictures show as red, green and blue, as channel '
                        f'numbers from 0 separated by commas: for example 0,1,2 (the default) or 4,2,0')]
    input_side = 'B' if opt.direction == 'BtoA' else 'A'
    sides = [(input_side, 'input', opt.input_nc), ('A' if input_side == 'B' else 'B', 'output', opt.output_nc)]
    return [(max(channels) < count,
             f'{flag}: {side} (the {role}) has {count} channels, numbered 0 to {count - 1}; name three of them, '
             f'for example 0,1,2 (the default)')
            for side, role, count in sides if count > 3]


def training_checks(opt):
    if not opt.is_train:
        return []
    checks = [
        (opt.gan_mode in networks.GAN_MODES, f'--gan_mode {opt.gan_mode}: choose from {", ".join(networks.GAN_MODES)}'),
        (opt.lr_policy in networks.LR_POLICIES, f'--lr_policy {opt.lr_policy}: choose from {", ".join(networks.LR_POLICIES)}'),
        (opt.n_epochs >= 0 and opt.n_epochs_decay >= 0, '--n_epochs and --n_epochs_decay must not be negative'),
        (not (opt.continue_train and opt.epoch == 'best'),
         '--epoch best is the best validated generator alone (best_net_G.pth, for test.py); --continue_train '
         'needs D as well: resume from --epoch latest (the default) or a numbered epoch'),
        (opt.lr_D is None or opt.lr_D > 0, f'--lr_D {opt.lr_D}: give a positive learning rate, or drop --lr_D to use --lr'),
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
        # Testing needs no synchronisation: a syncbatch model runs anywhere as plain batch norm.
        (opt.norm != 'syncbatch' or opt.device.startswith('cuda'),
         '--norm syncbatch needs CUDA (torch cannot synchronise BatchNorm on CPU); use --norm batch (per-process '
         'statistics) or --norm instance'),
    ]
    if opt.tensorboard:
        tensorboard.require()
    return checks


def speed_checks(opt):
    checks = [
        (opt.amp != 'fp16' or opt.device.startswith('cuda'),
         f'--amp fp16 needs CUDA (--device is {opt.device}): CPUs run float16 slowly; use --amp bf16 there (fast on '
         f'CPUs with AVX512-BF16 or AMX)'),
        (not (opt.compile and opt.device == 'cpu' and not shutil.which(os.environ.get('CXX', 'g++'))),
         '--compile on the CPU needs a C++ compiler (g++, or the one $CXX names); install it (apt-get install g++) '
         'or leave out --compile'),
        (opt.compile_mode == 'default' or opt.compile,
         f'--compile_mode {opt.compile_mode} is a mode of --compile: add --compile'),
        # Off CUDA, inductor skips the CUDA graphs of reduce-overhead and max-autotune and compiles the rest
        # (torch/_inductor/cudagraph_utils.py): max-autotune still autotunes, but reduce-overhead is left as default.
        (opt.compile_mode != 'reduce-overhead' or opt.device.startswith('cuda'),
         f'--compile_mode reduce-overhead only adds CUDA graphs, which torch skips off CUDA (--device is '
         f'{opt.device}), so it would compile as --compile_mode default: use that'),
    ]
    if opt.amp == 'bf16' and opt.device.startswith('cuda'):
        checks.append((torch.cuda.is_bf16_supported(), f'--amp bf16: {opt.device} has no bfloat16 support; use --amp fp16'))
    if opt.amp == 'bf16' and opt.device == 'cpu' and not devices.cpu_has_bf16_instructions():
        print('warning: --amp bf16: this CPU has no bfloat16 instructions (AVX512-BF16 or AMX), so torch emulates '
              'them and training is several times slower than without --amp', file=sys.stderr)
    return checks


def check_generator_name(netG):
    if netG in networks.COARSE_TO_FINE:
        return
    try:
        networks.unet_depth(netG) if netG.startswith('unet_') else networks.resnet_blocks(netG)
    except ValueError as e:
        raise UserError(f'--netG: {e}')


def check_coarse_to_fine_options(opt):
    """pix2pixHD's generator options: counts that make a network, and typed only for the generators they shape."""
    users = {'n_downsample_global': networks.COARSE_TO_FINE, 'n_blocks_global': networks.COARSE_TO_FINE,
             'n_local_enhancers': ('local',), 'n_blocks_local': ('local',)}
    for name, netGs in users.items():
        if opt.is_typed(name) and opt.netG not in netGs:
            raise UserError(f'--{name} shapes --netG {" or ".join(netGs)}, not {opt.netG}: add --netG '
                            f'{netGs[-1]}, or drop --{name}')
    smallest = {'n_downsample_global': 1, 'n_blocks_global': 0, 'n_local_enhancers': 1, 'n_blocks_local': 0}
    for name, least in smallest.items():
        if getattr(opt, name) < least:
            raise UserError(f'--{name} {getattr(opt, name)}: give at least {least}')


def check_training_image_size(opt):
    """The networks must take the training images' size (with the architecture a resumed run was saved with)."""
    if opt.preprocess == 'none':
        return
    size = opt.crop_size if 'crop' in opt.preprocess else opt.load_size
    if opt.netD == 'multiscale' and opt.num_D > discriminators.scales_that_fit(size, opt.n_layers_D):
        fits = discriminators.scales_that_fit(size, opt.n_layers_D)
        raise UserError(f'--netD multiscale --num_D {opt.num_D}: a PatchGAN of --n_layers_D {opt.n_layers_D} needs '
                        f'{discriminators.patchgan_min_size(opt.n_layers_D)} pixels, so {size}-pixel training images '
                        f'leave room for {fits} scale(s) of halving; use ' +
                        (f'--num_D {fits}' if fits else 'larger images') + ' or a smaller --n_layers_D')
    if opt.netG in networks.COARSE_TO_FINE:
        need, smallest = export.size_rule(opt.netG, opt.n_downsample_global, opt.n_local_enhancers)
        if size % need or size < smallest:
            levels = '--n_downsample_global' + (' + --n_local_enhancers' if opt.netG == 'local' else '')
            raise UserError(f'--netG {opt.netG} needs images whose sides are multiples of {need} (2 ** ({levels})), '
                            f'at least {smallest}, but training images are {size} pixels; use --crop_size '
                            f'{max(smallest, size // need * need)} or lower --n_downsample_global')
    if opt.netG.startswith('unet_'):
        need = 2 ** networks.unet_depth(opt.netG)
        if size % need:
            largest = 1 << (max(size, 16).bit_length() - 1)
            raise UserError(f'--netG {opt.netG} needs images whose sides are multiples of {need}, but training '
                            f'images are {size} pixels; use --crop_size {max(need, size // need * need)} or '
                            f'--netG unet_{largest}')


def check_tiles(opt):
    """--tile: a size the generator takes, an overlap smaller than it, at least one tile at a time."""
    multiple, smallest = export.size_rule(opt.netG, opt.n_downsample_global, opt.n_local_enhancers)
    if opt.tile < smallest or opt.tile % multiple:
        fit = max(smallest, opt.tile // multiple * multiple)
        raise UserError(f'--tile {opt.tile}: --netG {opt.netG} takes sides that are multiples of {multiple}, at least '
                        f'{smallest}; use --tile {fit}, or 0 for whole images')
    # Tiles start on the generator's grid of strides (models/base_model.generate), so they step by its multiple.
    if not 0 <= opt.tile_overlap <= opt.tile - multiple:
        raise UserError(f'--tile_overlap {opt.tile_overlap}: neighbouring tiles of --tile {opt.tile} share 0 to '
                        f'{opt.tile - multiple} pixels with --netG {opt.netG} (they start on its grid of '
                        f'{multiple}); use --tile_overlap {min(32, opt.tile - multiple)}, or a larger --tile')
    if opt.tile_batch < 1:
        raise UserError(f'--tile_batch {opt.tile_batch}: the generator takes at least 1 tile at a time')
