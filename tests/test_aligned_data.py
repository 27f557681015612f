"""Aligned pairs: A and B get the same crop and flip, in both directions, for every preprocess mode; the crop
and flip come from (seed, epoch, sample index) alone."""
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from data.aligned_dataset import AlignedDataset
from data.single_dataset import SingleDataset
from util.value_mapping import ValueMapping


def options(root, **overrides):
    values = dict(dataroot=str(root), phase='train', pairs='auto', max_dataset_size=float('inf'), direction='AtoB',
                  input_nc=3, output_nc=3, preprocess='resize_and_crop', load_size=40, crop_size=32,
                  no_flip=False, seed=0, is_train=True)
    values.update(overrides)
    # 8-bit data: the type's full range, what options/resolution.py gives it
    channels = {'A': values['input_nc'], 'B': values['output_nc']}
    if values['direction'] == 'BtoA':
        channels = {'A': values['output_nc'], 'B': values['input_nc']}
    for side in 'AB':
        values.setdefault(f'mapping_{side}', ValueMapping.full('uint8', channels[side]).to_dict())
    return SimpleNamespace(**values)


def write_pair(root, name='p.png', w=40, h=40):
    """A|B where B is A plus a constant, so any misalignment between them shows up in B - A."""
    os.makedirs(os.path.join(root, 'train'), exist_ok=True)
    rng = np.random.default_rng(1)
    A = rng.integers(0, 200, (h, w, 3), dtype=np.uint8)
    Image.fromarray(np.concatenate([A, A + 50], axis=1)).save(os.path.join(root, 'train', name))
    return A


@pytest.mark.parametrize('preprocess', ['resize_and_crop', 'crop', 'scale_width', 'scale_width_and_crop', 'none'])
def test_A_and_B_get_the_same_crop_and_flip(tmp_path, preprocess):
    write_pair(tmp_path, w=40, h=48)
    dataset = AlignedDataset(options(tmp_path, preprocess=preprocess))
    flips = set()
    for epoch in range(12):
        item = dataset[(epoch, 0)]
        A, B = item['A'], item['B']
        assert A.shape == B.shape
        # +50 grey levels is +50/127.5 in [-1, 1]; a different crop or flip would break this everywhere.
        if preprocess in ('crop', 'none'):  # no resampling: exact
            assert torch.allclose(B - A, torch.full_like(A, 50 / 127.5), atol=1e-5)
        else:
            assert (B - A - 50 / 127.5).abs().mean() < 0.02
        flips.add(float(A[0, 0, 0]))
    assert len(flips) > 1, 'crops and flips never varied'
    expected = {'resize_and_crop': (32, 32), 'crop': (32, 32), 'scale_width': (48, 40),
                'scale_width_and_crop': (32, 32), 'none': (48, 40)}[preprocess]
    assert tuple(A.shape[1:]) == expected


def test_crop_and_flip_match_pixel_for_pixel(tmp_path):
    A_pixels = write_pair(tmp_path)
    dataset = AlignedDataset(options(tmp_path, preprocess='crop'))
    for epoch in range(8):
        item = dataset[(epoch, 0)]
        rng = np.random.default_rng((0, epoch, 0))  # the draws get_params made: (seed, epoch, index)
        x, y = rng.integers(0, 8, endpoint=True), rng.integers(0, 8, endpoint=True)
        flip = rng.random() > 0.5
        expected = A_pixels[y:y + 32, x:x + 32]
        if flip:
            expected = expected[:, ::-1]
        got = ((item['A'].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
        assert np.array_equal(got, expected)


def test_a_sample_is_cut_the_same_way_wherever_and_whenever_it_is_loaded(tmp_path):
    write_pair(tmp_path, name='a.png')
    write_pair(tmp_path, name='b.png')
    dataset = AlignedDataset(options(tmp_path, preprocess='crop'))
    first = dataset[(3, 1)]['A']
    np.random.seed(99)  # no global generator takes part
    assert torch.equal(AlignedDataset(options(tmp_path, preprocess='crop'))[(3, 1)]['A'], first)
    assert not torch.equal(dataset[(4, 1)]['A'], first)  # another epoch: another crop
    reseeded = AlignedDataset(options(tmp_path, preprocess='crop', seed=1))
    assert not torch.equal(reseeded[(3, 1)]['A'], first)  # another run's seed: another crop
    assert torch.equal(dataset[1]['A'], dataset[(0, 1)]['A'])  # a plain index is epoch 0


def test_direction_swaps_inputs_and_grayscale_follows_channels(tmp_path):
    write_pair(tmp_path)
    item = AlignedDataset(options(tmp_path, direction='BtoA', input_nc=1, output_nc=3, no_flip=True))[0]
    # With BtoA the network's input is B, so B is read with input_nc=1 channel and A with 3.
    assert item['B'].shape[0] == 1 and item['A'].shape[0] == 3


def test_single_dataset_reads_a_folder_recursively(tmp_path):
    for sub in ('a', 'b/c'):
        os.makedirs(tmp_path / sub)
        Image.new('RGB', (20, 16), 'red').save(tmp_path / sub / 'x.jpg')
    (tmp_path / 'notes.txt').write_text('not an image')
    dataset = SingleDataset(options(tmp_path, preprocess='none', no_flip=True))
    assert len(dataset) == 2
    assert dataset[0]['A'].shape == (3, 16, 20)
