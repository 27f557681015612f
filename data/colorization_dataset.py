import os

from data.base_dataset import BaseDataset, get_params, transform
from data.image_folder import folder_of, make_dataset, open_image
from util import lab
from util.errors import UserError
from util.value_mapping import ValueMapping


class ColorizationDataset(BaseDataset):
    """Any folder of photos: A is the lightness L of CIE Lab, B its colour channels ab.

    Encoded as the reference does (A = L/50 - 1, B = ab/110), so its colorization checkpoints stay
    usable. Images come from DATAROOT/PHASE when that folder exists, otherwise from DATAROOT itself (a folder
    or one image file).
    """

    @staticmethod
    def modify_commandline_options(parser, is_train):
        parser.set_defaults(input_nc=1, output_nc=2, direction='AtoB')
        return parser

    @staticmethod
    def validate_options(opt):
        if (opt.input_nc, opt.output_nc, opt.direction) != (1, 2, 'AtoB'):
            raise UserError('--dataset_mode colorization maps L (1 channel) to ab (2 channels): it needs '
                            '--input_nc 1 --output_nc 2 --direction AtoB (the defaults; drop the flags that change them)')

    @staticmethod
    def value_mappings(opt):
        # The model's pictures: L as 8-bit gray, the colours as 8-bit RGB.
        return {'A': ValueMapping.full('uint8', 1), 'B': ValueMapping.full('uint8', 3)}

    def __init__(self, opt):
        super().__init__(opt)
        phase_dir = os.path.join(opt.dataroot, opt.phase)
        source = phase_dir if os.path.isdir(phase_dir) else opt.dataroot
        self.image_dir = folder_of(source)
        self.paths = make_dataset(source, opt.max_dataset_size)

    def load_sample(self, index, rng):
        path = self.paths[index]
        image = open_image(path)  # grayscale, palette and RGBA files become RGB here
        rgb = (transform(image, self.opt, get_params(self.opt, image.size, rng)) + 1) / 2
        A, B = lab.encode(lab.rgb_to_lab(rgb))
        return {'A': A, 'B': B, 'A_paths': path, 'B_paths': path}

    def __len__(self):
        return len(self.paths)
