from options.test_options import TestOptions
from util.errors import UserError


class ExportOptions(TestOptions):
    """test.py's options (--name, --epoch, --model_suffix, --eval, ...) and where the exported files go."""
    reads_data = False

    def initialize(self, parser):
        parser = super().initialize(parser)
        parser.add_argument('--export_dir', type=str, default=None,
                            help='where to write the .onnx, .pt2 and .json files (default: beside the checkpoints)')
        parser.set_defaults(device='cpu')  # see parse()
        return parser

    def parse(self, argv=None):
        opt = super().parse(argv)
        if opt.device != 'cpu':
            raise UserError(f'export.py runs on the CPU (--device {opt.device} given): the files then hold CPU tensors, '
                            f'which every machine loads; leave out --device and --gpu_ids')
        if opt.amp != 'none' or opt.compile or opt.channels_last:
            raise UserError('export.py writes the float32 network as trained: leave out --amp, --compile and '
                            '--channels_last (ONNX Runtime and torch pick their own kernels for the exported files)')
        return opt
