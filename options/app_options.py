from options.test_options import TestOptions
from util.errors import UserError
from util.plugins import option_group

FLAGS = ('name', 'checkpoints_dir', 'epoch', 'load_iter', 'model_suffix', 'device', 'gpu_ids', 'verbose',
         'amp', 'channels_last', 'compile', 'compile_mode', 'port', 'max_image_size', 'tile', 'tile_overlap',
         'tile_batch')


class AppOptions(TestOptions):
    """A local web page to try trained generators: pick an experiment, drop an image, see and download its
    translation (as test.py --eval --preprocess none translates it)."""
    command = 'app.py'
    reads_data = False
    flags = FLAGS

    def initialize(self, parser):
        parser = super().initialize(parser)
        group = option_group(parser, 'page')
        group.add_argument('--port', type=int, default=7860, help='serve the page on http://127.0.0.1:PORT')
        group.add_argument('--max_image_size', type=int, default=2048,
                           help='largest width or height of an uploaded image, in pixels')
        return parser

    def check(self, opt):
        if opt.max_image_size < 1:
            raise UserError(f'--max_image_size {opt.max_image_size}: give the largest side an upload may have, in '
                            f'pixels (at least 1; the default is 2048)')
