"""Colorization: pix2pix from the lightness of an image (L of CIE Lab) to its colours (ab).

The losses and networks are pix2pix's; only the data and the pictures differ. Visuals show the gray
input, the colourised output and the real photo as RGB, for every image of the batch.
"""
from models.pix2pix_model import Pix2PixModel
from util import lab


class ColorizationModel(Pix2PixModel):
    visual_roles = {'input': 'real_A', 'output': 'fake_B_rgb', 'target': 'real_B_rgb'}  # RGB pictures of Lab tensors
    translates_label_maps = False  # its input is a lightness channel

    @staticmethod
    def modify_commandline_options(parser, is_train=True):
        parser = Pix2PixModel.modify_commandline_options(parser, is_train)
        parser.set_defaults(dataset_mode='colorization')
        return parser

    def __init__(self, opt):
        super().__init__(opt)
        self.visual_names = ['real_A', 'fake_B_rgb', 'real_B_rgb']

    def get_current_visuals(self):
        # RGB in [-1, 1], like every other visual, so display and saving need no special case.
        self.real_B_rgb = lab.decode(self.real_A, self.real_B) * 2 - 1
        self.fake_B_rgb = lab.decode(self.real_A, self.fake_B.detach()) * 2 - 1
        return super().get_current_visuals()
