from data.base_dataset import BaseDataset, get_params, image_size
from data.image_folder import make_dataset


class SingleDataset(BaseDataset):
    """Images to translate, without targets: DATAROOT is one image file or a folder (searched recursively).
    They are G's input: the data's side A, or with --direction BtoA its side B (their channels and values)."""

    def __init__(self, opt):
        super().__init__(opt)
        self.A_paths = make_dataset(opt.dataroot, opt.max_dataset_size)
        self.sides = {'input': 'B' if opt.direction == 'BtoA' else 'A'}

    def files(self, index):
        return {self.sides['input']: self.A_paths[index]}

    def read(self, index, readers):
        side = self.sides['input']
        return {side: readers[side].read(self.A_paths[index])}

    def load_sample(self, index, rng):
        readers = self.readers()
        (side, image), = self.read(index, readers).items()
        A, units = readers[side].to_network(image, get_params(self.opt, image_size(image), rng),
                                            keep_units=not self.opt.is_train)
        sample = {'A': A, 'A_paths': self.A_paths[index]}
        if units is not None:
            sample['input_units'] = units
        return sample

    def __len__(self):
        return len(self.A_paths)
