import os

import numpy as np
import pytest
from PIL import Image

from tests import scripts

COMBINE = 'datasets/combine_A_and_B.py'
MAKE_ALIGNED = 'datasets/make_dataset_aligned.py'


def run(script, *args, cwd):
    return scripts.run(script, *args, check=False, timeout=60, cwd=cwd)


def make_image(path, seed, size=(16, 16), mode='RGB'):
    """A random-noise PNG, so any pixel in the wrong place shows."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    channels = {'RGB': 3, 'L': 1}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(path)
    return path


def pixels(path):
    with Image.open(path) as image:
        return np.asarray(image.convert('RGB')).astype(int)


def assert_side_by_side(path_AB, path_A, path_B, tolerance=0):
    combined, left, right = pixels(path_AB), pixels(path_A), pixels(path_B)
    width = left.shape[1]
    assert combined.shape == (left.shape[0], 2 * width, 3)
    assert np.abs(combined[:, :width] - left).max() <= tolerance
    assert np.abs(combined[:, width:] - right).max() <= tolerance


def no_temporary_files(folder):
    return not [name for _, _, names in os.walk(folder) for name in names if name.startswith('.')]


@pytest.mark.parametrize('extra_args', [[], ['--no_multiprocessing']])
def test_combine_writes_a_left_and_b_right(tmp_path, extra_args):
    names = {'train': ['1.png', '2.png', '3.png'], 'test': ['9.png']}
    for seed, (split, name) in enumerate((s, n) for s, split_names in names.items() for n in split_names):
        # A grey A image must come out as RGB, as with the reference's cv2.IMREAD_COLOR.
        make_image(tmp_path / 'A' / split / name, seed, mode='L' if name == '2.png' else 'RGB')
        make_image(tmp_path / 'B' / split / name, 100 + seed)

    result = run(COMBINE, '--fold_A', 'A', '--fold_B', 'B', '--fold_AB', 'AB', *extra_args, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert 'Wrote 4 images.' in result.stdout
    for split, split_names in names.items():
        assert sorted(os.listdir(tmp_path / 'AB' / split)) == split_names
        for name in split_names:
            assert_side_by_side(tmp_path / 'AB' / split / name, tmp_path / 'A' / split / name,
                                tmp_path / 'B' / split / name)


def test_combine_use_AB_pairs_x_A_with_x_B_in_one_folder(tmp_path):
    make_image(tmp_path / 'pairs' / 'train' / '0001_A.png', 1)
    make_image(tmp_path / 'pairs' / 'train' / '0001_B.png', 2)
    make_image(tmp_path / 'pairs' / 'train' / '0002_A.png', 3)
    make_image(tmp_path / 'pairs' / 'train' / '0002_B.png', 4)

    result = run(COMBINE, '--fold_A', 'pairs', '--fold_B', 'pairs', '--fold_AB', 'AB', '--use_AB', cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path / 'AB' / 'train')) == ['0001.png', '0002.png']
    assert_side_by_side(tmp_path / 'AB' / 'train' / '0002.png', tmp_path / 'pairs' / 'train' / '0002_A.png',
                        tmp_path / 'pairs' / 'train' / '0002_B.png')


def test_combine_num_imgs_takes_the_first_names(tmp_path):
    for seed, name in enumerate(['b.png', 'a.png', 'c.png']):
        make_image(tmp_path / 'A' / 'train' / name, seed)
        make_image(tmp_path / 'B' / 'train' / name, seed)

    result = run(COMBINE, '--fold_A', 'A', '--fold_B', 'B', '--fold_AB', 'AB', '--num_imgs', '2', cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path / 'AB' / 'train')) == ['a.png', 'b.png']


def test_combine_reports_bad_pairs_by_name_and_writes_the_rest(tmp_path):
    A, B = tmp_path / 'A' / 'train', tmp_path / 'B' / 'train'
    make_image(A / 'good.png', 1)
    make_image(B / 'good.png', 2)
    make_image(A / 'lonely.png', 3)
    make_image(B / 'orphan.png', 4)
    make_image(A / 'sizes.png', 5, size=(16, 16))
    make_image(B / 'sizes.png', 6, size=(16, 8))
    make_image(A / 'broken.png', 7)
    (B / 'broken.png').write_bytes(b'not an image')
    make_image(tmp_path / 'A' / 'val' / 'x.png', 8)  # a split B lacks

    result = run(COMBINE, '--fold_A', 'A', '--fold_B', 'B', '--fold_AB', 'AB', cwd=tmp_path)

    assert result.returncode == 1
    assert os.path.join('A', 'train', 'lonely.png') in result.stderr
    assert os.path.join('B', 'train', 'orphan.png') in result.stderr
    assert 'size mismatch' in result.stderr and os.path.join('B', 'train', 'sizes.png') in result.stderr
    assert 'unreadable' in result.stderr and os.path.join('B', 'train', 'broken.png') in result.stderr
    assert os.path.join('B', 'val') + ' is missing' in result.stderr
    assert 'skipped' in result.stdout.splitlines()[-1]
    assert os.listdir(tmp_path / 'AB') == ['train']
    assert os.listdir(tmp_path / 'AB' / 'train') == ['good.png']
    assert_side_by_side(tmp_path / 'AB' / 'train' / 'good.png', A / 'good.png', B / 'good.png')
    assert no_temporary_files(tmp_path / 'AB')


def test_combine_rejects_a_missing_input_folder(tmp_path):
    result = run(COMBINE, '--fold_A', 'nowhere', '--fold_B', 'nowhere', '--fold_AB', 'AB', cwd=tmp_path)
    assert result.returncode == 2 and 'nowhere is not a folder' in result.stderr


def make_solid(path, colour):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new('RGB', (16, 16), colour).save(path)


def test_make_dataset_aligned_pairs_by_sorted_order(tmp_path):
    # Solid colours, because the output is JPEG and would blur noise beyond comparison.
    colours = {'A/a.png': (255, 0, 0), 'A/b.png': (0, 255, 0), 'B/photo_1.jpg': (0, 0, 255), 'B/photo_2.png': (255, 255, 0)}
    for split in ('train', 'test'):
        for name, colour in colours.items():
            side, file_name = name.split('/')
            make_solid(tmp_path / f'{split}{side}' / file_name, colour)
    (tmp_path / 'trainB' / 'notes.txt').write_text('not an image, not a pair')

    result = run(MAKE_ALIGNED, '--dataset-path', str(tmp_path), cwd=scripts.REPO)

    assert result.returncode == 0, result.stderr
    for split in ('train', 'test'):
        assert sorted(os.listdir(tmp_path / split)) == ['0000.jpg', '0001.jpg']
        for index, (name_A, name_B) in enumerate([('A/a.png', 'B/photo_1.jpg'), ('A/b.png', 'B/photo_2.png')]):
            combined = pixels(tmp_path / split / f'{index:04d}.jpg')
            assert combined.shape == (16, 32, 3)
            # Columns next to the seam may blend a little in JPEG.
            assert np.abs(combined[:, :14] - colours[name_A]).max() <= 3
            assert np.abs(combined[:, 18:] - colours[name_B]).max() <= 3


def test_make_dataset_aligned_reports_mismatches_and_writes_the_rest(tmp_path):
    make_image(tmp_path / 'trainA' / '1.png', 1)
    make_image(tmp_path / 'trainB' / '1.png', 2)
    make_image(tmp_path / 'trainA' / '2.png', 3, size=(16, 16))
    make_image(tmp_path / 'trainB' / '2.png', 4, size=(32, 16))
    make_image(tmp_path / 'testA' / '1.png', 5)
    make_image(tmp_path / 'testA' / '2.png', 6)
    make_image(tmp_path / 'testB' / '1.png', 7)
    make_image(tmp_path / 'valA' / '1.png', 8)

    result = run(MAKE_ALIGNED, '--dataset-path', str(tmp_path), cwd=tmp_path)

    assert result.returncode == 1
    assert 'size mismatch' in result.stderr and str(tmp_path / 'trainB' / '2.png') in result.stderr
    assert f'{tmp_path / "testA"} has 2 images but {tmp_path / "testB"} has 1' in result.stderr
    assert f'{tmp_path / "valB"} is missing' in result.stderr
    assert os.listdir(tmp_path / 'train') == ['0000.jpg']
    assert not (tmp_path / 'test').exists() and not (tmp_path / 'val').exists()
    assert no_temporary_files(tmp_path / 'train')


def test_make_dataset_aligned_needs_split_folders(tmp_path):
    result = run(MAKE_ALIGNED, '--dataset-path', str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and 'trainA/trainB' in result.stderr
