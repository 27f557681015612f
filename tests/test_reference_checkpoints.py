"""Reference-implementation checkpoints load into our networks with strict=True and compute the same.

The first test uses the real files in ../shared/reference_checkpoints (skipped where that folder is
absent). The second needs no files: it writes down the reference's construction rules (module nesting,
which layers carry biases and norms) as an independent spec and compares key names and shapes.
"""
import json
import os

import numpy as np
import pytest
import torch

from models import checkpoint, networks

torch.set_num_threads(1)
SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), '..', 'shared',
                      'reference_checkpoints')


def build(config, role):
    if role == 'G':
        return networks.define_G(config['input_nc'], config['output_nc'], config['ngf'], config['netG'],
                                 config['norm'], config['use_dropout'])
    return networks.define_D(config['input_nc'], config['ndf'], config['netD'], config['n_layers_D'], config['norm'])


def reference_index():
    path = os.path.join(SHARED, 'index.json')
    if not os.path.exists(path):
        pytest.skip(f'{path} is absent (the shared reference checkpoints are not on this machine)')
    with open(path) as f:
        return json.load(f)


def test_every_shared_reference_checkpoint_loads_strictly_and_matches_its_outputs():
    index = reference_index()
    assert index, 'no checkpoints listed'
    for name, info in index.items():
        net = build(info['config'], info['role']).eval()
        state = checkpoint.load_state_dict(os.path.join(SHARED, f'{name}.pth'))
        assert {k: list(v.shape) for k, v in state.items()} == info['keys'], name
        net.load_state_dict(state, strict=True)
        io = np.load(os.path.join(SHARED, f'{name}_io.npz'))
        with torch.no_grad():
            out = net(torch.from_numpy(io['input']))
        assert torch.allclose(out, torch.from_numpy(io['output_eval']), atol=1e-4), name
        if info['role'] == 'G':  # and test.py could rebuild this generator from the file alone
            inferred = checkpoint.infer_generator_options(state)
            assert inferred['netG'] == info['config']['netG'] and inferred['norm'] == info['config']['norm']
            assert inferred['ngf'] == info['config']['ngf']


# --- The reference's rules, written out independently of models/networks.py -------------------------

def conv(keys, name, cin, cout, k, bias):
    keys[name + '.weight'] = [cout, cin, k, k]
    if bias:
        keys[name + '.bias'] = [cout]


def convT(keys, name, cin, cout, k, bias):
    keys[name + '.weight'] = [cin, cout, k, k]
    if bias:
        keys[name + '.bias'] = [cout]


def norm(keys, name, channels, kind):
    if kind == 'batch':
        for leaf in ('weight', 'bias', 'running_mean', 'running_var'):
            keys[f'{name}.{leaf}'] = [channels]
        keys[f'{name}.num_batches_tracked'] = []


def reference_unet_keys(input_nc, output_nc, num_downs, ngf, kind):
    bias = kind == 'instance'
    # (outer_nc, inner_nc) from the innermost block outwards, exactly as UnetGenerator.__init__ lists them.
    blocks = [(ngf * 8, ngf * 8)] * (num_downs - 4) + [(ngf * 4, ngf * 8), (ngf * 2, ngf * 4), (ngf, ngf * 2)]
    blocks = blocks[::-1]  # outermost-but-one first
    keys = {}
    conv(keys, 'model.model.0', input_nc, ngf, 4, bias)
    convT(keys, 'model.model.3', ngf * 2, output_nc, 4, True)
    prefix = 'model.model.1'
    for i, (outer, inner) in enumerate(blocks):
        innermost = i == len(blocks) - 1
        conv(keys, prefix + '.model.1', outer, inner, 4, bias)
        if innermost:
            convT(keys, prefix + '.model.3', inner, outer, 4, bias)
            norm(keys, prefix + '.model.4', outer, kind)
        else:
            norm(keys, prefix + '.model.2', inner, kind)
            convT(keys, prefix + '.model.5', inner * 2, outer, 4, bias)
            norm(keys, prefix + '.model.6', outer, kind)
        prefix += '.model.3'
    return keys


def reference_resnet_keys(input_nc, output_nc, ngf, n_blocks, kind, dropout):
    bias = kind == 'instance'
    keys = {}
    conv(keys, 'model.1', input_nc, ngf, 7, bias)
    norm(keys, 'model.2', ngf, kind)
    conv(keys, 'model.4', ngf, ngf * 2, 3, bias)
    norm(keys, 'model.5', ngf * 2, kind)
    conv(keys, 'model.7', ngf * 2, ngf * 4, 3, bias)
    norm(keys, 'model.8', ngf * 4, kind)
    second = 6 if dropout else 5
    for b in range(n_blocks):
        conv(keys, f'model.{10 + b}.conv_block.1', ngf * 4, ngf * 4, 3, bias)
        norm(keys, f'model.{10 + b}.conv_block.2', ngf * 4, kind)
        conv(keys, f'model.{10 + b}.conv_block.{second}', ngf * 4, ngf * 4, 3, bias)
        norm(keys, f'model.{10 + b}.conv_block.{second + 1}', ngf * 4, kind)
    up = 10 + n_blocks
    convT(keys, f'model.{up}', ngf * 4, ngf * 2, 3, bias)
    norm(keys, f'model.{up + 1}', ngf * 2, kind)
    convT(keys, f'model.{up + 3}', ngf * 2, ngf, 3, bias)
    norm(keys, f'model.{up + 4}', ngf, kind)
    conv(keys, f'model.{up + 7}', ngf, output_nc, 7, True)
    return keys


def reference_nlayer_keys(input_nc, ndf, n_layers, kind):
    bias = kind == 'instance'
    keys = {}
    conv(keys, 'model.0', input_nc, ndf, 4, True)
    index, mult = 2, 1
    for n in range(1, n_layers + 1):
        prev, mult = mult, min(2 ** n, 8)
        conv(keys, f'model.{index}', ndf * prev, ndf * mult, 4, bias)
        norm(keys, f'model.{index + 1}', ndf * mult, kind)
        index += 3
    conv(keys, f'model.{index}', ndf * mult, 1, 4, True)
    return keys


def shapes(net):
    return {k: list(v.shape) for k, v in net.state_dict().items()}


@pytest.mark.parametrize('num_downs', [5, 6, 7, 8])
@pytest.mark.parametrize('kind', ['batch', 'instance', 'none'])
def test_unet_keys_follow_the_reference_rules(num_downs, kind):
    with torch.device('meta'):
        net = networks.define_G(3, 2, 8, f'unet_{2 ** num_downs}', kind, use_dropout=True)
    assert shapes(net) == reference_unet_keys(3, 2, num_downs, 8, kind)


@pytest.mark.parametrize('n_blocks', [6, 9])
@pytest.mark.parametrize('kind', ['batch', 'instance'])
@pytest.mark.parametrize('dropout', [False, True])
def test_resnet_keys_follow_the_reference_rules(n_blocks, kind, dropout):
    with torch.device('meta'):
        net = networks.define_G(3, 3, 8, f'resnet_{n_blocks}blocks', kind, use_dropout=dropout)
    assert shapes(net) == reference_resnet_keys(3, 3, 8, n_blocks, kind, dropout)


@pytest.mark.parametrize('netD,n_layers', [('basic', 3), ('n_layers', 2), ('n_layers', 5)])
@pytest.mark.parametrize('kind', ['batch', 'instance'])
def test_patchgan_keys_follow_the_reference_rules(netD, n_layers, kind):
    with torch.device('meta'):
        net = networks.define_D(6, 8, netD, n_layers, kind)
    assert shapes(net) == reference_nlayer_keys(6, 8, n_layers, kind)


def test_a_reference_file_round_trips_and_infers_its_options(tmp_path):
    # A state_dict keyed exactly as the reference's spec loads strictly, and its options are recovered.
    torch.manual_seed(0)
    spec = reference_unet_keys(3, 3, 6, 8, 'batch')
    state = {k: torch.randn(v) if v else torch.tensor(3) for k, v in spec.items()}
    path = tmp_path / 'latest_net_G.pth'
    torch.save({'module.' + k: v for k, v in state.items()}, path)  # as saved from DataParallel
    loaded = checkpoint.load_state_dict(str(path))
    assert checkpoint.infer_generator_options(loaded) == dict(input_nc=3, output_nc=3, ngf=8, netG='unet_64',
                                                              norm='batch', no_dropout=None, upsample='transpose')
    networks.define_G(3, 3, 8, 'unet_64', 'batch').load_state_dict(loaded, strict=True)
