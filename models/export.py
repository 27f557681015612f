"""A trained generator as files that run without this project: ONNX (for ONNX Runtime) and a torch.export
program (.pt2), each with a description of how to feed it (also written beside them as JSON by export.py).

Both take a float32 batch (N, C, H, W) in [-1, 1] and return (N, C_out, H, W) in [-1, 1]; the description
holds the value mappings that take the data's values (8-bit pixels, 16-bit depths, float bands) there and back,
as test.py applies them. N is free (each image is computed on its own); H and W are free within the
generator's size rule (size_rule). The test mode is fixed when exporting:
    eval    BatchNorm's running statistics, no dropout: test.py --eval, exactly.
    paper   BatchNorm takes each image's own statistics, as test.py does by default (the paper's mode), and
            dropout is off, so that the output is deterministic: test.py without --eval, exactly, when the
            generator has no dropout; otherwise test.py draws a random dropout mask on every run.
onnx, onnxscript and onnxruntime are optional packages: they are imported here only when exporting.
"""
import importlib
import importlib.util
import json
import statistics
import time

import numpy as np
import torch

from models import networks
from util.errors import UserError
from util.files import atomic_write

MODES = {
    'eval': "BatchNorm's running statistics, dropout off (test.py --eval)",
    'paper': "each image normalised with its own statistics (test.py's default, the paper's mode), dropout off",
}
INPUT_NAME, OUTPUT_NAME = 'input', 'output'
LARGEST_SIDE = 16384  # the range the exported programs state for height and width
ONNX_PACKAGES = ('onnx', 'onnxscript', 'onnxruntime')


def require_onnx_packages():
    """Import the optional ONNX packages, or say how to install them."""
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f'exporting to ONNX needs {", ".join(missing)}, which are optional: '
                        f'pip install {" ".join(ONNX_PACKAGES)}')
    if not hasattr(torch.compiler, 'is_exporting'):
        raise UserError(f'exporting needs torch.compiler.is_exporting, which torch {torch.__version__} lacks (torch 2.7 '
                        f'has it): pip install -U torch')
    return importlib.import_module('onnxruntime')


def size_rule(netG, n_downsample_global, n_local_enhancers):
    """(multiple, smallest): height and width must be multiples of `multiple`, at least `smallest`."""
    multiple = networks.size_multiple(netG, n_downsample_global, n_local_enhancers)
    # A U-Net's bottleneck can be 1x1; the 3x3 reflection padding of a ResNet's (or pix2pixHD's global
    # generator's) residual blocks at their smallest size needs 2 pixels.
    return multiple, multiple if netG.startswith('unet_') else 2 * multiple


def describe(arch, mode, files, mappings):
    """What a user of the exported files needs to know, as JSON values. arch: the generator's options
    (input_nc, output_nc, netG, n_downsample_global, n_local_enhancers, model, direction); mappings: the
    ValueMapping of its input and of its output ({'input': ..., 'output': ...}), how the data's values map to
    the network's (the colorization model's Lab encoding is its own, so its sides have none)."""
    multiple, smallest = size_rule(arch['netG'], arch['n_downsample_global'], arch['n_local_enhancers'])
    if arch['model'] == 'colorization':
        sides = {'input': {'meaning': 'L of CIE Lab, as L / 50 - 1', 'mapping': None},
                 'output': {'meaning': 'a and b of CIE Lab, as ab / 110', 'mapping': None}}
    else:
        sides = {role: describe_mapping(role, mappings[role]) for role in ('input', 'output')}
    return {
        'input': {'name': INPUT_NAME, 'channels': arch['input_nc'], 'range': [-1, 1], **sides['input']},
        'output': {'name': OUTPUT_NAME, 'channels': arch['output_nc'], 'range': [-1, 1], **sides['output']},
        'layout': 'float32 (batch, channels, height, width); any batch size, each image computed on its own',
        'size_rule': {'multiple': multiple, 'smallest': smallest, 'largest': LARGEST_SIDE,
                      'text': f'height and width: multiples of {multiple}, from {smallest} to {LARGEST_SIDE}'},
        'direction': arch['direction'],
        'test_mode': mode,
        'test_mode_text': MODES[mode],
        'netG': arch['netG'],
        'model': arch['model'],
        'files': files,
    }


def describe_mapping(role, mapping):
    """The keys of one side (input or output) that say how its values in the data's units map to the network's:
    a short 'meaning', the 'mapping' (util.value_mapping's dict: the data's type, each channel's [low, high],
    how they were chosen) and the formula that applies it, test.py's arithmetic (ValueMapping's)."""
    kind = {1: 'grayscale', 3: 'RGB'}.get(mapping.channels, f'{mapping.channels} channels')
    if role == 'input':
        # The reference's wording for its 8-bit pictures, which the mapping 0..255 reproduces exactly.
        return {'meaning': f'{kind}, as pixel / 127.5 - 1' if mapping.is_8bit_full() else
                           f'{kind} {mapping.dtype} values, each channel mapped from [low, high] to [-1, 1]',
                'mapping': mapping.to_dict(),
                'to_network': 'per channel c, with [low, high] = mapping.ranges[c]: input = (value - low) / '
                              '((high - low) / 2) - 1, in float32, not clipped'}
    precision = 'float32' if mapping.dtype == 'uint8' else 'float64'  # ValueMapping.to_units's
    if np.dtype(mapping.dtype).kind in 'iu':
        info = np.iinfo(mapping.dtype)
        stored = f'then clipped to {info.min}..{info.max} and rounded to the nearest integer ({mapping.dtype})'
    else:
        stored = f'then stored as {mapping.dtype}'
    return {'meaning': f'{kind}, pixel = (output + 1) * 127.5' if mapping.is_8bit_full() else
                       f'{kind} {mapping.dtype} values, each channel mapped from [-1, 1] to [low, high]',
            'mapping': mapping.to_dict(),
            'to_units': f'per channel c, with [low, high] = mapping.ranges[c]: value = (output + 1) / 2 * '
                        f'(high - low) + low, in {precision}, {stored}'}


def export_program(net, channels, rule):
    """torch.export of net (in the test mode networks.set_test_mode gave it), dynamic in batch, height and width
    within rule, size_rule's (multiple, smallest)."""
    multiple, smallest = rule
    dim = torch.export.Dim
    shapes = {'x': {0: dim('batch', min=1, max=4096),
                    2: multiple * dim('h', min=smallest // multiple, max=LARGEST_SIDE // multiple),
                    3: multiple * dim('w', min=smallest // multiple, max=LARGEST_SIDE // multiple)}}
    example = torch.zeros(2, channels, 2 * multiple, 3 * multiple, device=next(net.parameters()).device)
    # Without it, torch.export treats a side of exactly one multiple (256x256 for unet_256) as a special case
    # the program would refuse, because the bottleneck is then 1x1.
    from torch.fx.experimental import _config as symbolic_shapes_config
    with symbolic_shapes_config.patch(backed_size_oblivious=True):
        return torch.export.export(net, (example,), dynamic_shapes=shapes)


def save_program(program, path, description):
    atomic_write(path, lambda f: torch.export.save(program, f, extra_files={'pix2pix.json': json.dumps(description)}))


def save_onnx(program, path, description):
    """The program as ONNX (the dynamo exporter), axes named batch, h, w, the description in its metadata."""
    onnx_program = torch.onnx.export(program, dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME])
    onnx_program.rename_axes(axis_names(program))
    onnx_program.model.metadata_props['pix2pix'] = json.dumps(description)
    atomic_write(path, lambda f: f.write(onnx_program.model_proto.SerializeToString()))


def axis_names(program):
    """torch's symbol of each dynamic input axis (s77, ...) -> the name export_program gave its Dim."""
    node = next(n for n in program.graph.nodes if n.name == program.graph_signature.user_inputs[0])
    names = {}
    for axis, size in zip(('batch', None, 'h', 'w'), node.meta['val'].shape):
        if axis and isinstance(size, torch.SymInt):
            symbol, = size.node.expr.free_symbols
            names[str(symbol)] = axis
    return names


def time_per_image(net, onnx_path, channels, size, repeats=5):
    """Median seconds per image of ONNX Runtime (on the CPU) and of PyTorch (net as it is) on one random
    size x size image, and the largest difference between their outputs."""
    onnxruntime = require_onnx_packages()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # as many threads as PyTorch, for a fair comparison
    session = onnxruntime.InferenceSession(onnx_path, options, providers=['CPUExecutionProvider'])
    x = torch.rand(1, channels, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    device = next(net.parameters()).device

    def run_torch():
        with torch.inference_mode():
            return net(x.to(device)).cpu().numpy()

    def run_onnx():
        return session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]

    seconds, outputs = {}, {}
    for name, run in (('pytorch', run_torch), ('onnxruntime', run_onnx)):
        outputs[name] = run()  # the first run allocates and picks kernels: not timed
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        seconds[name] = statistics.median(times)
    return {'size': [size, size], 'onnxruntime_s': seconds['onnxruntime'], 'pytorch_s': seconds['pytorch'],
            'pytorch_device': str(device), 'threads': torch.get_num_threads(), 'repeats': repeats,
            'max_difference': float(np.abs(outputs['onnxruntime'] - outputs['pytorch']).max())}
