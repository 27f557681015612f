"""Loading network files safely, and knowing which architecture a file was saved for.

Files are plain state_dicts, as in the reference implementation, so both implementations read each
other's checkpoints. The architecture options live beside them in architecture.json; for a file
without one (a reference checkpoint), they are inferred from the key names and shapes.
"""
import itertools
import json
import os

import torch

from models import networks
from util.errors import UserError
from util.files import atomic_write_text

G_OPTIONS = ('input_nc', 'output_nc', 'ngf', 'netG', 'norm', 'no_dropout', 'upsample', 'n_downsample_global',
             'n_blocks_global', 'n_local_enhancers', 'n_blocks_local')
D_OPTIONS = ('ndf', 'netD', 'n_layers_D', 'num_D', 'spectral_norm_D')
# How the values of A and of B map to the network's (util/value_mapping.py): test.py, export.py and app.py use
# the training's.
VALUE_MAPPINGS = ('mapping_A', 'mapping_B')


def load_state_dict(path):
    """Read a state_dict with weights_only=True (a crafted pickle cannot run code) and normalise it."""
    if not os.path.isfile(path):
        raise UserError(f'checkpoint {path} does not exist. Check --name, --checkpoints_dir, --epoch '
                              f'and --load_iter (files there: {", ".join(sorted(os.listdir(os.path.dirname(path))))})'
                              if os.path.isdir(os.path.dirname(path)) else
                              f'checkpoint {path} does not exist: no folder {os.path.dirname(path)}. '
                              f'Check --name and --checkpoints_dir.')
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # torch raises several types for truncated zips, bad pickles and refused globals
        raise UserError(f'cannot load checkpoint {path}: {str(e).splitlines()[0]}. The file is truncated, '
                              f'corrupt or not a weights file; restore it or load another epoch with --epoch.')
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f'{path} does not hold a state_dict of tensors.')
    if hasattr(state, '_metadata'):
        del state._metadata
    # Saved from DataParallel/DDP by other code: drop the wrapper's prefix.
    if state and all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    return state


def drop_instance_norm_statistics(net, state):
    """Old reference checkpoints saved running statistics for InstanceNorm layers that have none now."""
    modules = dict(net.named_modules())
    for key in list(state):
        owner, _, leaf = key.rpartition('.')
        if isinstance(modules.get(owner), torch.nn.InstanceNorm2d) and leaf in ('running_mean', 'running_var',
                                                                              'num_batches_tracked'):
            if getattr(modules[owner], leaf, None) is None:
                del state[key]
    return state


def load_into(net, path, opt, role):
    state = drop_instance_norm_statistics(net, load_state_dict(path))
    expected = net.state_dict()
    if state.keys() == expected.keys() and all(state[k].shape == expected[k].shape for k in state):
        net.load_state_dict(state, strict=True)
        return
    message = f'checkpoint {path} does not fit the network built from your options.'
    if role.startswith('G'):  # G, or G_ema, G_A, ... (--model_suffix)
        saved = infer_generator_options(state)
        if saved:
            diffs = [f'--{k} {fmt(saved[k])} (you have {fmt(getattr(opt, k))})'
                     for k in G_OPTIONS if k in saved and saved[k] != getattr(opt, k)]
            message += ' It was saved with: ' + ', '.join(diffs) + '. Pass those options, or remove yours.'
    else:
        missing = sorted(expected.keys() - state.keys())[:3]
        unexpected = sorted(state.keys() - expected.keys())[:3]
        message += f' Missing keys: {missing}; unexpected keys: {unexpected}. Check {", ".join("--" + k for k in D_OPTIONS)} and --norm.'
    raise UserError(message)


def fmt(value):
    return value if not isinstance(value, bool) else str(value).lower()


def shape_signature(state):
    return {k: tuple(v.shape) for k, v in state.items()}


def infer_generator_options(state):
    """The generator options under which our define_G builds exactly these keys and shapes, or None."""
    signature = shape_signature(state)
    if 'model.model.0.weight' in signature:
        first, last = signature['model.model.0.weight'], signature.get('model.model.3.weight')
        depth = max(k.count('model.') for k in signature) - 1
        names = [f'unet_{2 ** depth}']
        input_nc, ngf = first[1], first[0]
        # The last layer: a 4x4 transposed convolution (in, out, 4, 4), or with --upsample resize a 3x3 one (out, in, 3, 3).
        output_nc = None if not last else last[1] if last[-1] == 4 else last[0]
    elif 'model.1.weight' in signature:
        blocks = {k.split('.')[1] for k in signature if '.conv_block.' in k}
        names = [f'resnet_{len(blocks)}blocks']
        ngf, input_nc = signature['model.1.weight'][:2]
        output_nc = signature[max((k for k in signature if k.endswith('.weight')),
                                  key=lambda k: int(k.split('.')[1]))][0]
    else:
        return None
    if output_nc is None:
        return None
    for netG, upsample, norm, no_dropout in itertools.product(names, networks.UPSAMPLES, ('batch', 'instance', 'none'),
                                                              (False, True)):
        # Only shapes are compared: no memory, no initialisation (on 'meta', init_weights's normal_
        # would import torch._dynamo, 1.3 s).
        with torch.device('meta'):
            net = networks.define_G(input_nc, output_nc, ngf, netG, norm, not no_dropout, init_type=None,
                                    upsample=upsample)
        if shape_signature(net.state_dict()) == signature:
            return dict(input_nc=input_nc, output_nc=output_nc, ngf=ngf, netG=netG, norm=norm,
                        no_dropout=no_dropout if netG.startswith('resnet_') else None, upsample=upsample)
    return None


def architecture_path(opt):
    return os.path.join(opt.checkpoints_dir, opt.name, 'architecture.json')


def save_architecture(opt, names):
    keys = (G_OPTIONS if 'G' in names else ()) + (D_OPTIONS if 'D' in names else ()) + ('model', 'direction')
    keys += VALUE_MAPPINGS
    current = read_architecture(opt) or {}
    current.update({k: getattr(opt, k) for k in keys if hasattr(opt, k)})
    atomic_write_text(architecture_path(opt), json.dumps(current, indent=1, sort_keys=True) + '\n')


def read_architecture(opt):
    path = architecture_path(opt)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def file_prefix(opt):
    """The name network files start with: <epoch>, or iter_<N> with --load_iter."""
    return f'iter_{opt.load_iter}' if opt.load_iter > 0 else opt.epoch


def saved_architecture(opt):
    """(options, where they were read) of the checkpoint that opt names: architecture.json, or else the
    generator options inferred from the generator file's layers; (None, None) when there is neither."""
    saved = read_architecture(opt)
    if saved is not None:
        return saved, architecture_path(opt)
    generator_path = os.path.join(opt.checkpoints_dir, opt.name,
                                  f'{file_prefix(opt)}_net_G{getattr(opt, "model_suffix", "")}.pth')
    if os.path.isfile(generator_path):
        return infer_generator_options(load_state_dict(generator_path)), f'{generator_path} (inferred from its layers)'
    return None, None
