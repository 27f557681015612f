import os

import numpy as np

from data.base_dataset import BaseDataset, get_params, image_size
from data.image_folder import IMG_EXTENSIONS, make_dataset, split_layouts
from util.errors import UserError
from util.plugins import option_group

PAIRS = ('auto', 'side_by_side', 'folders')


class AlignedDataset(BaseDataset):
    """Pairs of images A and B, in either of the reference's layouts (--pairs):

    side_by_side: DATAROOT/PHASE/*.jpg, each image A on the left half and B on the right;
    folders: DATAROOT/PHASEA and DATAROOT/PHASEB, each file of one paired with the file of the other at the same
    path relative to its folder, extension aside (trainA/x/001.png with trainB/x/001.jpg).
    auto takes side by side where DATAROOT/PHASE exists, else the folders.
    """

    @staticmethod
    def modify_commandline_options(parser, is_train):
        option_group(parser, 'data').add_argument('--pairs', default='auto', help=(
            'side_by_side: A|B images in DATAROOT/PHASE; folders: A in PHASEA, B in PHASEB; auto: the one there'))
        return parser

    @staticmethod
    def validate_options(opt):
        if opt.pairs not in PAIRS:
            raise UserError(f'--pairs {opt.pairs}: choose from {", ".join(PAIRS)}')

    def __init__(self, opt):
        super().__init__(opt)
        btoa = opt.direction == 'BtoA'
        self.sides = {'input': 'B', 'target': 'A'} if btoa else {'input': 'A', 'target': 'B'}
        folders = find_layout(opt.dataroot, opt.phase, opt.pairs)
        self.side_by_side = len(folders) == 1
        if self.side_by_side:
            self.image_dir = folders[0]
            self.pairs = [(path, path) for path in make_dataset(self.image_dir, opt.max_dataset_size)]
        else:
            # Results are named by the input's path relative to its folder: the pair's own relative path.
            self.image_dir = folders[1] if btoa else folders[0]
            pairs = pair_files(*folders)
            self.pairs = pairs[:min(opt.max_dataset_size, len(pairs))]

    def files(self, index):
        A_path, B_path = self.pairs[index]
        return {'A': A_path, 'B': B_path}

    def read(self, index, readers):
        """{side: PIL picture or H x W x C array} of the pair at index, read by readers {side: SideReader}."""
        A_path, B_path = self.pairs[index]
        if self.side_by_side:  # read once, by the side with more channels (colour, when one side is gray)
            reader = max(readers.values(), key=lambda r: r.mapping.channels if r.mapping else 0)
            halves = split_pair(reader.read(A_path), A_path)
            return {side: readers[side].conform(half) for side, half in zip('AB', halves)}
        images = {'A': readers['A'].read(A_path), 'B': readers['B'].read(B_path)}
        sizes = {side: image_size(image) for side, image in images.items()}
        if sizes['A'] != sizes['B']:
            (w, h), (bw, bh) = sizes['A'], sizes['B']
            raise UserError(f'{A_path} is {w}x{h} but its partner {B_path} is {bw}x{bh}: A and B of a pair must be '
                            f'the same size. Resize one of them to the other.')
        return images

    def load_sample(self, index, rng):
        readers = self.readers()
        images = self.read(index, readers)
        params = get_params(self.opt, image_size(images['A']), rng)
        sample = {'A_paths': self.pairs[index][0], 'B_paths': self.pairs[index][1]}
        for side, image in images.items():
            # test.py writes real images from the values themselves
            sample[side], units = readers[side].to_network(image, params, keep_units=not self.opt.is_train)
            if units is not None:
                sample[f'{role_of(self.sides, side)}_units'] = units
        return sample

    def __len__(self):
        return len(self.pairs)


def role_of(sides, side):
    return next(role for role, name in sides.items() if name == side)


def find_layout(dataroot, phase, pairs):
    """The folders of PHASE in the layout --pairs names, or with auto the one DATAROOT has: [DATAROOT/PHASE]
    side by side, [DATAROOT/PHASEA, DATAROOT/PHASEB] in separate folders."""
    layouts = split_layouts(dataroot, phase)
    present = [name for name, folders in layouts.items() if all(map(os.path.isdir, folders))]
    if pairs == 'auto' and present:
        return layouts[present[0]]
    if pairs in present:
        return layouts[pairs]
    side_by_side, (A_dir, B_dir) = layouts['side_by_side'][0], layouts['folders']
    looked_for = {'side_by_side': f'{side_by_side} (A|B images side by side)',
                  'folders': f'{A_dir} and {B_dir} (A and B in separate folders)'}
    if pairs == 'auto':
        raise UserError(f'there is neither {looked_for["side_by_side"]} nor {looked_for["folders"]}. Check '
                        f'--dataroot (and --phase).')
    raise UserError(f'--pairs {pairs}: there is no {looked_for[pairs]}. Check --dataroot (and --phase), or drop '
                    f'--pairs to take the layout DATAROOT has.')


def pair_files(A_dir, B_dir):
    """(A path, B path) of every image in A_dir, in make_dataset's order, with the image in B_dir at the same
    relative path, extension aside. An image of either folder without its partner is an error."""
    A_files, B_files = by_stem(A_dir), by_stem(B_dir)
    for files, others, other_dir in ((A_files, B_files, B_dir), (B_files, A_files, A_dir)):
        alone = sorted(files.keys() - others.keys())
        if alone:
            path = files[alone[0]]
            raise UserError(f'{path} has no partner: no {os.path.join(other_dir, alone[0])} with any of '
                            f'{", ".join(IMG_EXTENSIONS)}. Add it, or remove {path}.')
    return [(A_files[stem], B_files[stem]) for stem in A_files]


def by_stem(directory):
    """Every image under directory by its path relative to it without the extension. Two images that differ
    only in extension are an error: either could be the partner."""
    files = {}
    for path in make_dataset(directory):
        stem = os.path.splitext(os.path.relpath(path, directory))[0]
        if stem in files:
            raise UserError(f'{files[stem]} and {path} differ only in extension, so either could be the '
                            f'partner. Keep one of them.')
        files[stem] = path
    return files


def split_pair(AB, path):
    """The A (left) and B (right) halves of the aligned pair image read from path (a PIL picture or an array)."""
    w, h = image_size(AB)
    if w % 2:
        raise UserError(f'{path} is {w}x{h}: an aligned pair must be two equal halves side by side, so its '
                        f'width must be even. Recombine it with datasets/combine_A_and_B.py.')
    # A pair of halves each at most half as wide as tall is far likelier a single photo (square or
    # portrait) that landed in an aligned folder; cutting it in two would train on garbage.
    if w <= h:
        raise UserError(f'{path} is {w}x{h}, not wider than tall, so it is not an A|B pair (two images side '
                        f'by side). For single images use --dataset_mode single; for A and B in separate folders, '
                        f'put them in DATAROOT/PHASEA and DATAROOT/PHASEB.')
    half = w // 2
    if isinstance(AB, np.ndarray):
        return AB[:, :half], AB[:, half:]
    return AB.crop((0, 0, half, h)), AB.crop((half, 0, w, h))
