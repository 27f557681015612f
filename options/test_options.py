from data.image_folder import holds_single_images
from options.base_options import BaseOptions
from util.evaluation.scores import METRICS
from util.plugins import option_group


class TestOptions(BaseOptions):
    """Translate images with a trained generator and write an HTML gallery."""
    command = 'test.py'
    is_train = False
    settings = dict(serial_batches=True, no_flip=True)  # one pass, in order, no augmentation

    def parse(self, argv=None, settings=None):
        """As BaseOptions.parse; but a DATAROOT of single images (not pairs in PHASE/ or PHASEA/ and PHASEB/) with
        the aligned dataset is translated by the generator alone (--model test, --dataset_mode single), unless
        --pairs is typed: it says DATAROOT holds pairs, so a missing split is then an error."""
        settings = settings or {}
        if self.reads_data and 'model' not in settings:
            argv, parsed, typed = self.peek(argv, settings)
            if (parsed.dataset_mode == 'aligned' and parsed.dataroot and 'pairs' not in typed
                    and holds_single_images(parsed.dataroot, parsed.phase)):
                print(f'{parsed.dataroot} is single images, not pairs in {parsed.phase}/ or {parsed.phase}A/ and '
                      f'{parsed.phase}B/: translating them with the generator alone (--model test)')
                settings = {**settings, 'model': 'test', 'dataset_mode': 'single'}
        return super().parse(argv, settings)

    def initialize(self, parser):
        parser = super().initialize(parser)
        group = option_group(parser, 'data')
        group.add_argument('--phase', type=str, default='test', help='the folder of DATAROOT to translate')
        group = option_group(parser, 'evaluation')
        group.add_argument('--results_dir', type=str, default='./results/', help='saves results here')
        group.add_argument('--aspect_ratio', type=float, default=1.0, help='aspect ratio of result images')
        group.add_argument('--eval', action='store_true',
                           help="BatchNorm's running statistics, no dropout (off: the paper's test mode)")
        group.add_argument('--num_test', type=int, default=float('inf'), help='translate at most this many images')
        group.add_argument('--sort_by_metric', choices=METRICS, default=None,
                           help='list the gallery worst first by this metric')
        group.add_argument('--model_suffix', type=str, default='',
                           help='load <epoch>_net_G<model_suffix>.pth: _ema for the weight average')
        group.add_argument('--fid_weights', type=str, default=None,
                           help="the Inception weights file: also FID and KID (nothing is downloaded)")
        group.add_argument('--segmenter', type=str, default=None,
                           help='a file of scripts/train_segmenter.py: also the semantic score')
        group = option_group(parser, 'large images')
        group.add_argument('--tile', type=int, default=0,
                           help='translate images larger than this in overlapping tiles of this size (0: whole)')
        group.add_argument('--tile_overlap', type=int, default=32,
                           help='pixels neighbouring tiles share, cross-faded so that no seam shows')
        group.add_argument('--tile_batch', type=int, default=4, help='tiles the generator takes at once')
        # Test images are not cropped by default: load_size defaults to crop_size, as in the reference.
        parser.set_defaults(load_size=parser.get_default('crop_size'))
        return parser
