"""Generator only, for translating a folder of single images: python test.py --model test --name NAME.

Loads checkpoints_dir/NAME/<epoch>_net_G<model_suffix>.pth; the architecture comes from the saved
architecture.json or, for a reference checkpoint, from the file's layers.
"""
from models import networks
from models.base_model import BaseModel
from util.errors import UserError


class TestModel(BaseModel):
    visual_roles = {'input': 'real', 'output': 'fake'}  # no target to score against

    @staticmethod
    def modify_commandline_options(parser, is_train=True):
        if is_train:
            raise UserError('--model test is for test.py only; train with --model pix2pix')
        parser.set_defaults(dataset_mode='single', netG='unet_256', norm='batch')
        return parser

    def __init__(self, opt):
        super().__init__(opt)
        self.visual_names = ['real', 'fake']
        self.netG = networks.define_G(opt.input_nc, opt.output_nc, opt.ngf, opt.netG, opt.norm,
                                      not opt.no_dropout, opt.init_type, opt.init_gain, opt.upsample,
                                      n_downsample_global=opt.n_downsample_global, n_blocks_global=opt.n_blocks_global,
                                      n_local_enhancers=opt.n_local_enhancers,
                                      n_blocks_local=opt.n_blocks_local).to(self.device)
        self.test_generator_from_suffix()

    def set_input(self, data):
        self.real = data['A'].to(self.device, non_blocking=True)
        self.image_paths = data['A_paths']

    def forward(self):
        self.fake = self.generate(self.netG, self.real)
