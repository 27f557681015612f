"""Tiled translation (test.py --tile): tiles that cover the image, blended without seams, exactly the whole-image
output for a generator of bounded reach, the paper's test mode normalising every tile with the whole image's
statistics, test.py and its errors."""
import contextlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import models
from models import networks, tiling
from options.app_options import AppOptions
from options.test_options import TestOptions
from tests.scripts import REPO, TINY_NET
from tests.test_export import command
from tests.test_own_data import make_pairs, SIZE
from util import arrays
from util.errors import UserError


@pytest.mark.parametrize('length,tile,overlap,multiple', [(100, 32, 8, 1), (96, 32, 0, 1), (33, 32, 16, 1),
                                                          (32, 32, 8, 1), (20, 32, 8, 1), (1024, 256, 64, 32),
                                                          (200, 64, 60, 4), (96, 32, 16, 16)])
def test_tiles_cover_the_image_and_share_at_least_the_overlap(length, tile, overlap, multiple):
    starts = tiling.tile_starts(length, tile, overlap, multiple)
    size = min(tile, length)
    assert starts[0] == 0 and starts[-1] + size == length and all(start % multiple == 0 for start in starts)
    assert all(0 < b - a <= max(multiple, size - overlap) for a, b in zip(starts, starts[1:]))
    weight = torch.zeros(length)
    for start in starts:
        weight[start:start + size] += tiling.ramp(start, size, length, overlap)
    assert (weight > 0).all()


def bounded_generator():
    """A ResNet generator in --eval: its output at a pixel depends on the input within about 28 pixels of it."""
    torch.manual_seed(0)
    net = networks.define_G(3, 3, 8, 'resnet_2blocks', 'batch', False, init_type='normal')
    for module in net.modules():  # running statistics other than the initial 0 and 1
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2)
    networks.set_test_mode(net, 'eval')
    return net


def test_a_generator_of_bounded_reach_gives_its_whole_image_output():
    net = bounded_generator()
    x = torch.rand(2, 3, 200, 296) * 2 - 1  # multiples of 4, which the generator takes whole
    with torch.no_grad():
        whole = net(x)
        # A quarter of the overlap (12 pixels) is beyond the generator's reach (10 pixels each way, measured).
        tiled = tiling.translate(net, net, x, tile=96, overlap=48, batch=3, multiple=4)
        # Without blending, the tiles' edges show: the generator saw reflected padding there, not the neighbours.
        hard = tiling.translate(net, net, x, tile=96, overlap=0, batch=3, multiple=4)
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max() < 1e-5
    assert (hard - whole).abs().max() > 1e-4  # a hundred times the tolerance above


def pointwise_generator():
    """1x1 convolutions around a batch norm: each output pixel depends only on its input pixel and the norm's
    statistics, so any difference between tiled and whole outputs is the statistics'."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 1), networks.BatchNorm2d(4), nn.Tanh(), nn.Conv2d(4, 3, 1))
    networks.set_test_mode(net, 'paper')
    return net


def test_the_papers_mode_normalises_every_tile_with_the_whole_images_statistics():
    net = pointwise_generator()
    x = torch.linspace(-1, 1, 64 * 96).reshape(1, 1, 64, 96).repeat(1, 3, 1, 1)  # tones differ across the image
    with torch.no_grad():
        whole = net(x)
        tiled = tiling.translate(net, net, x, tile=32, overlap=8, batch=2, multiple=1)
        # Each tile with its own statistics (what gathering avoids): the tiles' tones differ.
        own = tiling.run_tiles(net, x, 32, 8, 2, 1, 'tiles')
    # Each pixel counts once in the gathered statistics, so they are the whole image's.
    assert (tiled - whole).abs().max() < 1e-5
    assert (own - whole).abs().max() > 0.5
    assert all(layer.gathered is None for layer in tiling.normalisations(net))  # each image's own again


def test_test_py_in_tiles_on_16bit_data_of_one_file(runner, tmp_path):
    written = make_pairs(tmp_path / 'data', 'uint16_1', count=1)
    runner.run('train.py', '--dataroot', tmp_path / 'data', '--name', 'run', '--checkpoints_dir', tmp_path,
               *TINY_NET, '--netG', 'resnet_2blocks', '--n_epochs', 1, '--n_epochs_decay', 0)
    big = np.tile(written['test'][0][0], (6, 10, 1))  # 192x320 of the data's 16-bit values
    arrays.write_array(str(tmp_path / 'big.png'), big)
    outputs = {}
    # A quarter of the overlap (30) is beyond the ResNet's reach (about 28): tiled is whole, to the 16-bit level.
    tiles = ['--tile', 160, '--tile_overlap', 120]
    for name, flags in (('whole', []), ('tiled', [*tiles, '--tile_batch', 3]), ('bf16', [*tiles, '--amp', 'bf16'])):
        runner.run('test.py', '--dataroot', tmp_path / 'big.png', '--name', 'run', '--checkpoints_dir', tmp_path,
                   '--results_dir', tmp_path / name, '--eval', '--preprocess', 'none', '--num_threads', 0, *flags)
        outputs[name] = arrays.read_array(str(tmp_path / name / 'run' / 'test_latest' / 'images' / 'big_fake.png'))
    assert outputs['tiled'].dtype == np.uint16 and outputs['tiled'].shape == (6 * SIZE, 10 * SIZE, 1)
    assert np.abs(outputs['tiled'].astype(int) - outputs['whole'].astype(int)).max() <= 1
    assert np.abs(outputs['bf16'].astype(int) - outputs['tiled'].astype(int)).mean() < 100  # bf16's rounding


@pytest.mark.parametrize('flags,message', [
    (['--tile', 48], '--tile 48: --netG unet_32 takes sides that are multiples of 32, at least 32; use --tile 32, '
                     'or 0 for whole images'),
    (['--tile', 16], '--tile 16: --netG unet_32 takes sides that are multiples of 32, at least 32; use --tile 32'),
    (['--tile', 64, '--tile_overlap', 40], '--tile_overlap 40: neighbouring tiles of --tile 64 share 0 to 32 pixels '
                                           'with --netG unet_32 (they start on its grid of 32); use --tile_overlap '
                                           '32, or a larger --tile'),
    (['--tile', 64, '--tile_overlap', -1], '--tile_overlap -1: neighbouring tiles of --tile 64 share 0 to 32 pixels'),
    (['--netG', 'resnet_6blocks', '--tile', 64, '--tile_overlap', 62],
     '--tile_overlap 62: neighbouring tiles of --tile 64 share 0 to 60 pixels with --netG resnet_6blocks'),
    (['--tile', 64, '--tile_batch', 0], '--tile_batch 0: the generator takes at least 1 tile at a time'),
])
def test_impossible_tiles_are_one_line_errors_naming_the_fix(tmp_path, flags, message):
    with pytest.raises(UserError) as error:
        TestOptions().parse(['--dataroot', str(tmp_path), '--name', 'x', '--checkpoints_dir', str(tmp_path),
                             '--netG', 'unet_32', *map(str, flags)])
    assert error.value.message.startswith(message)


def readme_function():
    """The tiling function README.md gives users of exported files, defined from the README's own text."""
    readme = open(os.path.join(REPO, 'README.md')).read()
    code = readme.split('A user of an exported model')[1].split('```python\n')[1].split('```')[0]
    namespace = {}
    exec(code, namespace)
    return namespace['translate_tiled']


def test_the_readme_function_tiles_an_exported_file_as_test_py_does(runner, tiny_run, tmp_path):
    onnxruntime = pytest.importorskip('onnxruntime', reason='optional: pip install onnx onnxscript onnxruntime')
    runner.run('export.py', '--name', 'tiny', '--checkpoints_dir', tiny_run.checkpoints, '--eval',
               '--export_dir', tmp_path, '--crop_size', 32)
    session = onnxruntime.InferenceSession(str(tmp_path / 'latest_net_G.onnx'), providers=['CPUExecutionProvider'])
    x = torch.rand(1, 3, 96, 160, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with contextlib.redirect_stdout(io.StringIO()):
        opt = TestOptions().parse(['--name', 'tiny', '--checkpoints_dir', str(tiny_run.checkpoints), '--model', 'test',
                                   '--dataroot', str(tmp_path), '--eval', '--tile', '64', '--tile_overlap', '32'])
        model = models.create_model(opt)
        model.setup(opt)
    model.set_input({'A': x, 'A_paths': ['x']})
    model.test()
    tiled = readme_function()(lambda tile: session.run(['output'], {'input': tile})[0], x.numpy(), 64, 32, 32)
    assert tiled.shape == (1, 3, 96, 160)
    assert np.abs(tiled - model.fake.numpy()).max() < 1e-4


def test_the_web_page_translates_large_uploads_in_tiles(tiny_run, tmp_path):
    app = command('app')
    upload = tmp_path / 'large.png'
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (96, 160, 3), dtype=np.uint8)).save(upload)
    outputs = {}
    for name, flags in (('whole', []), ('tiled', ['--tile', '64', '--tile_overlap', '32'])):
        argv = ['--name', 'tiny', '--checkpoints_dir', str(tiny_run.checkpoints), *flags]
        with contextlib.redirect_stdout(io.StringIO()):
            translator = app.Translator(argv, AppOptions().parse(argv))
            _, picture, _, _ = translator.translate('tiny', str(upload))
        outputs[name] = np.asarray(Image.open(picture)).astype(int)
    with contextlib.redirect_stdout(io.StringIO()):
        opt = TestOptions().parse(['--name', 'tiny', '--checkpoints_dir', str(tiny_run.checkpoints), '--model', 'test',
                                   '--dataroot', str(upload), '--eval', '--tile', '64', '--tile_overlap', '32'])
        model = models.create_model(opt)
        model.setup(opt)
    x = torch.from_numpy(np.array(Image.open(upload))).permute(2, 0, 1)[None].float() / 127.5 - 1
    model.set_input({'A': x, 'A_paths': ['large']})
    model.test()
    expected = ((model.fake[0].clamp(-1, 1) + 1) / 2 * 255).round().permute(1, 2, 0).numpy().astype(int)
    assert outputs['tiled'].shape == (96, 160, 3)
    assert np.abs(outputs['tiled'] - expected).max() <= 1  # the page's tiles are test.py's
    assert np.abs(outputs['tiled'] - outputs['whole']).max() > 0  # and they were tiles: a U-Net's differ a little


@pytest.mark.parametrize('device', ['cpu', pytest.param('cuda', marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason='the GPU memory figure needs a CUDA device'))])
def test_the_memory_benchmark_measures_each_process_whole_and_tiled(tmp_path, device):
    """scripts/tile_benchmark.py (docs/performance.md's memory table) at its smallest: one test.py process per
    mode, each with its own peak resident memory, and on a GPU the peak CUDA allocation too."""
    result = subprocess.run([sys.executable, 'scripts/tile_benchmark.py', '--sizes', '512', '--whole_up_to', '512',
                             '--tile', '256', '--tile_overlap', '0', '--ngf', '4', '--device', device,
                             '--json', str(tmp_path / 'memory.json')], cwd=REPO, capture_output=True, text=True,
                            timeout=300, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / 'memory.json').read_text())
    assert (report['device'], report['ngf'], report['tile']) == (device, 4, 256)
    assert [(run['size'], run['mode']) for run in report['runs']] == [(512, 'whole'), (512, 'tiled')]
    for run in report['runs']:
        # A process that imports torch and runs a generator holds more than 100 MB; 512x512 far less than 8 GB.
        assert 0.1 < run['peak_rss_gb'] < 8 and run['seconds'] > 0
        assert (run['peak_cuda_gb'] is None) == (device == 'cpu')
        if device == 'cuda':
            assert run['peak_cuda_gb'] > 0
    assert f'512x512 tiled: peak RSS {report["runs"][1]["peak_rss_gb"]} GB' in result.stdout
