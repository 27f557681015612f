"""test.py on one image file, or on a folder of single images without the train/test layout: the generator alone
(--model test), with the usual gallery."""
import os

import numpy as np
from PIL import Image

from data.image_folder import holds_single_images
from tests.tiny_data import pair_image


def translate(runner, tiny_run, dataroot, results, *args, check=True):
    return runner.run('test.py', '--dataroot', dataroot, '--name', 'tiny', '--checkpoints_dir', tiny_run.checkpoints,
                      '--results_dir', results, '--preprocess', 'none', '--eval', *args, check=check)


def pixels(path):
    return np.asarray(Image.open(path))


def test_a_folder_of_single_images_and_one_image_file_give_the_same_gallery(runner, tiny_run, tmp_path):
    folder = tmp_path / 'photos'
    photo = pair_image(str(folder / 'photo.png'), 40, 24, seed=1)
    pair_image(str(folder / 'more' / 'other.png'), 32, 32, seed=2)  # subfolders are searched too

    proc = translate(runner, tiny_run, folder, tmp_path / 'from_folder')
    assert ('single images, not pairs in test/ or testA/ and testB/: translating them with the generator alone '
            '(--model test)') in proc.stdout
    gallery = tmp_path / 'from_folder' / 'tiny' / 'test_latest'
    assert sorted(os.listdir(gallery / 'images')) == ['more_other_fake.png', 'more_other_real.png',
                                                       'photo_fake.png', 'photo_real.png']
    assert 'processed 2 images' in proc.stdout
    assert (pixels(gallery / 'images' / 'photo_real.png') == photo).all()  # --preprocess none: the image as it is
    assert pixels(gallery / 'images' / 'photo_fake.png').shape == (24, 40, 3)

    proc = translate(runner, tiny_run, folder / 'photo.png', tmp_path / 'from_file')
    single = tmp_path / 'from_file' / 'tiny' / 'test_latest'
    assert sorted(os.listdir(single / 'images')) == ['photo_fake.png', 'photo_real.png']
    assert 'processed 1 images' in proc.stdout
    assert (pixels(single / 'images' / 'photo_fake.png') == pixels(gallery / 'images' / 'photo_fake.png')).all()
    page = (single / 'index.html').read_text()
    assert 'src="images/photo_real.png"' in page and 'src="images/photo_fake.png"' in page


def test_a_file_that_is_not_an_image_gets_one_clear_line(runner, tiny_run, tmp_path):
    notes = tmp_path / 'notes.txt'
    notes.write_text('not an image')
    proc = translate(runner, tiny_run, notes, tmp_path / 'results', check=False)
    assert proc.returncode == 1
    assert f'{notes} is not an image (.jpg, .jpeg, .png' in proc.stderr and 'Traceback' not in proc.stderr


def test_single_images_may_all_lie_in_subfolders_but_a_dataset_layout_is_not_single_images(tmp_path):
    nested = tmp_path / 'nested'
    pair_image(str(nested / 'a' / 'one.png'), 32, 32)
    pair_image(str(nested / 'b' / 'c' / 'two.png'), 32, 32)
    assert holds_single_images(str(nested), 'test')
    assert holds_single_images(str(nested / 'a' / 'one.png'), 'test')
    (tmp_path / 'empty' / 'sub').mkdir(parents=True)
    assert not holds_single_images(str(tmp_path / 'empty'), 'test')
    # test/ is the dataset's split; train/ or val/ alone: test/ is missing. Likewise A and B in separate folders,
    # either of which marks a dataset (its partner folder missing is then an error, not single images).
    for split in ('test', 'train', 'val', 'testA', 'trainA', 'valB'):
        dataset = tmp_path / f'with_{split}'
        pair_image(str(dataset / split / 'pair.png'), 64, 32)
        pair_image(str(dataset / 'loose.png'), 32, 32)
        assert not holds_single_images(str(dataset), 'test')
    assert not holds_single_images(str(tmp_path / 'with_test'), 'val')  # another PHASE: test/ still marks a dataset
    assert not holds_single_images(str(tmp_path / 'nothing_here'), 'test')
