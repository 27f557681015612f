"""pix2pixHD's coarse-to-fine generators (Wang et al. 2018): --netG global (G1) and --netG local (the local
enhancers around G1). Their definitions, their size rule and errors, --load_global, and train.py + test.py."""
import contextlib
import io
import json

import pytest
import torch
import torch.nn as nn
from PIL import Image

import models
from models import export, networks
from models.base_model import generator_size_multiple
from options.train_options import TrainOptions
from tests.scripts import TINY_NET
from util.errors import UserError

torch.set_num_threads(1)
SMALL = dict(n_downsample_global=2, n_blocks_global=1, n_blocks_local=1)  # sizes: multiples of 2 ** (2 + N)
SMALL_FLAGS = ['--n_downsample_global', 2, '--n_blocks_global', 1, '--n_blocks_local', 1]


def pool(x, times):
    """pix2pixHD's downsampling of the input, times times."""
    for _ in range(times):
        x = nn.functional.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
    return x


def test_the_global_generator_is_pix2pixhds_g1():
    net = networks.define_G(3, 2, 4, 'global', 'instance', n_downsample_global=3, n_blocks_global=2)
    assert isinstance(net, networks.GlobalGenerator)
    layers = list(net.model)
    # pad, 7x7 conv, norm, ReLU; 3 x (stride-2 conv, norm, ReLU); 2 blocks; 3 x (transposed conv, norm, ReLU);
    # pad, 7x7 conv, tanh: pix2pixHD's order, so its model.N names.
    assert len(layers) == 4 + 3 * 3 + 2 + 3 * 3 + 3
    assert [m.out_channels for m in layers if type(m) is nn.Conv2d] == [4, 8, 16, 32, 2]
    assert [m.stride for m in layers if type(m) is nn.Conv2d] == [(1, 1), (2, 2), (2, 2), (2, 2), (1, 1)]
    assert [m.out_channels for m in layers if isinstance(m, nn.ConvTranspose2d)] == [16, 8, 4]
    assert all(m.output_padding == (1, 1) for m in layers if isinstance(m, nn.ConvTranspose2d))
    assert sum(isinstance(m, networks.ResnetBlock) for m in layers) == 2 and isinstance(layers[-1], nn.Tanh)


@pytest.mark.parametrize('netG,enhancers', [('global', 1), ('local', 1), ('local', 2)])
def test_outputs_at_each_scale_and_in_tanh_range(netG, enhancers):
    torch.manual_seed(0)
    net = networks.define_G(3, 2, 4, netG, 'instance', True, n_local_enhancers=enhancers, **SMALL)
    shapes = {}
    if netG == 'local':
        net.model.register_forward_hook(lambda m, i, o: shapes.update(global_=o.shape))
        for n in range(1, enhancers + 1):
            getattr(net, f'model{n}_2').register_forward_hook(lambda m, i, o, n=n: shapes.update({n: o.shape}))
    x = torch.rand(2, 3, 64, 48) * 2 - 1
    y = net(x)
    assert y.shape == (2, 2, 64, 48) and y.abs().max() <= 1 and y.std() > 0
    if netG == 'local':
        # The global part: ngf * 2^N features at 1 / 2^N of the size; enhancer n: ngf * 2^(N-n) at 1 / 2^(N-n).
        assert shapes['global_'] == (2, 4 * 2 ** enhancers, 64 // 2 ** enhancers, 48 // 2 ** enhancers)
        for n in range(1, enhancers):
            scale = 2 ** (enhancers - n)
            assert shapes[n] == (2, 4 * scale, 64 // scale, 48 // scale)


@pytest.mark.parametrize('enhancers', [1, 2])
def test_a_trained_global_generator_gives_the_local_one_the_same_coarse_features(enhancers):
    torch.manual_seed(0)
    trained = networks.define_G(3, 2, 4 * 2 ** enhancers, 'global', 'instance', **SMALL)
    local = networks.define_G(3, 2, 4, 'local', 'instance', n_local_enhancers=enhancers, **SMALL)
    local.load_global(trained.state_dict())
    features = {}
    local.model.register_forward_hook(lambda m, i, o: features.update(local=o))
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    local(x)
    coarse = pool(x, enhancers)  # what the global part sees
    torch.testing.assert_close(features['local'], trained.model[:-3](coarse), rtol=0, atol=0)
    with pytest.raises(RuntimeError):  # a global generator of other filters does not fit
        local.load_global(networks.define_G(3, 2, 4, 'global', 'instance', **SMALL).state_dict())


@pytest.mark.parametrize('netG', networks.COARSE_TO_FINE)
@pytest.mark.parametrize('norm', networks.NORMS)
@pytest.mark.parametrize('upsample', networks.UPSAMPLES)
def test_define_G_builds_them_with_each_norm_and_upsampling(netG, norm, upsample):
    torch.manual_seed(0)
    net = networks.define_G(3, 3, 4, netG, norm, use_dropout=True, upsample=upsample, **SMALL)
    norms = {'batch': networks.BatchNorm2d, 'syncbatch': networks.SyncBatchNorm, 'instance': nn.InstanceNorm2d}
    if norm in norms:
        assert any(isinstance(m, norms[norm]) for m in net.modules())
    else:
        assert not any(isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) for m in net.modules())
    levels = 2 + (netG == 'local')  # one transposed convolution (or resize) per x2
    assert sum(isinstance(m, networks.UpsampleConv2d) for m in net.modules()) == (levels if upsample == 'resize' else 0)
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in net.modules()) == (0 if upsample == 'resize' else levels)
    assert any(isinstance(m, nn.Dropout) for m in net.modules())
    assert not any(isinstance(m, nn.Dropout) for m in networks.define_G(3, 3, 4, netG, norm, **SMALL).modules())
    if norm != 'syncbatch':  # synchronised batch norm runs under torchrun only
        assert net(torch.rand(2, 3, 32, 32)).shape == (2, 3, 32, 32)


def parse(*flags):
    with contextlib.redirect_stdout(io.StringIO()):
        return TrainOptions().parse(['--dataroot', '.', *TINY_NET, *map(str, flags)])


@pytest.mark.parametrize('flags,multiple,smallest', [
    (['--netG', 'global', '--load_size', 64, '--crop_size', 64], 16, 32),
    (['--netG', 'global', '--n_downsample_global', 2], 4, 8),
    (['--netG', 'local', *SMALL_FLAGS], 8, 16),
    (['--netG', 'local', *SMALL_FLAGS, '--n_local_enhancers', 2], 16, 32),
    (['--netG', 'unet_32'], 32, 32),
    (['--netG', 'resnet_6blocks'], 4, 8),
])
def test_size_multiples_for_padding_and_export(flags, multiple, smallest):
    opt = parse(*flags)
    assert generator_size_multiple(opt) == multiple
    assert export.size_rule(opt.netG, opt.n_downsample_global, opt.n_local_enhancers) == (multiple, smallest)


@pytest.mark.parametrize('flags,message', [
    (['--netG', 'global', '--load_size', 40, '--crop_size', 40],
     '--netG global needs images whose sides are multiples of 16 (2 ** (--n_downsample_global)), at least 32, but '
     'training images are 40 pixels; use --crop_size 32 or lower --n_downsample_global'),
    (['--netG', 'global', '--load_size', 16, '--crop_size', 16],
     '--netG global needs images whose sides are multiples of 16 (2 ** (--n_downsample_global)), at least 32, but '
     'training images are 16 pixels; use --crop_size 32 or lower --n_downsample_global'),
    (['--netG', 'local', *SMALL_FLAGS, '--load_size', 20, '--crop_size', 20],
     '--netG local needs images whose sides are multiples of 8 (2 ** (--n_downsample_global + --n_local_enhancers)), '
     'at least 16, but training images are 20 pixels; use --crop_size 16 or lower --n_downsample_global'),
    (['--n_blocks_global', 3], '--n_blocks_global shapes --netG global or local, not unet_32: add --netG local, or '
                               'drop --n_blocks_global'),
    (['--netG', 'global', '--n_local_enhancers', 2], '--n_local_enhancers shapes --netG local, not global: add '
                                                     '--netG local, or drop --n_local_enhancers'),
    (['--netG', 'local', '--n_local_enhancers', 0], '--n_local_enhancers 0: give at least 1'),
    (['--netG', 'global', '--n_downsample_global', 0], '--n_downsample_global 0: give at least 1'),
    (['--load_global', 'G.pth'], '--load_global loads the global part of --netG local, but --netG is unet_32: add '
                                 '--netG local, or drop --load_global'),
    (['--niter_fix_global', 1], '--niter_fix_global keeps the coarse parts of --netG local fixed, but --netG is '
                                'unet_32: add --netG local, or drop --niter_fix_global'),
    (['--netG', 'local', *SMALL_FLAGS, '--niter_fix_global', -1], '--niter_fix_global -1: give a number of epochs'),
    (['--netG', 'local', *SMALL_FLAGS, '--niter_fix_global', 2],
     '--niter_fix_global 2 keeps the global part of --netG local fixed, but it is untrained: add --load_global '
     'checkpoints/NAME/latest_net_G.pth (a --netG global run at half the size), or drop --niter_fix_global'),
    (['--netG', 'local', *SMALL_FLAGS, '--load_global', 'no/such.pth'],
     "--load_global no/such.pth: no such file; give a --netG global run's checkpoint"),
])
def test_impossible_settings_are_one_line_errors_naming_the_fix(flags, message):
    with pytest.raises(UserError) as error:
        parse(*flags)
    assert str(error.value).startswith('error: ' + message) and '\n' not in str(error.value)


def test_load_global_starts_the_global_part_from_a_global_run(tmp_path):
    torch.manual_seed(0)
    trained = networks.define_G(3, 3, 16, 'global', 'batch', True, **SMALL)  # --ngf 16 = 8 * 2^1
    torch.save(trained.state_dict(), tmp_path / 'latest_net_G.pth')
    opt = parse('--netG', 'local', *SMALL_FLAGS, '--load_global', tmp_path / 'latest_net_G.pth')
    with contextlib.redirect_stdout(io.StringIO()):
        model = models.create_model(opt)
    loaded = model.netG.model.state_dict()
    assert all(torch.equal(value, trained.state_dict()[f'model.{key}']) for key, value in loaded.items())

    torch.save(networks.define_G(3, 3, 8, 'global', 'batch', True, **SMALL).state_dict(), tmp_path / 'small.pth')
    opt = parse('--netG', 'local', *SMALL_FLAGS, '--load_global', tmp_path / 'small.pth')
    with pytest.raises(UserError, match=f'^error: --load_global {tmp_path}/small.pth does not fit the global part of '
                                        f'this --netG local: it must come from --netG global --ngf 16 '
                                        f'--n_downsample_global 2 --n_blocks_global 1 with'), \
            contextlib.redirect_stdout(io.StringIO()):
        models.create_model(opt)


@pytest.mark.parametrize('enhancers', [1, 2])
def test_niter_fix_global_trains_only_the_finest_enhancer_for_its_epochs(enhancers, tmp_path):
    global_run = tmp_path / 'latest_net_G.pth'  # --ngf 8 * 2^enhancers
    torch.save(networks.define_G(3, 3, 8 * 2 ** enhancers, 'global', 'batch', True, **SMALL).state_dict(), global_run)
    opt = parse('--netG', 'local', *SMALL_FLAGS, '--n_local_enhancers', enhancers, '--niter_fix_global', 1,
                '--load_global', global_run, '--seed', 0)
    with contextlib.redirect_stdout(io.StringIO()):
        model = models.create_model(opt)
        model.setup(opt)
    size = 64  # a multiple of 2 ** (2 + enhancers), and large enough for the 70x70 PatchGAN's batch norm
    torch.manual_seed(0)
    batch = {'A': torch.rand(1, 3, size, size) * 2 - 1, 'B': torch.rand(1, 3, size, size) * 2 - 1,
             'A_paths': ['a.png'], 'B_paths': ['a.png']}
    finest = f'model{enhancers}_'

    def step(epoch):
        before = {name: p.detach().clone() for name, p in model.netG.named_parameters()}
        model.begin_epoch(epoch)
        model.set_input(batch)
        model.optimize_parameters()
        return {name for name, p in model.netG.named_parameters() if not torch.equal(p, before[name])}

    changed = step(1)  # fixed: the finest enhancer alone moves
    assert changed and all(name.startswith(finest) for name in changed)
    assert any(name.startswith('model.') for name in step(2))  # from epoch 2 on, everything trains


def test_train_and_test_a_local_generator(train_tiny, runner, tmp_path):
    run = train_tiny('--netG', 'local', '--n_local_enhancers', 1, *SMALL_FLAGS, '--ngf', 4, '--n_epochs', 1,
                     '--n_epochs_decay', 0, name='local', count=2)
    saved = json.loads((run.folder / 'architecture.json').read_text())
    assert {k: saved[k] for k in ('netG', 'ngf', 'n_downsample_global', 'n_blocks_global', 'n_local_enhancers',
                                  'n_blocks_local')} == dict(netG='local', ngf=4, n_downsample_global=2,
                                                             n_blocks_global=1, n_local_enhancers=1, n_blocks_local=1)
    # test.py takes the architecture from architecture.json; --preprocess none at 36 pixels: padded to 40.
    Image.new('RGB', (72, 36), (90, 30, 200)).save(run.data / 'test' / 'odd.png')
    result = runner.run('test.py', '--dataroot', run.data, '--name', 'local', '--checkpoints_dir', run.checkpoints,
                        '--results_dir', tmp_path, '--num_threads', 0, '--preprocess', 'none')
    assert 'Total number of parameters' in result.stdout
    assert Image.open(tmp_path / 'local' / 'test_latest' / 'images' / 'odd_fake_B.png').size == (36, 36)


def test_an_architecture_json_without_the_new_options_still_loads(train_tiny, runner, tmp_path):
    run = train_tiny('--n_epochs', 1, '--n_epochs_decay', 0, name='old', count=2)
    path = run.folder / 'architecture.json'
    saved = json.loads(path.read_text())
    old = {k: v for k, v in saved.items() if not k.startswith('n_') or k == 'n_layers_D'}
    assert len(old) == len(saved) - 4
    path.write_text(json.dumps(old))
    runner.run('test.py', '--dataroot', run.data, '--name', 'old', '--checkpoints_dir', run.checkpoints,
               '--results_dir', tmp_path, '--num_threads', 0)
