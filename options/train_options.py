from options.base_options import BaseOptions
from options.recipes import RECIPES
from util.evaluation.scores import RANKED_METRICS


class TrainOptions(BaseOptions):
    is_train = True

    def initialize(self, parser):
        parser = super().initialize(parser)
        # Display: visdom and the HTML page
        parser.add_argument('--display_freq', type=int, default=400, help='show training results every N iterations')
        parser.add_argument('--display_ncols', type=int, default=4, help='images per row in visdom')
        parser.add_argument('--display_id', type=int, default=1, help='visdom window id; 0 turns visdom off')
        parser.add_argument('--display_server', type=str, default='http://localhost', help='visdom server')
        parser.add_argument('--display_env', type=str, default='main', help='visdom environment')
        parser.add_argument('--display_port', type=int, default=8097, help='visdom port')
        parser.add_argument('--update_html_freq', type=int, default=1000, help='save results to HTML every N iterations')
        parser.add_argument('--print_freq', type=int, default=100, help='print losses every N iterations')
        parser.add_argument('--no_html', action='store_true', help='do not write checkpoints_dir/name/web/')
        parser.add_argument('--tensorboard', action='store_true',
                            help='also write the losses, learning rate, validation scores and visuals for '
                                 'TensorBoard to checkpoints_dir/name/tensorboard/ (pip install tensorboard)')
        # Validation: scoring G on held-out images while training (util/training/validation.py)
        parser.add_argument('--val_freq', type=int, default=0,
                            help='score G (and its weight average) on the validation split every N epochs and '
                                 'after the last one, as test.py scores it; 0: never')
        parser.add_argument('--val_phase', type=str, default=None,
                            help='the validation split, DATAROOT/VAL_PHASE (default: val if that folder exists, '
                                 'else test)')
        parser.add_argument('--val_max', type=int, default=float('inf'),
                            help='validate on at most this many images (the first ones in sorted order)')
        parser.add_argument('--val_metric', choices=RANKED_METRICS, default='l1',
                            help='the validation score that picks best_net_G.pth (and that --plateau_on val '
                                 'follows): l1 is what G is trained to lower; pixel_accuracy, class_accuracy '
                                 'and mean_iou need --segmenter')
        parser.add_argument('--segmenter', type=str, default=None,
                            help='with --val_freq, also the semantic score of each validation (a file made by '
                                 'scripts/train_segmenter.py on this dataset, as test.py --segmenter)')
        # Saving and loading
        parser.add_argument('--save_latest_freq', type=int, default=5000, help='save the latest model every N iterations')
        parser.add_argument('--save_epoch_freq', type=int, default=5, help='save a numbered checkpoint every N epochs')
        parser.add_argument('--save_by_iter', action='store_true', help='also save iter_N checkpoints')
        parser.add_argument('--continue_train', action='store_true', help='continue training: load the latest model')
        parser.add_argument('--epoch_count', type=int, default=1,
                            help='the starting epoch count (with --continue_train: taken from the checkpoint)')
        parser.add_argument('--phase', type=str, default='train', help='train, val, test, etc')
        # Training
        parser.add_argument('--n_epochs', type=int, default=100, help='# of epochs with the initial learning rate')
        parser.add_argument('--n_epochs_decay', type=int, default=100, help='# of epochs to decay the learning rate to zero')
        parser.add_argument('--beta1', type=float, default=0.5, help='momentum term of adam')
        parser.add_argument('--lr', type=float, default=0.0002, help='initial learning rate for adam')
        parser.add_argument('--lr_D', type=float, default=None,
                            help="D's own initial learning rate (SPADE: 4x G's); default: --lr")
        parser.add_argument('--gan_mode', type=str, default='lsgan', help='vanilla | lsgan | wgangp | hinge')
        parser.add_argument('--recipe', choices=tuple(RECIPES), default='reference',
                            help='a set of training options applied as defaults (flags you type win): '
                                 'reference changes nothing; improved turns on the options that did best on facades '
                                 "(SPADE's hinge loss and spectral norm, resize upsampling, the weight average; "
                                 'options/recipes.py lists them)')
        parser.add_argument('--pool_size', type=int, default=50, help='size of the image buffer of generated images')
        parser.add_argument('--lr_policy', type=str, default='linear', help='linear | step | plateau | cosine')
        parser.add_argument('--plateau_on', choices=('train', 'val'), default='train',
                            help="what --lr_policy plateau follows: train (the epoch's mean of the model's "
                                 'training loss, G_L1 for pix2pix) or val (--val_metric at each validation)')
        parser.add_argument('--lr_decay_iters', type=int, default=50, help='multiply by a gamma every N epochs (step)')
        parser.add_argument('--adam_impl', choices=('fused', 'foreach', 'for_loop'), default='fused',
                            help="torch's Adam kernel: fused (one kernel for all parameters, fastest), foreach, "
                                 'or for_loop (one parameter at a time); all give the same steps to float rounding')
        # Several processes (torchrun, see README and util/distributed.py)
        parser.add_argument('--dist_url', type=str, default='env://',
                            help='how the processes find each other: env:// (what torchrun sets) or '
                                 'file:///path/on/a/shared/disk')
        parser.add_argument('--dist_timeout', type=float, default=600,
                            help='seconds a process waits for the others (to start, or in any exchange) '
                                 'before it fails with an error instead of hanging')
        return parser
