"""The command line shared by train.py, test.py, export.py and app.py.

The parser is built in passes: the first reads --model and --dataset_mode, then the chosen model and
dataset add their own flags (or change defaults), and the last pass parses everything, so --help lists
every flag that applies (--model NAME --help: that model's). Flags are shown in groups. Flag names and
defaults follow the reference implementation so that its scripts carry over; the README explains each.

parse() hands what was typed to options/resolution.py, which makes the run's one read-only configuration.
"""
import argparse
import sys

import data
import models
from models import networks
from options import resolution
from options.checks import COMPILE_MODES, PREPROCESS_MODES
from util.plugins import option_group

# Groups in the order --help lists them (a model or dataset adds to them through util.plugins.option_group).
GROUPS = ('experiment', 'data', 'networks', 'training', 'pix2pixHD/SPADE options', 'display', 'validation',
          'evaluation', 'large images', 'speed', 'distributed')


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors end with a hint of the command's own (which flags it takes), and that
    takes a range starting below zero as a value (--range_B -1000:3000): argparse would read it as a flag."""
    hint = ''

    def error(self, message):
        super().error(message + self.hint)

    def parse_known_args(self, args=None, namespace=None):
        if args is not None:
            args = list(args)
            for i in range(len(args) - 1, 0, -1):
                if args[i - 1] in ('--range_A', '--range_B') and args[i].startswith('-'):
                    args[i - 1:i + 1] = [f'{args[i - 1]}={args[i]}']
        return super().parse_known_args(args, namespace)


class BaseOptions:
    command = None  # the command's file name, for --help and usage errors
    is_train = None
    reads_data = True  # False for commands that use only the checkpoints (export.py, app.py): no demo data
    flags = None  # the flags this command offers (their dest names); None: every flag of its parser
    settings = {}  # values this command fixes whatever is typed (test.py's one ordered pass)
    # Flags of the reference's scripts that do nothing here: accepted with a note, hidden from --help.
    ignored = {}

    def initialize(self, parser):
        group = option_group(parser, 'experiment')
        group.add_argument('--name', type=str, default='experiment_name',
                           help='name of the experiment; checkpoints go to checkpoints_dir/name')
        group.add_argument('--checkpoints_dir', type=str, default='./checkpoints', help='models are saved here')
        group.add_argument('--model', type=str, default='pix2pix', help='which model: pix2pix | colorization | test')
        group.add_argument('--device', type=str, default='auto', help='auto | cpu | cuda | cuda:N | mps')
        group.add_argument('--gpu_ids', type=str, default=None, help="the reference's device choice: -1 CPU, 0 cuda:0")
        group.add_argument('--seed', type=int, default=None, help='random seed for python, numpy and torch')
        group.add_argument('--epoch', type=str, default='latest',
                           help='which epoch to load: latest, a number, or best (test.py)')
        group.add_argument('--load_iter', type=int, default=0,
                           help='if > 0, load iter_[load_iter] checkpoints instead of [epoch]')
        group.add_argument('--suffix', default='', type=str,
                           help='append to --name, e.g. {model}_{netG}_size{load_size}')
        group.add_argument('--verbose', action='store_true', help='print network details')

        group = option_group(parser, 'data')
        group.add_argument('--dataroot', default=None,
                           help='folder with train/, test/ ...; omitted: the built-in demo dataset')
        group.add_argument('--dataset_mode', type=str, default='aligned', help='aligned | single | colorization')
        group.add_argument('--direction', type=str, default='AtoB', help='AtoB or BtoA')
        group.add_argument('--serial_batches', action='store_true', help='take images in order, not shuffled')
        group.add_argument('--num_threads', default=4, type=int, help='most loader worker processes')
        group.add_argument('--batch_size', type=int, default=1, help='input batch size (per process under torchrun)')
        group.add_argument('--load_size', type=int, default=286, help='scale images to this size')
        group.add_argument('--crop_size', type=int, default=256, help='then crop to this size')
        group.add_argument('--max_dataset_size', type=int, default=float('inf'), help='use at most this many images')
        group.add_argument('--preprocess', type=str, default='resize_and_crop', help=' | '.join(PREPROCESS_MODES))
        group.add_argument('--no_flip', action='store_true', help='do not flip the images for data augmentation')
        for side in 'AB':  # README, "Your own data"
            group.add_argument(f'--range_{side}', default='auto', help=(
                f"{side}'s values mapped to [-1, 1]: full, measured, LOW:HIGH[,LOW:HIGH...], auto (8-bit: full)"))
        group.add_argument('--range_percentile', type=float, default=0.1,
                           help='measured ranges span this percentile of the values to 100 minus it')
        group.add_argument('--preview_channels', default='0,1,2',
                           help='the three channels pictures show of data with more than three')

        group = option_group(parser, 'networks')
        group.add_argument('--input_nc', type=int, default=3,
                           help="input channels (default: the data's; 3 RGB, 1 gray)")
        group.add_argument('--output_nc', type=int, default=3,
                           help="output channels (default: the data's; 3 RGB, 1 gray)")
        group.add_argument('--ngf', type=int, default=64, help="generator filters in the last conv layer")
        group.add_argument('--ndf', type=int, default=64, help="discriminator filters in the first conv layer")
        group.add_argument('--netG', type=str, default='resnet_9blocks',
                           help='resnet_9blocks | resnet_6blocks | unet_256 | unet_128 | unet_N | global | local')
        group.add_argument('--netD', type=str, default='basic', help='basic (70x70 PatchGAN) | n_layers | pixel | '
                                                                     'multiscale')
        group.add_argument('--n_layers_D', type=int, default=3, help='layers of D with --netD n_layers or multiscale')
        group.add_argument('--norm', type=str, default='instance', help=' | '.join(networks.NORMS))
        group.add_argument('--init_type', type=str, default='normal', help=' | '.join(networks.INIT_TYPES))
        group.add_argument('--init_gain', type=float, default=0.02, help='scale of normal, xavier and orthogonal')
        group.add_argument('--no_dropout', action='store_true', help='no dropout in the generator')
        group.add_argument('--upsample', choices=networks.UPSAMPLES, default='transpose',
                           help="the generator's x2 upsampling: transposed convolutions, or resize + conv")
        group.add_argument('--n_downsample_global', type=int, default=4,
                           help='stride-2 levels of the global generator (--netG global or local)')
        group.add_argument('--n_blocks_global', type=int, default=9,
                           help='residual blocks of the global generator (--netG global or local)')
        group.add_argument('--n_local_enhancers', type=int, default=1,
                           help='local enhancers of --netG local, each doubling the resolution')
        group.add_argument('--n_blocks_local', type=int, default=3, help='residual blocks of each local enhancer')

        group = option_group(parser, 'pix2pixHD/SPADE options')
        group.add_argument('--num_D', type=int, default=2, help='scales of --netD multiscale')
        group.add_argument('--spectral_norm_D', action='store_true', help='spectral norm on every convolution of D')

        group = option_group(parser, 'display')
        group.add_argument('--display_winsize', type=int, default=256, help='image size in visdom and HTML')

        group = option_group(parser, 'speed')  # none changes the saved weights, which stay float32
        group.add_argument('--amp', choices=('none', 'bf16', 'fp16'), default='none',
                           help='mixed precision: bfloat16 (recent CPUs, GPUs) or float16 (CUDA)')
        group.add_argument('--channels_last', action='store_true', help='channels-last memory order (GPUs)')
        group.add_argument('--compile', action='store_true', help='torch.compile the networks (30-60 s to start)')
        group.add_argument('--compile_mode', choices=COMPILE_MODES, default='default',
                           help="torch.compile's mode; reduce-overhead: CUDA graphs")
        return parser

    def parser(self, argv, settings, all_flags=False):
        """The parser of this command's flags, the model's and the dataset's included (all_flags: also those
        that this command does not offer)."""
        parser = CommandParser(prog=self.command, description=self.__doc__, add_help=False,
                               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        for title in GROUPS:
            option_group(parser, title)
        self.initialize(parser)
        for name, reason in self.ignored.items():
            parser.add_argument(f'--{name}', help=argparse.SUPPRESS)
        # Before the last pass, --help must not print yet: the plug-ins' flags are not known.
        model = settings.get('model') or parser.parse_known_args(argv)[0].model
        models.find_model_class(model).modify_commandline_options(parser, self.is_train)
        dataset_mode = settings.get('dataset_mode') or parser.parse_known_args(argv)[0].dataset_mode
        data.find_dataset_class(dataset_mode).modify_commandline_options(parser, self.is_train)
        if self.flags is not None and not all_flags:
            parser = only_flags(parser, self.flags + tuple(self.ignored))
        for action in parser._actions:
            if action.dest in self.settings:  # accepted for the reference's scripts, but the command decides
                action.help = argparse.SUPPRESS
        parser.hint = f' ({parser.prog} --help lists the flags it takes)'
        option_group(parser, 'experiment').add_argument('-h', '--help', action='help', help='show this help and exit')
        return parser

    def parse(self, argv=None, settings=None):
        """The run's configuration for argv (default: the command line), resolved and checked
        (options/resolution.py); settings: values the caller fixes, whatever is typed."""
        argv = command_line(argv)
        settings = {**self.settings, **(settings or {})}
        parser = self.parser(argv, settings)
        parsed = parser.parse_args(argv)
        typed = typed_options(parser, argv)
        for name, reason in self.ignored.items():
            if name in typed:
                print(f'note: --{name} does nothing here: {reason}')
        every_flag = parser if self.flags is None else self.parser(argv, settings, all_flags=True)
        defaults = vars(every_flag.parse_args([]))
        for name in self.ignored:
            defaults.pop(name)
        values = {key: getattr(parsed, key, default) for key, default in defaults.items()}
        return resolution.resolve(self, values, defaults, typed, settings)

    def peek(self, argv, settings):
        """(argv, the flags as parsed before any resolution, the names of those typed), for a command whose
        settings depend on them (test.py's single images, export.py's saved direction)."""
        argv = command_line(argv)
        parser = self.parser(argv, {**self.settings, **settings})
        return argv, parser.parse_known_args(argv)[0], typed_options(parser, argv)

    def check(self, opt):
        """The command's own checks of its flags (the general ones are options/checks.py's)."""

    def save_and_print(self, opt, file_stem):
        resolution.save_and_print(opt, file_stem)


def only_flags(parser, flags):
    """A parser with only the flags named (by dest) of parser, in the same groups: export.py and app.py
    offer what they use. The other options keep their defaults (BaseOptions.parse)."""
    kept = CommandParser(prog=parser.prog, description=parser.description, add_help=False,
                         formatter_class=parser.formatter_class)
    for group in parser._action_groups:
        for action in group._group_actions:
            if action.dest in flags:
                option_group(kept, group.title)._add_action(action)
    return kept


def command_line(argv):
    """argv as strings, or the process's command line when None."""
    return sys.argv[1:] if argv is None else [str(arg) for arg in argv]


def typed_options(parser, argv):
    """Names of the options the user typed (so that no saved, recipe or demo value overrides them)."""
    typed = set()
    for action in parser._actions:
        for flag in action.option_strings:
            if any(token == flag or token.startswith(flag + '=') for token in argv):
                typed.add(action.dest)
    return typed
