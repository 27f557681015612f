"""A and B in separate folders (DATAROOT/PHASEA and DATAROOT/PHASEB), paired by their path relative to the
folder, extension aside: the same samples as the side-by-side layout, its errors, --pairs, and train.py,
validation and test.py on such a dataset."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from data import create_validation_loader
from data.aligned_dataset import AlignedDataset
from data.image_folder import holds_single_images
from options.train_options import TrainOptions
from tests.scripts import TINY_NET
from util.errors import UserError

# Relative paths of the pairs, in a subfolder too; B is stored lossless in other formats than A.
NAMES = ('001', 'x/002', 'x/y/003')
B_FORMATS = ('bmp', 'png', 'tif')


def write_folder_pairs(root, phase='train', names=NAMES, size=(40, 48), B_mode='RGB', seed=0):
    """root/PHASEA/NAME.png (RGB) and root/PHASEB/NAME.{bmp,png,tif} (B_mode), random pixels; returns
    {name: (A pixels, B pixels)}."""
    rng = np.random.default_rng(seed)
    pixels = {}
    for name, B_format in zip(names, B_FORMATS * len(names)):
        A = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        B = rng.integers(0, 256, (size[1], size[0], 3) if B_mode == 'RGB' else (size[1], size[0]), dtype=np.uint8)
        for side, image, extension in (('A', A, 'png'), ('B', B, B_format)):
            path = os.path.join(root, phase + side, f'{name}.{extension}')
            os.makedirs(os.path.dirname(path), exist_ok=True)
            Image.fromarray(image).save(path)
        pixels[name] = A, B
    return pixels


def write_side_by_side(root, pixels, phase='train'):
    """The same pairs as root/PHASE/NAME.png, A left and B right (a grayscale B as RGB, as a file holds it)."""
    for name, (A, B) in pixels.items():
        B = B if B.ndim == 3 else np.repeat(B[..., None], 3, axis=2)
        path = os.path.join(root, phase, f'{name}.png')
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(np.concatenate([A, B], axis=1)).save(path)


def options(root, *extra):
    return TrainOptions().parse(['--dataroot', root, *TINY_NET, '--seed', '0', *extra])  # one seed: the same crops


@pytest.mark.parametrize('preprocess', ['resize_and_crop', 'crop', 'scale_width_and_crop', 'none'])
@pytest.mark.parametrize('direction', ['AtoB', 'BtoA'])
def test_both_layouts_give_the_same_samples(tmp_path, preprocess, direction):
    pixels = write_folder_pairs(tmp_path / 'folders', B_mode='L')
    write_side_by_side(tmp_path / 'side_by_side', pixels)
    # RGB A, grayscale B: the channels follow the flags, whatever the files hold.
    flags = ['--preprocess', preprocess, '--load_size', '44', '--crop_size', '32', '--direction', direction,
             '--input_nc', '1' if direction == 'BtoA' else '3', '--output_nc', '3' if direction == 'BtoA' else '1']
    folders = AlignedDataset(options(tmp_path / 'folders', *flags))
    side_by_side = AlignedDataset(options(tmp_path / 'side_by_side', *flags))
    assert len(folders) == len(side_by_side) == len(NAMES)
    first_sample = set()
    for epoch in range(6):
        for index, name in enumerate(NAMES):
            got, expected = folders[(epoch, index)], side_by_side[(epoch, index)]
            assert got['A'].shape[0] == 3 and got['B'].shape[0] == 1
            assert torch.equal(got['A'], expected['A']) and torch.equal(got['B'], expected['B'])
            assert got['A_paths'] == str(tmp_path / 'folders' / 'trainA' / f'{name}.png')
            assert os.path.splitext(got['B_paths'])[0] == str(tmp_path / 'folders' / 'trainB' / name)
            if index == 0:
                first_sample.add(got['A'].numpy().tobytes())
    assert len(first_sample) > 1, 'crops and flips never varied'


def test_pairs_are_found_by_relative_path_whatever_the_extension(tmp_path):
    write_folder_pairs(tmp_path, names=('a/001', 'b/001', '001'))
    dataset = AlignedDataset(options(tmp_path))
    pairs = [(os.path.relpath(item['A_paths'], tmp_path), os.path.relpath(item['B_paths'], tmp_path))
             for item in (dataset[i] for i in range(len(dataset)))]
    assert pairs == [('trainA/001.png', 'trainB/001.tif'), ('trainA/a/001.png', 'trainB/a/001.bmp'),
                     ('trainA/b/001.png', 'trainB/b/001.png')]
    assert dataset.image_dir == str(tmp_path / 'trainA')  # test.py names results by the pair's relative path
    assert len(AlignedDataset(options(tmp_path, '--max_dataset_size', '2'))) == 2
    btoa = AlignedDataset(options(tmp_path, '--direction', 'BtoA'))
    assert btoa.image_dir == str(tmp_path / 'trainB')  # the input's folder: B's path is the one results follow


def test_a_loader_worker_gives_the_same_batches(tmp_path):
    write_folder_pairs(tmp_path)
    dataset = AlignedDataset(options(tmp_path, '--preprocess', 'crop', '--load_size', '40'))
    keys = [(1, index) for index in range(len(dataset))]
    in_process = list(torch.utils.data.DataLoader(dataset, batch_size=2, sampler=keys))
    in_worker = list(torch.utils.data.DataLoader(dataset, batch_size=2, sampler=keys, num_workers=1))
    for a, b in zip(in_process, in_worker):
        assert torch.equal(a['A'], b['A']) and torch.equal(a['B'], b['B']) and a['B_paths'] == b['B_paths']


def test_a_file_without_its_partner(tmp_path):
    write_folder_pairs(tmp_path)
    os.remove(tmp_path / 'trainB' / 'x' / '002.png')
    with pytest.raises(UserError) as error:
        AlignedDataset(options(tmp_path))
    assert error.value.message == (
        f'{tmp_path}/trainA/x/002.png has no partner: no {tmp_path}/trainB/x/002 with any of .jpg, .jpeg, .png, '
        f'.ppm, .bmp, .tif, .tiff, .webp, .npy. Add it, or remove {tmp_path}/trainA/x/002.png.')
    Image.new('RGB', (40, 48)).save(tmp_path / 'trainB' / 'x' / '002.jpg')
    Image.new('RGB', (40, 48)).save(tmp_path / 'trainB' / 'extra.png')  # B without A is the same mistake
    with pytest.raises(UserError, match=f'^error: {tmp_path}/trainB/extra.png has no partner: no '
                                        f'{tmp_path}/trainA/extra with any of .jpg'):
        AlignedDataset(options(tmp_path))


def test_two_candidate_partners(tmp_path):
    write_folder_pairs(tmp_path)
    Image.new('RGB', (40, 48)).save(tmp_path / 'trainB' / 'x' / '002.jpg')
    with pytest.raises(UserError) as error:
        AlignedDataset(options(tmp_path))
    assert error.value.message == (f'{tmp_path}/trainB/x/002.jpg and {tmp_path}/trainB/x/002.png differ only in '
                                   f'extension, so either could be the partner. Keep one of them.')


def test_a_pair_of_different_sizes(tmp_path):
    write_folder_pairs(tmp_path)
    Image.new('L', (40, 40)).save(tmp_path / 'trainB' / 'x' / '002.png')
    dataset = AlignedDataset(options(tmp_path))
    with pytest.raises(UserError) as error:
        dataset[1]
    assert error.value.message == (f'{tmp_path}/trainA/x/002.png is 40x48 but its partner '
                                   f'{tmp_path}/trainB/x/002.png is 40x40: A and B of a pair must be the same size. '
                                   f'Resize one of them to the other.')


def test_pairs_flag_picks_the_layout(tmp_path):
    write_side_by_side(tmp_path, write_folder_pairs(tmp_path, names=('001',)))
    os.rename(tmp_path / 'train' / '001.png', tmp_path / 'train' / 'side.png')  # which layout was read shows
    assert os.path.basename(AlignedDataset(options(tmp_path))[0]['A_paths']) == 'side.png'  # auto: side by side
    folders = AlignedDataset(options(tmp_path, '--pairs', 'folders'))[0]
    assert folders['A_paths'] == str(tmp_path / 'trainA' / '001.png')
    assert AlignedDataset(options(tmp_path, '--pairs', 'side_by_side'))[0]['B_paths'].endswith('side.png')

    os.rename(tmp_path / 'train', tmp_path / 'elsewhere')
    assert AlignedDataset(options(tmp_path))[0]['A_paths'] == folders['A_paths']  # auto: the folders
    with pytest.raises(UserError) as error:
        AlignedDataset(options(tmp_path, '--pairs', 'side_by_side'))
    assert error.value.message == (f'--pairs side_by_side: there is no {tmp_path}/train (A|B images side by side). '
                                   f'Check --dataroot (and --phase), or drop --pairs to take the layout DATAROOT has.')
    os.rename(tmp_path / 'trainB', tmp_path / 'B')
    with pytest.raises(UserError) as error:
        AlignedDataset(options(tmp_path))
    assert error.value.message == (f'there is neither {tmp_path}/train (A|B images side by side) nor '
                                   f'{tmp_path}/trainA and {tmp_path}/trainB (A and B in separate folders). Check '
                                   f'--dataroot (and --phase).')
    with pytest.raises(UserError, match='^error: --pairs sideways: choose from auto, side_by_side, folders$'):
        options(tmp_path, '--pairs', 'sideways')


def test_a_dataset_of_folders_is_not_single_images_and_validation_finds_its_split(tmp_path):
    write_folder_pairs(tmp_path, 'train')
    write_folder_pairs(tmp_path, 'test', names=('t1',))
    assert not holds_single_images(str(tmp_path), 'test')
    loader = create_validation_loader(options(tmp_path, '--val_freq', '1'))
    assert loader.dataset.image_dir == str(tmp_path / 'testA')  # no val split: test
    write_folder_pairs(tmp_path, 'val', names=('v1', 'v2'))
    loader = create_validation_loader(options(tmp_path, '--val_freq', '1'))
    assert (loader.dataset.image_dir, len(loader.dataset)) == (str(tmp_path / 'valA'), 2)


def test_train_validate_and_test_on_folders(runner, tmp_path):
    data = tmp_path / 'data'
    for phase, names in (('train', NAMES), ('val', ('v/1', 'v/2')), ('test', NAMES)):
        write_folder_pairs(data, phase, names=names, size=(32, 32))
    checkpoints = tmp_path / 'checkpoints'
    runner.run('train.py', '--dataroot', data, '--name', 'folders', '--checkpoints_dir', checkpoints, *TINY_NET,
               '--n_epochs', 1, '--n_epochs_decay', 0, '--batch_size', 2, '--serial_batches', '--val_freq', 1)
    with open(checkpoints / 'folders' / 'val_log.jsonl') as log:
        record = json.loads(log.readline())
    assert (record['split'], record['images']) == (str(data / 'valA'), 2)

    results = tmp_path / 'results'
    proc = runner.run('test.py', '--dataroot', data, '--name', 'folders', '--checkpoints_dir', checkpoints,
                      '--results_dir', results, '--load_size', 32, '--crop_size', 32)
    assert 'single images' not in proc.stdout
    images = sorted(os.listdir(results / 'folders' / 'test_latest' / 'images'))
    assert images == sorted(f'{name.replace("/", "_")}_{label}.png' for name in NAMES
                            for label in ('real_A', 'fake_B', 'real_B'))
