"""Write a trained generator as files that run without this project: ONNX and a torch.export program.

    python export.py --name facades_pix2pix                  # the paper's test mode (per-image statistics)
    python export.py --name facades_pix2pix --eval           # running statistics, as test.py --eval
    python export.py --name NAME --epoch 200 --model_suffix _ema --export_dir exports/

Writes <epoch>_net_G<model_suffix>.onnx, .pt2 and .json to --export_dir (default: beside the checkpoints).
The JSON (also inside both files) says how to feed them: channels, how the data's values map to the
network's [-1, 1] and back (the training's value mappings), the size rule, the direction and the test mode
(models/export.py). Needs the optional packages: pip install onnx onnxscript onnxruntime. Then ONNX Runtime
and PyTorch are timed on one image and their outputs compared.
"""
import json
import os

import models
from data import visual_mappings
from models import checkpoint, export, networks
from models.checkpoint import file_prefix
from options.export_options import ExportOptions
from util.files import atomic_write_text, ensure_writable


def main(argv=None):
    opt = ExportOptions().parse(argv)  # with the architecture the checkpoint was saved with
    export.require_onnx_packages()  # before any work, so that a missing package costs nothing
    export_dir = opt.export_dir or os.path.join(opt.checkpoints_dir, opt.name)
    ensure_writable(export_dir, 'the exported files', '--export_dir')
    mode = 'eval' if opt.eval else 'paper'

    model = models.create_model(opt)
    model.setup(opt)
    net = model.netG
    networks.set_test_mode(net, mode, dropout=False)  # dropout off in both: the exported program is deterministic
    saved = checkpoint.read_architecture(opt) or {}  # what the experiment was trained as
    arch = dict(input_nc=opt.input_nc, output_nc=opt.output_nc, netG=opt.netG,
                n_downsample_global=opt.n_downsample_global, n_local_enhancers=opt.n_local_enhancers,
                model=saved.get('model', opt.model), direction=opt.direction)
    # How the data's values map to the network's, as test.py maps them: the training's (or, for a reference
    # checkpoint, 8-bit pictures').
    roles = model.visual_roles
    visuals = visual_mappings(opt, model.visual_names, roles['input'])
    mappings = {role: visuals[roles[role]] for role in ('input', 'output')}
    stem = os.path.join(export_dir, f'{file_prefix(opt)}_net_G{opt.model_suffix}')
    description = export.describe(arch, mode, {'onnx': os.path.basename(stem + '.onnx'),
                                               'pt2': os.path.basename(stem + '.pt2')}, mappings)

    print(f'exporting {opt.netG} in the {mode} test mode: {export.MODES[mode]}')
    multiple, smallest = export.size_rule(opt.netG, opt.n_downsample_global, opt.n_local_enhancers)
    program = export.export_program(net, opt.input_nc, (multiple, smallest))
    export.save_program(program, stem + '.pt2', description)
    export.save_onnx(program, stem + '.onnx', description)

    size = max(smallest, -(-opt.crop_size // multiple) * multiple)
    timing = export.time_per_image(net, stem + '.onnx', opt.input_nc, size)
    description['time_per_image'] = timing
    atomic_write_text(stem + '.json', json.dumps(description, indent=1) + '\n')
    print(f'wrote {stem}.onnx, {stem}.pt2 and {stem}.json')
    print(f'{description["size_rule"]["text"]}; input {description["input"]["meaning"]}')
    print(f'time per {size}x{size} image on the CPU: ONNX Runtime {timing["onnxruntime_s"] * 1000:.1f} ms, '
          f'PyTorch {timing["pytorch_s"] * 1000:.1f} ms (medians of {timing["repeats"]}); outputs differ by at '
          f'most {timing["max_difference"]:.1e}')


if __name__ == '__main__':
    main()
