"""The one place where the run's configuration is made (docs/architecture.md, "The configuration").

Every option takes the value of its most binding source:

    typed flags  >  the checkpoint's saved architecture and the resume file  >  the data  >  --recipe
    >  demo settings  >  defaults

(a value the command fixes, such as test.py's ordered pass, binds most of all). The data gives the channel
counts of A and B, and how the values of each map to the network's (saved with the checkpoints, so measured
once). Then come the values computed from those: --suffix's name, the device, this process's place under
torchrun (which may give it its own GPU), and the seed. Then everything is checked (options/checks.py), and the result is a read-only
Config that records each value's source; train_opt.txt and train_opt.json show them.
"""
import json
import os
import random

import numpy as np

import data
from data import demo
from data.base_dataset import SideReader
from models import checkpoint
from options import checks
from options.config import Config
from options.recipes import RECIPES
from training.state import resume_file, saved_options
from util import devices, distributed
from util.arrays import file_kind
from util.display.visualizer import progress_bar
from util.errors import UserError
from util.files import atomic_write_text, mkdirs, options_dict
from util.value_mapping import ValueMapping, measure, parse_given

BINDING = {source: rank for rank, source in enumerate(('command', 'typed', 'saved', 'resume', 'data', 'recipe',
                                                        'demo', 'default'))}

DEMO_SETTINGS = dict(load_size=64, crop_size=64, preprocess='resize_and_crop', netG='unet_64', ngf=32, ndf=32,
                     n_epochs=10, n_epochs_decay=10, batch_size=4, print_freq=400, save_epoch_freq=10,
                     display_freq=400, direction='AtoB')
# The resume file's values that make the resumed run the same run, even over typed flags: the seed orders every
# epoch's data, and epoch_count shapes the learning-rate schedule.
RUN_IDENTITY = ('seed', 'epoch_count')
# The optimizers' settings, which the resume file gives unless typed (a typed one rescales the schedule).
OPTIMIZER_SETTINGS = ('lr', 'lr_D', 'beta1')


class Values:
    """Values being resolved, each with its source."""

    def __init__(self, parsed, defaults, typed):
        self.values, self.defaults = dict(parsed), defaults
        self.sources = {key: 'typed' if key in typed else 'default' for key in self.values}

    def offer(self, values, source):
        """The one rule: take each value unless the option has one from a more binding source. Options this
        run does not have (another model's) are left out."""
        for key, value in values.items():
            if key in self.values and BINDING[source] <= BINDING[self.sources[key]]:
                self.values[key], self.sources[key] = value, source

    def set(self, key, value, source='derived'):
        self.values[key], self.sources[key] = value, source

    def __getitem__(self, key):
        return self.values[key]

    def config(self):
        return Config(self.values, self.sources, self.defaults)


def resolve(command, parsed, defaults, typed, settings):
    """The Config of a command (a BaseOptions) from the parsed flags, their defaults, the names of those
    typed, and the values the command fixes."""
    values = Values(parsed, defaults, typed)
    values.set('is_train', command.is_train)
    for key in checkpoint.VALUE_MAPPINGS:
        values.set(key, None, 'default')
    values.offer(settings, 'command')
    if values['dataroot'] is None and command.reads_data:
        offer_demo(values)
    if command.is_train:
        values.offer(RECIPES[values['recipe']], 'recipe')
    if values['suffix']:
        values.set('name', values['name'] + '_' + values['suffix'].format(**values.values))
    if not command.is_train or values['continue_train']:
        offer_saved_architecture(values)
    resumed = resume_file(values.config()) if command.is_train else None
    saved = offer_resume_file(values, resumed) if resumed else None
    offer_data(values, command)
    device = resolve_device(values)
    values.set('device', device, values.sources['device'] if device == values['device'] else 'derived')
    opt = values.config()
    checks.validate(opt)
    command.check(opt)
    if command.is_train:
        opt = place_in_process_group(values)
    if saved is not None:
        note_changes(opt, saved)
    return opt


def offer_demo(values):
    """No --dataroot: the demo set (data/demo.py makes it when the dataset is first built), with sizes that
    train in minutes on a CPU."""
    if values['model'] not in ('pix2pix', 'test'):
        raise UserError(f'--dataroot is required for --model {values["model"]} (the built-in demo data is for pix2pix)')
    root = os.path.join(demo.DEMO_ROOT, 'testA') if values['model'] == 'test' else demo.DEMO_ROOT
    demo.ensure_demo_dataset()  # made on first use; the data's channel counts are read next
    values.offer({'dataroot': root, **DEMO_SETTINGS}, 'demo')
    print(f'No --dataroot given: using the built-in demo dataset at {root}')


def offer_saved_architecture(values):
    """Testing or resuming: the architecture the checkpoint was saved with (architecture.json, or inferred
    from a reference checkpoint's layers). A typed flag that contradicts it is an error naming both."""
    saved, where = checkpoint.saved_architecture(values.config())
    if not saved:
        return
    keys = [key for key in checkpoint.G_OPTIONS + checkpoint.D_OPTIONS + checkpoint.VALUE_MAPPINGS
            if saved.get(key) is not None and key in values.values]
    conflicts = [f'--{key} {checkpoint.fmt(values[key])} (saved: {checkpoint.fmt(saved[key])})' for key in keys
                 if values.sources.get(key) == 'typed' and values[key] != saved[key]]
    if conflicts:
        raise UserError(f'the checkpoint was trained with other architecture options than you gave: '
                        f'{", ".join(conflicts)}. Saved in {where}; drop these flags to use the saved ones.')
    values.offer({key: saved[key] for key in keys}, 'saved')


def offer_resume_file(values, path):
    """--continue_train with a training state: its seed and epoch_count, and its optimizer settings unless
    typed. Returns all its options."""
    saved = saved_options(path)
    for key in RUN_IDENTITY:
        if values.sources[key] == 'typed' and values[key] != saved[key]:
            print(f'note: --{key} {values[key]} ignored: resuming the run saved with --{key} {saved[key]} (it '
                  f'decides the data order and the learning-rate schedule)')
        values.set(key, saved[key], 'resume')
    # A save from before --lr_D has none: its D trained at --lr.
    values.offer({key: saved[key] for key in OPTIMIZER_SETTINGS if key in saved}, 'resume')
    return saved


def offer_data(values, command):
    """What the data says: the channel counts of its sides (unless typed or saved), and how each side's values
    map to the network's (unless saved with the checkpoint)."""
    dataset_class = data.find_dataset_class(values['dataset_mode'])
    dataset, kinds = None, {}
    if command.reads_data and hasattr(dataset_class, 'files'):
        dataset_class.validate_options(values.config())
        try:
            dataset = dataset_class(values.config())
        except UserError:
            pass  # no data where DATAROOT says: the loader, when it is made, names what is missing
    if dataset is not None:
        first = dataset.files(0)
        kinds = {side: file_kind(path) for side, path in first.items()}
        for role, side in dataset.sides.items():
            offer_channels(values, 'input_nc' if role == 'input' else 'output_nc', kinds[side], first[side])
    input_side = 'B' if values['direction'] == 'BtoA' else 'A'
    measured = []
    for side in 'AB':
        key, flag = f'mapping_{side}', f'range_{side}'
        if values.sources[key] == 'saved':
            if values.sources[flag] == 'typed':
                print(f'note: --{flag} {values[flag]} ignored: the checkpoint maps {side} as it was trained '
                      f'({ValueMapping.from_dict(values[key]).describe()})')
            continue
        channels = values['input_nc' if side == input_side else 'output_nc']
        dtype = kinds[side][0] if side in kinds else 'uint8'
        how = values[flag] if values[flag] != 'auto' else 'full' if dtype == 'uint8' else 'measured'
        if how == 'full':
            mapping = ValueMapping.full(dtype, channels)
        elif how == 'measured':
            if side not in kinds:
                raise UserError(f'--{flag} measured: there is no data of side {side} to measure here; give its '
                                f'range as LOW:HIGH')
            measured.append(side)
            continue
        else:
            mapping = ValueMapping(dtype, parse_given(how, channels, f'--{flag}'), 'given')
        values.set(key, mapping.to_dict(), values.sources[flag] if values.sources[flag] != 'default' else 'data')
    if measured:
        ranges = measure_ranges(dataset, measured, values)
        for side in measured:
            values.set(f'mapping_{side}', ValueMapping(kinds[side][0], ranges[side], 'measured').to_dict(), 'data')
    for side in 'AB':
        print(f'values of {side}: {ValueMapping.from_dict(values[f"mapping_{side}"]).describe()}')


def offer_channels(values, flag, kind, path):
    """The channel count of the data's first file for --input_nc/--output_nc, unless typed or saved; typed or
    saved, it must agree (8-bit pictures excepted: 1 makes colour ones gray, 3 gray ones RGB, as the
    reference does)."""
    dtype, channels = kind
    if values.sources[flag] in ('typed', 'saved', 'resume') and values[flag] != channels:
        if dtype == 'uint8' and {values[flag], channels} <= {1, 3} and not path.lower().endswith('.npy'):
            return  # data/base_dataset.SideReader converts such pictures
        given = 'typed' if values.sources[flag] == 'typed' else 'saved with the checkpoint'
        raise UserError(f'--{flag} {values[flag]} ({given}) but the data has {channels} channel'
                        f'{"s" if channels > 1 else ""} ({path}, {dtype}). Drop --{flag}, or give data of '
                        f'{values[flag]} channels.')
    values.offer({flag: channels}, 'data')


def measure_ranges(dataset, sides, values):
    """{side: [(low, high)] per channel}: the [--range_percentile, 100 - it] range of each channel's values over the
    data, from up to 4 million pixels per channel spread evenly over its files. The other side's files are read
    too (through their mapping), so that a bad file of either is found before training."""
    readers = {side: SideReader(None if side in sides else ValueMapping.from_dict(values[f'mapping_{side}']), path,
                                dataset.opt) for side, path in dataset.files(0).items()}
    per_file = max(4096, 2 ** 22 // len(dataset))
    samples = {side: [] for side in sides}
    print(f'measuring the range of the values of {" and ".join(sides)} over {len(dataset)} files')
    for index in progress_bar(range(len(dataset)), desc='measuring value ranges'):
        images = dataset.read(index, readers)
        for side in sides:
            array = np.asarray(images[side])  # an 8-bit picture, when --range_A/--range_B measured asks it
            array = array.reshape(*array.shape[:2], -1)
            stride = max(1, int(np.ceil(np.sqrt(array.shape[0] * array.shape[1] / per_file))))
            samples[side].append(array[::stride, ::stride].reshape(-1, array.shape[2]).astype(np.float64))
    return {side: measure(np.concatenate(samples[side]), values['range_percentile'],
                          f'the values of {side} ({len(dataset)} files)') for side in sides}


def resolve_device(values):
    """--device, or the reference's --gpu_ids unless --device is typed (or fixed by the command); auto picks
    CUDA, MPS or the CPU."""
    device = values['device']
    if values['gpu_ids'] is not None and values.sources['device'] not in ('typed', 'command'):
        first = values['gpu_ids'].split(',')[0].strip()
        device = 'cpu' if first == '-1' else f'cuda:{first}'
    return devices.resolve(device)


def place_in_process_group(values):
    """Under torchrun: join the other processes (each on a GPU of its own on CUDA). Then the seed: typed,
    resumed, or drawn by rank 0, as it orders every rank's data."""
    rank, world_size, device = distributed.setup(values['device'], values['dist_url'], values['dist_timeout'],
                                                 values['batch_size'])
    if device != values['device']:
        values.set('device', device)
    if values['seed'] is None:
        values.set('seed', distributed.broadcast(random.randrange(2 ** 31)))
    return values.config()


def note_changes(opt, saved):
    changed = [f'--{key} {saved[key]} -> {value}' for key, value in sorted(options_dict(opt).items())
               if key in saved and saved[key] != value and key != 'continue_train']
    if changed:
        print('note: options changed since the save: ' + ', '.join(changed))


def save_and_print(opt, file_stem):
    """Print the options, each with its source (and the default it replaces), and write them as text and
    JSON beside the checkpoints."""
    lines = ['----------------- Options ---------------']
    for key, value in sorted(vars(opt).items()):
        source = opt.source(key)
        default = f', default: {opt.default(key)}' if source != 'default' and opt.default(key) != value else ''
        lines.append(f'{key:>25}: {str(value):<30}\t[{source}{default}]')
    lines.append('----------------- End -------------------')
    message = '\n'.join(lines)
    print(message)
    expr_dir = os.path.join(opt.checkpoints_dir, opt.name)
    mkdirs(expr_dir)
    atomic_write_text(os.path.join(expr_dir, f'{file_stem}.txt'), message + '\n')
    atomic_write_text(os.path.join(expr_dir, f'{file_stem}.json'),
                      json.dumps({**options_dict(opt), 'sources': opt.sources()}, indent=1, sort_keys=True) + '\n')

