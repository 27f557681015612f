"""export.py: a trained generator as ONNX and as a torch.export program (.pt2). Each file runs in a fresh interpreter
that has no access to this project and only onnxruntime (ONNX) or only torch (.pt2), and gives test.py's outputs
for the same checkpoint and images within 1e-4 before 8-bit rounding: at two image sizes, for a U-Net, a ResNet
and the colorization model, in both test modes. On 16-bit data, the files' description of the value mappings,
applied by its formulas alone, turns the data's files into the network's input and its output into test.py's
16-bit files."""
import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import models
from models.export import ONNX_PACKAGES
from options.export_options import ExportOptions
from tests.isolation import blocker_source, sitecustomize_without
from tests.scripts import REPO, run
from tests.tiny_data import make_16bit_pairs, pair_image
from util.errors import UserError
from util.images import tensor2im

SIZES = {'a': (32, 32), 'b': (96, 64)}  # stem: (width, height), multiples of both generators' size rules
EXPERIMENTS = {  # name: train.py flags (with TINY_NET: unet_32, batch norm; unet_32 has no dropout, the ResNet has)
    'unet': [],
    'resnet': ['--netG', 'resnet_2blocks'],
    'colorization': ['--model', 'colorization'],
    # pix2pixHD's coarse-to-fine generator, small: sizes are multiples of 2 ** (2 + 1)
    'local': ['--netG', 'local', '--n_downsample_global', '2', '--n_blocks_global', '1', '--n_blocks_local', '1'],
}
CASES = {  # case: (experiment, flags of test.py and export.py: test mode, which file), each export taking seconds
    'unet_paper': ('unet', []),
    'resnet_eval': ('resnet', ['--eval', '--model_suffix', '_ema']),  # with dropout, which --eval turns off
    'colorization_eval': ('colorization', ['--eval', '--epoch', '1']),
    'local_eval': ('local', ['--eval']),  # its ResNet blocks have dropout, which --eval turns off
}
STEMS = {'unet_paper': 'latest_net_G', 'resnet_eval': 'latest_net_G_ema', 'colorization_eval': '1_net_G',
         'local_eval': 'latest_net_G'}
PROJECT = ('models', 'data', 'util', 'options', 'tests', 'train', 'test', 'export', 'app')

# Run by `python -I` in an empty folder: no PYTHONPATH, no user site, no script folder on sys.path, and the
# project's packages and the other format's runtime blocked. Runs every job of jobs.json, saves the outputs.
FRESH = r'''
import json, sys
import numpy as np
jobs = json.load(open(sys.argv[1]))
for job in jobs:
    if job['file'].endswith('.onnx'):
        import onnxruntime
        session = onnxruntime.InferenceSession(job['file'], providers=['CPUExecutionProvider'])
        job['metadata'] = json.loads(session.get_modelmeta().custom_metadata_map['pix2pix'])
        job['input_shape'] = session.get_inputs()[0].shape
        run = lambda x: session.run(['output'], {'input': x})[0]
    else:
        import torch
        extra = {'pix2pix.json': ''}
        program = torch.export.load(job['file'], extra_files=extra).module()
        job['metadata'] = json.loads(extra['pix2pix.json'])
        run = lambda x: program(torch.from_numpy(x)).detach().numpy()
    for source, target in zip(job['inputs'], job['outputs']):
        np.save(target, run(np.load(source)))
print(json.dumps({'jobs': jobs, 'sys_path': sys.path, 'modules': sorted({m.split('.')[0] for m in sys.modules})}))
'''


def command(name):
    """test.py or export.py as a module (`import test` would find Python's own test package)."""
    spec = importlib.util.spec_from_file_location(f'command_{name}', os.path.join(REPO, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def generator_calls():
    """(input, output) of every call of the generators models.create_model builds meanwhile: test.py's outputs
    before they are rounded to 8 bits (the model is the real one; the hook only copies what passes)."""
    calls = []
    create_model = models.create_model

    def create_and_watch(opt):
        model = create_model(opt)
        model.netG.register_forward_hook(lambda net, args, output: calls.append((args[0].numpy().copy(),
                                                                                 output.numpy().copy())))
        return model

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(models, 'create_model', create_and_watch)
        yield calls


def run_fresh(folder, jobs, blocked):
    folder.mkdir()
    (folder / 'jobs.json').write_text(json.dumps(jobs))
    program = blocker_source(blocked) + FRESH
    result = subprocess.run([sys.executable, '-I', '-c', program, str(folder / 'jobs.json')], cwd=folder,
                            capture_output=True, text=True, timeout=300, env={'OMP_NUM_THREADS': '1'})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture(scope='module')
def exported(train_tiny, tmp_path_factory):
    """Per case: test.py's generator inputs and outputs on the two images, the exported files' outputs on the
    same inputs in the fresh interpreters, and what those interpreters report."""
    for package in ONNX_PACKAGES:
        pytest.importorskip(package, reason=f'optional: pip install {" ".join(ONNX_PACKAGES)}')
    root = tmp_path_factory.mktemp('export')
    images = root / 'images'
    for seed, (stem, (width, height)) in enumerate(SIZES.items()):
        pair_image(str(images / f'{stem}.png'), width, height, seed=seed)
    runs = {name: train_tiny('--n_epochs', 1, '--n_epochs_decay', 0, '--seed', 0, *flags, name=name, count=2)
            for name, flags in EXPERIMENTS.items()}
    # --model_suffix _ema picks <epoch>_net_G_ema.pth (train.py --ema_decay writes it): here other weights than G's.
    weights = torch.load(runs['resnet'].folder / 'latest_net_G.pth', weights_only=True)
    torch.save({k: v * 0.5 if k.endswith('weight') else v for k, v in weights.items()},
               runs['resnet'].folder / 'latest_net_G_ema.pth')
    test_py, export_py = command('test'), command('export')
    cases, jobs = {}, {'onnx': [], 'pt2': []}
    for case, (experiment, flags) in CASES.items():
        common = ['--name', experiment, '--checkpoints_dir', str(runs[experiment].checkpoints), *flags]
        model = ['--model', 'colorization'] if experiment == 'colorization' else []
        results = root / 'results' / case
        with generator_calls() as calls:
            test_py.main([*common, *model, '--dataroot', str(images), '--results_dir', str(results),
                          '--preprocess', 'none', '--num_threads', '0'])
        assert len(calls) == len(SIZES)
        export_py.main([*common, '--export_dir', str(root / case), '--crop_size', '32'])
        assert sorted(os.listdir(root / case)) == sorted(f'{STEMS[case]}.{ext}' for ext in ('json', 'onnx', 'pt2'))
        for stem, (x, _) in zip(SIZES, calls):
            np.save(root / case / f'{stem}_input.npy', x)
        for kind in jobs:
            jobs[kind].append({'case': case, 'file': str(root / case / f'{STEMS[case]}.{kind}'),
                               'inputs': [str(root / case / f'{stem}_input.npy') for stem in SIZES],
                               'outputs': [str(root / case / f'{stem}_{kind}.npy') for stem in SIZES]})
        gallery = results / experiment / f'test_{"1" if "--epoch" in flags else "latest"}'
        cases[case] = SimpleNamespace(calls=calls, folder=root / case, gallery=gallery,
                                      description=json.loads((root / case / f'{STEMS[case]}.json').read_text()))
    fresh = {'onnx': run_fresh(root / 'fresh_onnx', jobs['onnx'], blocked={'torch', *PROJECT}),
             'pt2': run_fresh(root / 'fresh_pt2', jobs['pt2'], blocked={'onnxruntime', 'onnx', *PROJECT})}
    for kind, report in fresh.items():
        for job in report['jobs']:
            case = cases[job['case']]
            setattr(case, kind, job)
            setattr(case, kind + '_outputs', [np.load(path) for path in job['outputs']])
    return SimpleNamespace(cases=cases, fresh=fresh, images=images, runs=runs, root=root)


@pytest.mark.parametrize('kind', ['onnx', 'pt2'])
@pytest.mark.parametrize('case', CASES)
def test_the_exported_file_gives_test_py_outputs(exported, case, kind):
    result = exported.cases[case]
    channels = 2 if case.startswith('colorization') else 3
    for (width, height), (_, expected), got in zip(SIZES.values(), result.calls, getattr(result, kind + '_outputs')):
        assert got.shape == expected.shape == (1, channels, height, width)
        assert np.abs(got - expected).max() <= 1e-4


def test_the_fresh_interpreters_had_neither_the_project_nor_the_other_runtime(exported):
    for kind, report in exported.fresh.items():
        assert REPO not in report['sys_path'] and '' not in report['sys_path']
        assert not set(PROJECT) & set(report['modules'])
    assert 'onnxruntime' in exported.fresh['onnx']['modules'] and 'torch' not in exported.fresh['onnx']['modules']
    assert 'torch' in exported.fresh['pt2']['modules'] and 'onnxruntime' not in exported.fresh['pt2']['modules']


def test_what_was_compared_is_what_test_py_saved_and_the_json_says(exported):
    """The hook saw test.py's real inputs and outputs: its PNGs are their 8-bit rounding, and the inputs are the
    images as the JSON describes them (pixel / 127.5 - 1)."""
    for case in ('unet_paper', 'resnet_eval'):
        result = exported.cases[case]
        for stem, (x, y) in zip(SIZES, result.calls):
            saved = np.asarray(Image.open(result.gallery / 'images' / f'{stem}_fake.png'))
            assert (saved == tensor2im(torch.from_numpy(y))).all()
            pixels = np.asarray(Image.open(exported.images / f'{stem}.png')).astype(np.float32)
            assert np.abs(x[0].transpose(1, 2, 0) - (pixels / 127.5 - 1)).max() < 1e-6

def test_the_two_test_modes_differ(exported, tmp_path):
    """So that comparing the paper's-mode export with test.py tells the modes apart: test.py --eval differs."""
    with generator_calls() as calls:
        command('test').main(['--dataroot', str(exported.images), '--name', 'unet', '--checkpoints_dir',
                              str(exported.runs['unet'].checkpoints), '--results_dir', str(tmp_path), '--eval',
                              '--preprocess', 'none', '--num_threads', '0'])
    paper = exported.cases['unet_paper'].calls
    assert all(np.abs(p[1] - e[1]).max() > 1e-2 for p, e in zip(paper, calls))


@pytest.mark.parametrize('case', CASES)
def test_the_description_is_in_the_json_and_in_both_files(exported, case):
    result = exported.cases[case]
    description = result.description
    timing = description.pop('time_per_image')
    assert result.onnx['metadata'] == result.pt2['metadata'] == description
    experiment, flags = CASES[case]
    assert description['test_mode'] == ('eval' if '--eval' in flags else 'paper')
    assert description['files'] == {'onnx': f'{STEMS[case]}.onnx', 'pt2': f'{STEMS[case]}.pt2'}
    assert description['direction'] == 'AtoB' and description['input']['range'] == description['output']['range'] == [-1, 1]
    multiple, smallest = {'unet': (32, 32), 'resnet': (4, 8), 'colorization': (32, 32), 'local': (8, 16)}[experiment]
    assert (description['size_rule']['multiple'], description['size_rule']['smallest']) == (multiple, smallest)
    channels = (1, 2) if experiment == 'colorization' else (3, 3)
    assert (description['input']['channels'], description['output']['channels']) == channels
    assert result.onnx['input_shape'] == ['batch', channels[0], f'{multiple}*h', f'{multiple}*w']
    if experiment == 'colorization':
        assert 'L / 50 - 1' in description['input']['meaning'] and 'ab / 110' in description['output']['meaning']
        assert description['input']['mapping'] is None and description['output']['mapping'] is None
    else:  # 8-bit pictures, as the reference's: 0..255 of each channel to [-1, 1]
        eight_bit = {'type': 'uint8', 'ranges': [[0.0, 255.0]] * 3, 'how': 'full'}
        assert description['input']['mapping'] == description['output']['mapping'] == eight_bit
        assert description['input']['meaning'] == 'RGB, as pixel / 127.5 - 1'
        assert 'clipped to 0..255 and rounded' in description['output']['to_units']
    # export.py timed the ONNX file against PyTorch on one image and compared their outputs.
    assert timing['size'] == [32, 32]  # --crop_size 32, rounded up to the size rule
    assert timing['onnxruntime_s'] > 0 and timing['pytorch_s'] > 0 and timing['max_difference'] <= 1e-4


@pytest.fixture(scope='module')
def exported_16bit(train_tiny, tmp_path_factory):
    """A run on one-channel 16-bit data (its value mappings measured: 100..3994 and 355..3945), test.py's outputs
    of its test pairs (16-bit PNGs) and export.py's files of the same checkpoint."""
    for package in ONNX_PACKAGES:
        pytest.importorskip(package, reason=f'optional: pip install {" ".join(ONNX_PACKAGES)}')
    run_ = train_tiny('--n_epochs', 1, '--n_epochs_decay', 0, '--seed', 0, name='depth', count=3,
                      make=make_16bit_pairs)
    root = tmp_path_factory.mktemp('export_16bit')
    common = ['--name', 'depth', '--checkpoints_dir', str(run_.checkpoints)]
    command('test').main([*common, '--dataroot', str(run_.data), '--results_dir', str(root / 'results'),
                          '--preprocess', 'none', '--num_threads', '0'])
    command('export').main([*common, '--export_dir', str(root / 'export'), '--crop_size', '32'])
    saved = json.loads((run_.folder / 'architecture.json').read_text())
    return SimpleNamespace(run=run_, saved=saved, folder=root / 'export',
                           images=root / 'results' / 'depth' / 'test_latest' / 'images')


def load_exported(path):
    """(run: the network's input -> its output, the description inside the file), as a user of the file loads it."""
    if path.suffix == '.onnx':
        import onnxruntime
        session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
        description = json.loads(session.get_modelmeta().custom_metadata_map['pix2pix'])
        return (lambda x: session.run(['output'], {'input': x})[0]), description
    extra = {'pix2pix.json': ''}
    program = torch.export.load(path, extra_files=extra).module()
    return (lambda x: program(torch.from_numpy(x)).detach().numpy()), json.loads(extra['pix2pix.json'])


def to_network(values, mapping):
    """An H x W x C array in the data's units as the files' (1, C, H, W) input, by the description's formula:
    (value - low) / ((high - low) / 2) - 1, in float32."""
    low = np.float32([low for low, _ in mapping['ranges']])
    half = np.float32([(high - low) / 2 for low, high in mapping['ranges']])
    return ((values.astype(np.float32) - low) / half - 1).transpose(2, 0, 1)[None]


def to_units(output, mapping):
    """The files' (1, C, H, W) output in the data's units, H x W x C: (output + 1) / 2 * (high - low) + low."""
    low = np.float64([low for low, _ in mapping['ranges']])
    width = np.float64([high - low for low, high in mapping['ranges']])
    return (output[0].transpose(1, 2, 0).astype(np.float64) + 1) / 2 * width + low


@pytest.mark.parametrize('kind', ['onnx', 'pt2'])
def test_with_the_described_mapping_the_exported_file_gives_test_py_16_bit_files(exported_16bit, kind):
    run_file, description = load_exported(exported_16bit.folder / f'latest_net_G.{kind}')
    assert description == {k: v for k, v in json.loads((exported_16bit.folder / 'latest_net_G.json').read_text())
                           .items() if k != 'time_per_image'}
    assert description['input']['mapping'] == exported_16bit.saved['mapping_A']
    assert description['output']['mapping'] == exported_16bit.saved['mapping_B']
    assert description['input']['mapping']['how'] == 'measured' and description['input']['channels'] == 1
    assert description['output']['channels'] == 1
    assert 'clipped to 0..65535 and rounded to the nearest integer (uint16)' in description['output']['to_units']
    for stem in ('000', '001', '002'):
        values = np.asarray(Image.open(exported_16bit.run.data / 'testA' / f'{stem}.png'))[:, :, None]
        written = np.asarray(Image.open(exported_16bit.images / f'{stem}_fake_B.png'))[:, :, None]
        assert values.dtype == written.dtype == np.uint16 and written.max() > 1000  # 16-bit values, not 8-bit's
        units = to_units(run_file(to_network(values, description['input']['mapping'])),
                         description['output']['mapping'])
        ours = np.clip(np.round(units), 0, 65535).astype(np.uint16)
        # ONNX Runtime's arithmetic differs from PyTorch's in the last bits of float32 (about 1e-3 of a level
        # here), which can move a value across a rounding boundary only within a hair of it: off by one there.
        near_half = np.abs(units - np.floor(units) - 0.5) < 0.01
        assert (ours == written)[~near_half].all()
        assert np.abs(ours.astype(int) - written)[near_half].max(initial=0) <= 1


def test_a_checkpoint_trained_b_to_a_takes_b_s_mapping_for_its_input(exported_16bit, tmp_path):
    """The direction saved with the checkpoint (export.py has no --direction) says which side is the input."""
    folder = tmp_path / 'checkpoints' / 'depth'
    shutil.copytree(exported_16bit.run.folder, folder)
    saved = {**exported_16bit.saved, 'direction': 'BtoA'}
    (folder / 'architecture.json').write_text(json.dumps(saved))
    command('export').main(['--name', 'depth', '--checkpoints_dir', str(tmp_path / 'checkpoints'), '--export_dir',
                            str(tmp_path / 'out'), '--crop_size', '32'])
    description = json.loads((tmp_path / 'out' / 'latest_net_G.json').read_text())
    assert description['direction'] == 'BtoA'
    assert description['input']['mapping'] == saved['mapping_B'] != saved['mapping_A']
    assert description['output']['mapping'] == saved['mapping_A']


def test_colorization_of_one_image_file(exported, tmp_path):
    """test.py --dataroot FILE with a colorization model: the photo's own colours are its target."""
    run_ = exported.runs['colorization']
    command('test').main(['--dataroot', str(exported.images / 'b.png'), '--name', 'colorization', '--model',
                          'colorization', '--checkpoints_dir', str(run_.checkpoints), '--results_dir', str(tmp_path),
                          *CASES['colorization_eval'][1], '--preprocess', 'none', '--num_threads', '0'])
    images = tmp_path / 'colorization' / 'test_1' / 'images'
    assert sorted(os.listdir(images)) == ['b_fake_B_rgb.png', 'b_real_A.png', 'b_real_B_rgb.png']
    from_folder = exported.cases['colorization_eval'].gallery / 'images' / 'b_fake_B_rgb.png'
    assert (np.asarray(Image.open(images / 'b_fake_B_rgb.png')) == np.asarray(Image.open(from_folder))).all()
    assert (tmp_path / 'colorization' / 'test_1' / 'metrics.json').exists()


def test_without_the_onnx_packages_export_says_how_to_install_them(tiny_run, tmp_path):
    site = sitecustomize_without(tmp_path / 'site', ONNX_PACKAGES)
    proc = run('export.py', '--name', 'tiny', '--checkpoints_dir', tiny_run.checkpoints, '--export_dir',
               tmp_path / 'out', check=False, env={'PYTHONPATH': site})
    assert proc.returncode == 1
    assert 'error: exporting to ONNX needs onnx, onnxscript, onnxruntime, which are optional: ' \
           'pip install onnx onnxscript onnxruntime' in proc.stderr
    assert 'Traceback' not in proc.stderr and not (tmp_path / 'out').exists()


def test_with_a_torch_too_old_to_export_export_says_so(tiny_run, tmp_path):
    """A torch without torch.compiler.is_exporting (before 2.7): a clear error, and the networks still run."""
    site = tmp_path / 'site'
    site.mkdir()
    (site / 'sitecustomize.py').write_text('import torch\ndel torch.compiler.is_exporting\n')
    proc = run('export.py', '--name', 'tiny', '--checkpoints_dir', tiny_run.checkpoints, '--export_dir',
               tmp_path / 'out', check=False, env={'PYTHONPATH': site})
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert 'lacks (torch 2.7 has it): pip install -U torch' in proc.stderr
    proc = run('test.py', '--dataroot', tiny_run.data, '--name', 'tiny', '--checkpoints_dir', tiny_run.checkpoints,
               '--results_dir', tmp_path / 'results', '--load_size', 32, '--crop_size', 32, env={'PYTHONPATH': site})
    assert 'processed 3 images' in proc.stdout


@pytest.mark.parametrize('flags', [['--amp', 'bf16'], ['--compile'], ['--channels_last'], ['--device', 'cuda']])
def test_export_takes_no_flag_that_would_not_give_float32_cpu_files(flags, capsys):
    with pytest.raises(SystemExit) as error:
        ExportOptions().parse(['--name', 'x', *flags])
    assert error.value.code == 2
    assert (f'unrecognized arguments: {" ".join(flags)} (export.py --help lists the flags it takes)'
            in capsys.readouterr().err)


def test_export_takes_the_references_cpu_choice_and_refuses_a_gpu():
    assert ExportOptions().parse(['--name', 'x', '--gpu_ids', '-1']).device == 'cpu'
    with pytest.raises(UserError, match=r'export.py runs on the CPU \(--gpu_ids 0 given\)'):
        ExportOptions().parse(['--name', 'x', '--gpu_ids', '0'])
