from options.test_options import TestOptions
from util.errors import UserError


class AppOptions(TestOptions):
    """test.py's options (--checkpoints_dir, --name, --epoch, --model_suffix, --device, ...) and the page's."""
    reads_data = False

    def initialize(self, parser):
        parser = super().initialize(parser)
        parser.add_argument('--port', type=int, default=7860, help='serve the page on http://127.0.0.1:PORT')
        parser.add_argument('--max_image_size', type=int, default=2048,
                            help='largest width or height of an uploaded image, in pixels')
        return parser

    def parse(self, argv=None):
        opt = super().parse(argv)
        if opt.max_image_size < 1:
            raise UserError(f'--max_image_size {opt.max_image_size}: give the largest side an upload may have, in '
                            f'pixels (at least 1; the default is 2048)')
        return opt
