from models.checkpoint import read_architecture
from options.test_options import TestOptions
from util.errors import UserError
from util.plugins import option_group

# The checkpoint's generator as test.py loads it, and the generator's architecture for a file without
# architecture.json whose layers do not say it.
FLAGS = ('name', 'checkpoints_dir', 'epoch', 'load_iter', 'model_suffix', 'eval', 'verbose', 'crop_size', 'gpu_ids',
         'input_nc', 'output_nc', 'ngf', 'netG', 'norm', 'no_dropout', 'upsample', 'n_downsample_global',
         'n_blocks_global', 'n_local_enhancers', 'n_blocks_local', 'export_dir')


class ExportOptions(TestOptions):
    """Write a trained generator as ONNX and torch.export files, with a JSON description (the float32 network
    as trained, on the CPU)."""
    command = 'export.py'
    reads_data = False
    flags = FLAGS
    settings = dict(device='cpu')  # the files then hold CPU tensors, which every machine loads

    def parse(self, argv=None, settings=None):
        """As TestOptions.parse, in the direction the checkpoint was trained in (its architecture.json; the
        default for a reference checkpoint): it says which side's value mapping the generator's input takes."""
        settings = settings or {}
        argv, parsed, _ = self.peek(argv, settings)
        saved = read_architecture(parsed) or {}
        return super().parse(argv, {'direction': saved['direction'], **settings} if 'direction' in saved else settings)

    def initialize(self, parser):
        parser = super().initialize(parser)
        option_group(parser, 'export').add_argument(
            '--export_dir', type=str, default=None, help='where to write the files (default: beside the checkpoints)')
        parser.set_defaults(crop_size=256)  # the size export.py times the files at
        return parser

    def check(self, opt):
        if opt.is_typed('gpu_ids') and opt.gpu_ids.split(',')[0].strip() != '-1':
            raise UserError(f'export.py runs on the CPU (--gpu_ids {opt.gpu_ids} given): the files then hold CPU '
                            f'tensors, which every machine loads; leave out --gpu_ids')
