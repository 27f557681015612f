from options.base_options import BaseOptions
from options.recipes import RECIPES
from util.evaluation.scores import RANKED_METRICS
from util.plugins import option_group


class TrainOptions(BaseOptions):
    """Train an image-to-image translation model (README: "Options that matter")."""
    command = 'train.py'
    is_train = True
    ignored = {'pool_size': 'pix2pix trains without a pool of generated images (the reference sets it to 0 too)'}

    def initialize(self, parser):
        parser = super().initialize(parser)
        group = option_group(parser, 'experiment')
        group.add_argument('--phase', type=str, default='train', help='the folder of DATAROOT to train on')
        group.add_argument('--continue_train', action='store_true', help='continue training: load the latest model')
        group.add_argument('--epoch_count', type=int, default=1,
                           help='the starting epoch count (with --continue_train: taken from the checkpoint)')
        group.add_argument('--save_by_iter', action='store_true', help='also save iter_N checkpoints')
        group.add_argument('--save_latest_freq', type=int, default=5000, help='save the latest model every N iterations')
        group.add_argument('--save_epoch_freq', type=int, default=5, help='save a numbered checkpoint every N epochs')

        group = option_group(parser, 'training')
        group.add_argument('--n_epochs', type=int, default=100, help='epochs at the initial learning rate')
        group.add_argument('--n_epochs_decay', type=int, default=100, help='epochs to decay the learning rate to zero')
        group.add_argument('--beta1', type=float, default=0.5, help="Adam's momentum term")
        group.add_argument('--lr', type=float, default=0.0002, help="Adam's initial learning rate")
        group.add_argument('--gan_mode', type=str, default='lsgan', help='vanilla | lsgan | wgangp | hinge')
        group.add_argument('--recipe', choices=tuple(RECIPES), default='reference',
                           help="a set of training options, as defaults (options/recipes.py)")
        group.add_argument('--lr_policy', type=str, default='linear', help='linear | step | plateau | cosine')
        group.add_argument('--plateau_on', choices=('train', 'val'), default='train',
                           help="what --lr_policy plateau follows: the model's training loss, or --val_metric")
        group.add_argument('--lr_decay_iters', type=int, default=50, help='multiply by 0.1 every N epochs (step)')
        group.add_argument('--adam_impl', choices=('fused', 'foreach', 'for_loop'), default='fused',
                           help="torch's Adam kernel (all take the same steps)")

        group = option_group(parser, 'pix2pixHD/SPADE options')
        group.add_argument('--lr_D', type=float, default=None, help="D's own learning rate (SPADE: 4x G's)")

        group = option_group(parser, 'display')
        group.add_argument('--display_freq', type=int, default=400, help='show training results every N iterations')
        group.add_argument('--display_ncols', type=int, default=4, help='images per row in visdom')
        group.add_argument('--display_id', type=int, default=1, help='visdom window id; 0 turns visdom off')
        group.add_argument('--display_server', type=str, default='http://localhost', help='visdom server')
        group.add_argument('--display_env', type=str, default='main', help='visdom environment')
        group.add_argument('--display_port', type=int, default=8097, help='visdom port')
        group.add_argument('--update_html_freq', type=int, default=1000, help='save results to HTML every N iterations')
        group.add_argument('--print_freq', type=int, default=100, help='print losses every N iterations')
        group.add_argument('--no_html', action='store_true', help='do not write checkpoints_dir/name/web/')
        group.add_argument('--tensorboard', action='store_true',
                           help='also log for TensorBoard in checkpoints_dir/name/tensorboard/')

        group = option_group(parser, 'validation')
        group.add_argument('--val_freq', type=int, default=0,
                           help='score G on the validation split every N epochs and after the last; 0: never')
        group.add_argument('--val_phase', type=str, default=None,
                           help='the validation split, DATAROOT/VAL_PHASE (default: val, else test)')
        group.add_argument('--val_max', type=int, default=float('inf'), help='validate on at most this many images')
        group.add_argument('--val_metric', choices=RANKED_METRICS, default='l1',
                           help='the score that picks best_net_G.pth (semantic ones need --segmenter)')
        group.add_argument('--segmenter', type=str, default=None,
                           help='a file of scripts/train_segmenter.py: also the semantic score')

        group = option_group(parser, 'distributed')
        group.add_argument('--dist_url', type=str, default='env://',
                           help="how the processes find each other: env:// (torchrun's) or file:///shared/path")
        group.add_argument('--dist_timeout', type=float, default=600,
                           help='seconds a process waits for the others before it fails')
        return parser
