import os

from data.base_dataset import BaseDataset, get_params, transform
from data.image_folder import make_dataset, open_image
from util.errors import UserError


class AlignedDataset(BaseDataset):
    """Pairs stored as one image, A on the left half and B on the right: DATAROOT/PHASE/*.jpg."""

    def __init__(self, opt):
        super().__init__(opt)
        self.image_dir = os.path.join(opt.dataroot, opt.phase)
        self.AB_paths = make_dataset(self.image_dir, opt.max_dataset_size)
        btoa = opt.direction == 'BtoA'
        self.A_channels = opt.output_nc if btoa else opt.input_nc
        self.B_channels = opt.input_nc if btoa else opt.output_nc

    def load_sample(self, index, rng):
        path = self.AB_paths[index]
        A, B = split_pair(path)
        params = get_params(self.opt, A.size, rng)
        return {'A': transform(A, self.opt, params, grayscale=self.A_channels == 1),
                'B': transform(B, self.opt, params, grayscale=self.B_channels == 1),
                'A_paths': path, 'B_paths': path}

    def __len__(self):
        return len(self.AB_paths)


def split_pair(path):
    """The A (left) and B (right) halves of the aligned pair image at path, as RGB PIL images."""
    AB = open_image(path)
    w, h = AB.size
    if w % 2:
        raise UserError(f'{path} is {w}x{h}: an aligned pair must be two equal halves side by side, so its '
                        f'width must be even. Recombine it with datasets/combine_A_and_B.py.')
    # A pair of halves each at most half as wide as tall is far likelier a single photo (square or
    # portrait) that landed in an aligned folder; cutting it in two would train on garbage.
    if w <= h:
        raise UserError(f'{path} is {w}x{h}, not wider than tall, so it is not an A|B pair (two images side '
                        f'by side). For single images use --dataset_mode single; to make pairs from A and B '
                        f'folders use datasets/combine_A_and_B.py.')
    half = w // 2
    return AB.crop((0, 0, half, h)), AB.crop((half, 0, w, h))
