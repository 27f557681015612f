"""The one place where the run's configuration is made (docs/architecture.md, "The configuration").

Every option takes the value of its most binding source:

    typed flags  >  the checkpoint's saved architecture and the resume file  >  --recipe  >  demo settings
    >  defaults

(a value the command fixes, such as test.py's ordered pass, binds most of all). Then come the values
computed from those: --suffix's name, the device, this process's place under torchrun (which may give it
its own GPU), and the seed. Then everything is checked (options/checks.py), and the result is a read-only
Config that records each value's source; train_opt.txt and train_opt.json show them.
"""
import json
import os
import random

from data import demo
from models import checkpoint
from options import checks
from options.config import Config
from options.recipes import RECIPES
from training.state import resume_file, saved_options
from util import devices, distributed
from util.errors import UserError
from util.files import atomic_write_text, mkdirs, options_dict

BINDING = {source: rank for rank, source in enumerate(('command', 'typed', 'saved', 'resume', 'recipe', 'demo',
                                                        'default'))}
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
    values.offer({'dataroot': root, **DEMO_SETTINGS}, 'demo')
    print(f'No --dataroot given: using the built-in demo dataset at {root}')


def offer_saved_architecture(values):
    """Testing or resuming: the architecture the checkpoint was saved with (architecture.json, or inferred
    from a reference checkpoint's layers). A typed flag that contradicts it is an error naming both."""
    saved, where = checkpoint.saved_architecture(values.config())
    if not saved:
        return
    keys = [key for key in checkpoint.G_OPTIONS + checkpoint.D_OPTIONS
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

