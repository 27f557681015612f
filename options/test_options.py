from options.base_options import BaseOptions
from util.evaluation.scores import METRICS


class TestOptions(BaseOptions):
    is_train = False

    def initialize(self, parser):
        parser = super().initialize(parser)
        parser.add_argument('--results_dir', type=str, default='./results/', help='saves results here')
        parser.add_argument('--aspect_ratio', type=float, default=1.0, help='aspect ratio of result images')
        parser.add_argument('--phase', type=str, default='test', help='train, val, test, etc')
        parser.add_argument('--eval', action='store_true',
                            help='use eval mode (running BatchNorm statistics, no dropout); without it, '
                                 'batch statistics and dropout are used at test time, as in the paper')
        parser.add_argument('--num_test', type=int, default=float('inf'),
                            help='how many test images to run (default: all of them; the reference stops at 50)')
        parser.add_argument('--sort_by_metric', choices=METRICS, default=None,
                            help='list the gallery worst first by this metric (default: dataset order)')
        parser.add_argument('--model_suffix', type=str, default='',
                            help='load <epoch>_net_G<model_suffix>.pth: _ema for the weight average train.py '
                                 '--ema_decay saves, _A or _B for CycleGAN files')
        parser.add_argument('--fid_weights', type=str, default=None,
                            help='path of weights-inception-2015-12-05-6726825d.pth (from torch-fidelity\'s '
                                 'releases; pytorch-fid\'s pt_inception-2015-12-05-6726825d.pth works too): also '
                                 'compute FID and KID of the outputs against the targets (torchmetrics); nothing '
                                 'is downloaded')
        parser.add_argument('--segmenter', type=str, default=None,
                            help='path of a segmenter file made by scripts/train_segmenter.py on this dataset: '
                                 'also report the semantic score (pixel accuracy, mean class accuracy, mean IoU '
                                 'of the segmented outputs against the input label maps, and of the real photos '
                                 'as the ceiling)')
        # Test images are not cropped by default: load_size defaults to crop_size, as in the reference.
        parser.set_defaults(load_size=parser.get_default('crop_size'))
        return parser
