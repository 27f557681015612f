"""The run's configuration (options/resolution.py): made once, in one order of sources, each value's source
recorded, printed and saved, read-only afterwards; and the command lines that feed it (--help)."""
import ast
import contextlib
import io
import json
import pickle

import pytest

from options.app_options import AppOptions
from options.export_options import ExportOptions
from options.recipes import RECIPES
from options.resolution import DEMO_SETTINGS
from options.test_options import TestOptions
from options.train_options import TrainOptions
from tests.scripts import TINY_NET, run
from tests.test_layers import product_modules


def parse(options, *flags):
    with contextlib.redirect_stdout(io.StringIO()):
        return options.parse([str(flag) for flag in flags])


def test_the_configuration_is_read_only_and_derives_new_ones():
    opt = parse(TrainOptions(), '--dataroot', '.', '--seed', 1)
    with pytest.raises(AttributeError, match='read-only once resolved: opt.netG cannot be set'):
        opt.netG = 'unet_128'
    with pytest.raises(AttributeError, match='read-only'):
        setattr(opt, 'brand_new', 1)
    with pytest.raises(AttributeError, match='read-only'):
        del opt.lr
    derived = opt.derive(phase='val', no_flip=True)
    assert (derived.phase, derived.no_flip, derived.source('phase')) == ('val', True, 'command')
    assert (opt.phase, opt.no_flip, opt.source('phase')) == ('train', False, 'default')
    # DataLoader workers started by spawn receive it pickled: it must come back the same, and still read-only.
    copy = pickle.loads(pickle.dumps(derived))
    assert vars(copy) == vars(derived) and copy.sources() == derived.sources()
    with pytest.raises(AttributeError, match='read-only'):
        copy.lr = 1


def test_sources_rank_typed_then_recipe_then_demo_then_default():
    opt = parse(TrainOptions(), '--recipe', 'improved', '--ngf', 16, '--upsample', 'transpose', '--seed', 3)
    assert opt.source('ngf') == 'typed' and opt.ngf == 16  # typed beats the demo's 32
    assert opt.source('upsample') == 'typed' and opt.upsample == 'transpose'  # typed beats the recipe
    assert opt.source('gan_mode') == 'recipe' and opt.gan_mode == RECIPES['improved']['gan_mode']
    assert opt.source('netG') == 'demo' and opt.netG == DEMO_SETTINGS['netG']  # the demo beats the model default
    assert opt.source('lr') == 'default' and opt.lr == 0.0002
    assert opt.source('is_train') == 'derived' and opt.source('device') == 'derived'  # auto -> cpu
    assert opt.source('seed') == 'typed'
    assert parse(TrainOptions(), '--dataroot', '.').source('seed') == 'derived'  # drawn, then saved with the run


def test_a_resumed_run_takes_its_architecture_and_run_from_the_checkpoint(train_tiny):
    run = train_tiny('--n_epochs', 1, '--n_epochs_decay', 0, '--seed', 5, '--lr', 3e-4, '--ngf', 4,
                     name='resumable', count=2)
    common = ['--dataroot', run.data, '--name', 'resumable', '--checkpoints_dir', run.checkpoints, '--device', 'cpu']
    opt = parse(TrainOptions(), *common, '--continue_train', '--seed', 9, *TINY_NET[4:])
    assert (opt.ngf, opt.source('ngf'), opt.source('netG')) == (4, 'saved', 'saved')  # the checkpoint's architecture
    assert (opt.seed, opt.source('seed')) == (5, 'resume')  # the run's own, even over a typed one
    assert (opt.lr, opt.source('lr')) == (3e-4, 'resume')
    assert parse(TrainOptions(), *common, '--continue_train', '--lr', 1e-4).source('lr') == 'typed'
    test_opt = parse(TestOptions(), *common)
    assert (test_opt.ngf, test_opt.source('ngf')) == (4, 'saved')
    assert test_opt.source('serial_batches') == 'command' and test_opt.no_flip


def test_train_opt_files_hold_each_value_with_its_source(tiny_run):
    saved = json.loads((tiny_run.folder / 'train_opt.json').read_text())
    assert saved['seed'] == 0 and saved['sources']['seed'] == 'typed'
    assert saved['sources']['lr'] == 'default' and saved['sources']['is_train'] == 'derived'
    assert set(saved['sources']) >= set(saved) - {'sources'}
    lines = {line.split(':')[0].strip(): line for line in (tiny_run.folder / 'train_opt.txt').read_text().splitlines()}
    assert lines['seed'].endswith('[typed, default: None]') and lines['lr'].endswith('[default]')


def assigned_attributes(node):
    """The attributes an assignment node assigns to (a.b = ... and a.b, c = ...), as source text."""
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return [ast.unparse(t) for target in targets for t in ast.walk(target) if isinstance(t, ast.Attribute)]


def test_no_module_outside_the_resolution_assigns_to_the_configuration():
    """Statically: no `opt.x = ...`, `self.opt.x = ...` or setattr(opt, ...) in the product (and at run time the
    Config refuses it anyway, test above)."""
    found = []
    for module, path in product_modules().items():
        for node in ast.walk(ast.parse(open(path).read(), path)):
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                found += [f'{module}: {name}' for name in assigned_attributes(node)
                          if name.rpartition('.')[0].endswith('opt')]
            elif isinstance(node, ast.Call) and ast.unparse(node.func) == 'setattr':
                target = ast.unparse(node.args[0])
                if target.endswith('opt'):
                    found.append(f'{module}: setattr({target}, ...)')
    assert not found, found


def help_text(options, *flags):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        options.parse([*flags, '--help'])
    assert done.value.code == 0
    return out.getvalue()


def flags_in(text):
    return {word.split('=')[0] for line in text.splitlines() if line.startswith('  --') for word in line.split()[:1]}


def test_train_help_lists_the_models_flags_in_groups_and_hides_the_references_no_ops():
    text = help_text(TrainOptions())
    for flag in ('--lambda_L1', '--lambda_feat', '--lambda_vgg', '--ema_decay', '--ema_bn_images', '--lr', '--netG'):
        assert flag in flags_in(text), flag
    for group in ('experiment:', 'data:', 'networks:', 'training:', 'pix2pixHD/SPADE options:', 'display:',
                  'validation:', 'speed:', 'distributed:'):
        assert f'\n{group}\n' in text, group
    pix2pixhd = text.split('pix2pixHD/SPADE options:')[1].split('\n\n')[0]
    assert '--lambda_feat' in pix2pixhd and '--num_D' in pix2pixhd and '--ema_decay' not in pix2pixhd
    assert '--pool_size' not in text
    # Another model's help: the test model has no training flags of its own (and refuses training).
    assert '--lambda_L1' in flags_in(help_text(TrainOptions(), '--model', 'colorization'))


def test_a_reference_flag_that_does_nothing_is_accepted_with_a_note():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        opt = TrainOptions().parse(['--dataroot', '.', '--pool_size', '50'])
    assert '--pool_size does nothing here' in out.getvalue() and not hasattr(opt, 'pool_size')


def test_export_and_app_offer_only_the_flags_they_use(capsys):
    export = flags_in(help_text(ExportOptions()))
    assert {'--name', '--epoch', '--model_suffix', '--eval', '--export_dir'} <= export
    assert not export & {'--netD', '--num_D', '--results_dir', '--num_test', '--fid_weights', '--serial_batches',
                         '--amp', '--compile', '--dataroot'}
    app = flags_in(help_text(AppOptions()))
    assert {'--name', '--port', '--max_image_size', '--device', '--amp'} <= app
    assert not app & {'--netD', '--results_dir', '--dataroot', '--eval', '--preprocess'}
    # A flag of test.py's that export.py does not take is a usage error that points at --help.
    with pytest.raises(SystemExit) as error:
        ExportOptions().parse(['--name', 'x', '--amp', 'bf16'])
    assert error.value.code == 2
    assert 'unrecognized arguments: --amp bf16' in capsys.readouterr().err
    # The options export.py does not offer still have their values (the test-time defaults).
    opt = parse(ExportOptions(), '--name', 'x')
    assert (opt.device, opt.source('device'), opt.amp, opt.preprocess) == ('cpu', 'command', 'none', 'resize_and_crop')


def test_every_flag_help_is_one_line_of_the_command_line():
    for options in (TrainOptions(), TestOptions(), ExportOptions(), AppOptions()):
        parser = options.parser([], {})
        long = [a.option_strings[0] for a in parser._actions if a.help and len(a.help) > 100]
        assert not long, long


def test_export_py_help_runs_as_a_command():
    proc = run('export.py', '--help')
    assert proc.returncode == 0 and '--export_dir' in proc.stdout and '--netD' not in proc.stdout
