from data.base_dataset import BaseDataset, get_params, transform
from data.image_folder import make_dataset, open_image


class SingleDataset(BaseDataset):
    """Images to translate, without targets: DATAROOT is one image file or a folder (searched recursively)."""

    def __init__(self, opt):
        super().__init__(opt)
        self.A_paths = make_dataset(opt.dataroot, opt.max_dataset_size)
        self.channels = opt.output_nc if opt.direction == 'BtoA' else opt.input_nc

    def load_sample(self, index, rng):
        path = self.A_paths[index]
        A = open_image(path)
        return {'A': transform(A, self.opt, get_params(self.opt, A.size, rng), grayscale=self.channels == 1),
                'A_paths': path}

    def __len__(self):
        return len(self.A_paths)
