"""pix2pix (Isola et al. 2017): a conditional GAN that learns G: A -> B from aligned pairs.

    D is trained to tell real pairs (A, B) from fake pairs (A, G(A)):
        L_D = 1/2 [ GAN(D(A, B), real) + GAN(D(A, G(A)), fake) ]
    G is trained to fool D while staying close to the target:
        L_G = lambda_GAN * GAN(D(A, G(A)), real) + lambda_L1 * ||B - G(A)||_1
    (--lambda_GAN 0 trains G on L1 alone: the paper's L1-only baseline.)
Options off by default add pix2pixHD's and SPADE's terms to L_G:
        + lambda_feat * L_FM(D(A, B), D(A, G(A)))      feature matching (models/discriminators.py)
        + lambda_vgg * L_VGG(G(A), B)                  perceptual loss (models/perceptual.py)
and change D: multi-scale, spectral norm, its own learning rate (--lr_D), the hinge loss (--gan_mode hinge).
With --ema_decay, a moving average of G's weights is kept beside G for testing (models/weight_average.py).
"""
import os

import torch

from models import checkpoint, discriminators, networks, perceptual
from models.base_model import BaseModel, unwrap
from models.perceptual import VGGLoss
from models.weight_average import WeightAverage
from util.errors import UserError
from util.plugins import option_group


class Pix2PixModel(BaseModel):
    visual_roles = {'input': 'real_A', 'output': 'fake_B', 'target': 'real_B'}
    translates_label_maps = True  # labels|photo pairs can be scored semantically (--segmenter)

    @staticmethod
    def modify_commandline_options(parser, is_train=True):
        # The paper's choices: U-Net generator, batch norm, aligned data, no image pool, vanilla GAN loss.
        parser.set_defaults(norm='batch', netG='unet_256', dataset_mode='aligned')
        if is_train:
            parser.set_defaults(gan_mode='vanilla')
            group = option_group(parser, 'training')
            group.add_argument('--lambda_L1', type=float, default=100.0, help='weight of the L1 loss')
            group.add_argument('--lambda_GAN', type=float, default=1.0, help="weight of G's GAN loss; 0: L1 alone")
            group.add_argument('--lambda_gp', type=float, default=10.0, help='weight of the gradient penalty (wgangp)')
            group.add_argument('--ema_decay', type=float, default=0.0,
                               help="keep a moving average of G's weights (e.g. 0.999), saved as *_net_G_ema.pth")
            group.add_argument('--ema_every', type=int, default=10, help='update the average every N steps')
            group.add_argument('--ema_bn_images', type=int, default=0,
                               help="recompute the saved average's batch norm statistics over N training images")
            group = option_group(parser, 'pix2pixHD/SPADE options')
            group.add_argument('--lambda_feat', type=float, default=0.0,
                               help="weight of pix2pixHD's feature matching loss (pix2pixHD: 10)")
            group.add_argument('--lambda_vgg', type=float, default=0.0,
                               help="weight of pix2pixHD's VGG19 loss (pix2pixHD: 10; needs --vgg_weights)")
            group.add_argument('--vgg_weights', type=str, default=None,
                               help="torchvision's vgg19-dcbb9e9d.pth, for --lambda_vgg (never downloaded)")
            group.add_argument('--load_global', type=str, default=None,
                               help="--netG local: start its global part from a --netG global run's *_net_G.pth")
            group.add_argument('--niter_fix_global', type=int, default=0,
                               help='--netG local: train only the finest local enhancer for the first N epochs')
        return parser

    @staticmethod
    def validate_options(opt):
        if not opt.is_train:
            return
        get = perceptual.GET_WEIGHTS
        checks = [
            (opt.lambda_feat >= 0, f'--lambda_feat {opt.lambda_feat}: give a weight of 0 (off) or more'),
            (opt.lambda_vgg or opt.vgg_weights is None, "--vgg_weights is used only by the VGG loss: add --lambda_vgg "
                                                        "10 (pix2pixHD's weight), or drop --vgg_weights"),
            (opt.lambda_vgg >= 0, f'--lambda_vgg {opt.lambda_vgg}: give a weight of 0 (off) or more'),
            (not opt.lambda_vgg or opt.vgg_weights is not None,
             f'--lambda_vgg needs --vgg_weights PATH: {get} (nothing is downloaded for you)'),
            (not opt.lambda_vgg or opt.vgg_weights is None or os.path.isfile(opt.vgg_weights),
             f'--vgg_weights {opt.vgg_weights}: no such file; {get}'),
            (not opt.lambda_vgg or opt.output_nc in (1, 3),
             f'--lambda_vgg compares RGB or gray images, but --output_nc is {opt.output_nc} (--model {opt.model}); '
             f'drop --lambda_vgg'),
            (0 <= opt.ema_decay < 1, f'--ema_decay {opt.ema_decay}: give a decay between 0 and 1, e.g. 0.999 (an '
                                     f'average over about 1,000 steps), or 0 for none'),
            (opt.ema_every >= 1, f'--ema_every {opt.ema_every}: give a number of steps, at least 1'),
            (opt.ema_bn_images >= 0, f'--ema_bn_images {opt.ema_bn_images}: give a number of images, or 0 to keep '
                                     f'the averaged statistics'),
            (opt.load_global is None or opt.netG == 'local',
             f'--load_global loads the global part of --netG local, but --netG is {opt.netG}: add --netG local, or '
             f'drop --load_global'),
            (not opt.niter_fix_global or opt.netG == 'local',
             f'--niter_fix_global keeps the coarse parts of --netG local fixed, but --netG is {opt.netG}: add --netG '
             f'local, or drop --niter_fix_global'),
            (opt.niter_fix_global >= 0, f'--niter_fix_global {opt.niter_fix_global}: give a number of epochs, or 0'),
            (not opt.niter_fix_global or opt.load_global or opt.continue_train,
             f'--niter_fix_global {opt.niter_fix_global} keeps the global part of --netG local fixed, but it is '
             f'untrained: add --load_global checkpoints/NAME/latest_net_G.pth (a --netG global run at half the size), '
             f'or drop --niter_fix_global'),
            (opt.load_global is None or os.path.isfile(opt.load_global),
             f'--load_global {opt.load_global}: no such file; give a --netG global run\'s checkpoint, e.g. '
             f'checkpoints/NAME/latest_net_G.pth'),
        ]
        if opt.ema_bn_images and opt.is_typed('ema_bn_images'):  # a recipe's value is harmless without them
            checks += [
                (opt.ema_decay > 0, "--ema_bn_images recomputes the weight average's statistics, but there is no "
                                    "average: add --ema_decay 0.999, or drop --ema_bn_images"),
                (opt.norm in ('batch', 'syncbatch'), f'--ema_bn_images recomputes batch norm statistics, but --norm '
                                                     f'{opt.norm} keeps none: drop --ema_bn_images, or train with '
                                                     f'--norm batch'),
            ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    def __init__(self, opt):
        super().__init__(opt)
        self.loss_names = ['G_GAN', 'G_L1', 'D_real', 'D_fake']
        self.plateau_loss = 'G_L1'  # --lr_policy plateau lowers the rate when the epoch's mean L1 stops falling
        self.global_fixed = False  # --niter_fix_global: set by begin_epoch
        self.visual_names = ['real_A', 'fake_B', 'real_B']
        self.netG = networks.define_G(opt.input_nc, opt.output_nc, opt.ngf, opt.netG, opt.norm,
                                      not opt.no_dropout, opt.init_type, opt.init_gain, opt.upsample,
                                      n_downsample_global=opt.n_downsample_global, n_blocks_global=opt.n_blocks_global,
                                      n_local_enhancers=opt.n_local_enhancers,
                                      n_blocks_local=opt.n_blocks_local).to(self.device)
        if self.is_train and opt.load_global and not opt.continue_train:  # a resumed run's G already holds it
            self.load_global(opt.load_global)
        if self.is_train:
            self.model_names = ['G', 'D']
            # D judges the pair: input and output images stacked on the channel axis.
            self.netD = discriminators.define_D(opt.input_nc + opt.output_nc, opt.ndf, opt.netD, opt.n_layers_D,
                                                opt.norm, opt.init_type, opt.init_gain, opt.num_D,
                                                opt.spectral_norm_D).to(self.device)
            self.criterionGAN = networks.GANLoss(opt.gan_mode).to(self.device)
            self.criterionL1 = torch.nn.L1Loss()
            rate_G, rate_D = self.optimizer_rates(vars(opt))
            self.optimizer_G = self.adam(self.netG.parameters(), rate_G)
            self.optimizer_D = self.adam(self.netD.parameters(), rate_D)
            self.optimizers = [self.optimizer_G, self.optimizer_D]
            if opt.gan_mode == 'wgangp':
                self.loss_names.append('D_GP')
            if opt.lambda_feat:
                self.loss_names.append('G_feat')
            if opt.lambda_vgg:
                self.loss_names.append('G_VGG')
                self.criterionVGG = VGGLoss(opt.vgg_weights).to(self.device)
            if opt.ema_decay:
                self.averages['G_ema'] = WeightAverage(self.netG, opt.ema_decay, opt.ema_every)
        else:
            self.test_generator_from_suffix()

    def load_global(self, path):
        """--load_global: a trained global generator's weights into the local generator's global part."""
        opt = self.opt
        try:
            self.netG.load_global(checkpoint.load_state_dict(path))
        except RuntimeError:
            raise UserError(f'--load_global {path} does not fit the global part of this --netG local: it must come '
                            f'from --netG global --ngf {opt.ngf * 2 ** opt.n_local_enhancers} --n_downsample_global '
                            f'{opt.n_downsample_global} --n_blocks_global {opt.n_blocks_global} with this run\'s '
                            f'--norm, --upsample and --input_nc')

    @staticmethod
    def optimizer_rates(options):
        """The learning rate each optimizer starts from under these options (a dict): G's --lr, and D's
        --lr_D, which defaults to --lr."""
        return [options['lr'], options.get('lr_D') or options['lr']]

    def set_input(self, data):
        AtoB = self.opt.direction == 'AtoB'
        self.real_A = self.generator_input(data)
        self.real_B = data['B' if AtoB else 'A'].to(self.device, non_blocking=True)
        self.image_paths = data['A_paths' if AtoB else 'B_paths']

    def generator_input(self, data):
        """G's input in a batch from the loader."""
        return data['A' if self.opt.direction == 'AtoB' else 'B'].to(self.device, non_blocking=True)

    def forward(self):
        with self.autocast():
            self.fake_B = self.generate(self.netG, self.real_A)

    def backward_D(self):
        with self.autocast():
            fake_AB = torch.cat((self.real_A, self.fake_B.detach()), 1)  # detached: this step trains D only
            real_AB = torch.cat((self.real_A, self.real_B), 1)
            self.loss_D_fake = self.criterionGAN(self.netD(fake_AB), False)
            self.loss_D_real = self.criterionGAN(self.netD(real_AB), True)
            self.loss_D = (self.loss_D_fake + self.loss_D_real) * 0.5
            if self.opt.gan_mode == 'wgangp':
                self.loss_D_GP = networks.gradient_penalty(self.netD, real_AB, fake_AB, self.opt.lambda_gp)
                self.loss_D = self.loss_D + self.loss_D_GP
        self.scaler.scale(self.loss_D).backward()

    def backward_G(self):
        with self.autocast():
            fake_AB = torch.cat((self.real_A, self.fake_B), 1)
            fake_layers = self.netD(fake_AB, layers=True)  # every layer's features (per scale), the prediction last
            self.loss_G_GAN = self.criterionGAN(discriminators.predictions(fake_layers), True,
                                                for_discriminator=False) * self.opt.lambda_GAN
            self.loss_G_L1 = self.criterionL1(self.fake_B, self.real_B) * self.opt.lambda_L1
            self.loss_G = self.loss_G_GAN + self.loss_G_L1
            if self.opt.lambda_feat:
                with torch.no_grad():  # the target: D's features of the real pair, by the same D
                    real_layers = self.netD(torch.cat((self.real_A, self.real_B), 1), layers=True)
                self.loss_G_feat = discriminators.feature_matching(fake_layers, real_layers) * self.opt.lambda_feat
                self.loss_G = self.loss_G + self.loss_G_feat
            if self.opt.lambda_vgg:
                self.loss_G_VGG = self.criterionVGG(self.fake_B, self.real_B) * self.opt.lambda_vgg
                self.loss_G = self.loss_G + self.loss_G_VGG
        self.scaler.scale(self.loss_G).backward()

    def begin_epoch(self, epoch):
        """--niter_fix_global N: for epochs 1 to N, as in pix2pixHD, only the finest local enhancer trains; the
        global part (and any coarser enhancer) stays as it is, e.g. as --load_global gave it."""
        self.global_fixed = self.opt.netG == 'local' and epoch <= self.opt.niter_fix_global

    def optimize_parameters(self):
        self.forward()
        self.set_requires_grad(self.netD, True)
        self.optimizer_D.zero_grad(set_to_none=True)
        self.backward_D()
        self.scaler.step(self.optimizer_D)  # optimizer_D.step(), unless --amp fp16 found inf/NaN gradients
        self.set_requires_grad(self.netD, False)  # G's step needs no gradients for D's weights (nor DDP's exchange)
        self.optimizer_G.zero_grad(set_to_none=True)
        self.backward_G()
        if self.global_fixed:
            # Adam skips a parameter without a gradient: no step, and no moment kept for it. Dropped after
            # backward, so that DDP still exchanged the same gradients on every rank.
            finest = f'model{self.opt.n_local_enhancers}_'
            for name, param in unwrap(self.netG).named_parameters():
                if not name.startswith(finest):
                    param.grad = None
        self.scaler.step(self.optimizer_G)
        self.scaler.update()
