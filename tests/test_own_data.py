"""Users' own data, losslessly: 16-bit, float, any number of channels, TIFF and .npy, in both layouts of pairs.

The files are read as the values they hold (util/arrays.py); the channel counts come from the data; each side's
values map to the network's through a mapping (util/value_mapping.py) that is the type's full range, given, or
measured over the training set, saved with the checkpoints; test.py writes its files in the data's units and
type. Every kind of data here is made by the tests: 16-bit one-channel PNG, float32 two-channel TIFF, uint16
five-band TIFF (planar), .npy, and RGB JPEG to 16-bit depth.
"""
import json
import os
import subprocess
import sys
import tracemalloc
import zlib

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from data.aligned_dataset import AlignedDataset
from options.test_options import TestOptions
from options.train_options import TrainOptions
from tests.scripts import REPO, TINY_NET
from util import arrays
from util.errors import UserError
from util.value_mapping import ValueMapping

SIZE = 32


def write(path, array):
    """Write array (H x W x C) to path in the format its extension names: PNG (Pillow), TIFF (tifffile: bands
    first, planar, for more than four bands, as many satellite tools write them), .npy."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if path.endswith('.tif'):
        planar = array.shape[2] > 4
        tifffile.imwrite(path, np.moveaxis(array, 2, 0) if planar else array.squeeze(2) if array.shape[2] == 1
                         else array, photometric='minisblack', planarconfig='separate' if planar else 'contig')
    elif path.endswith('.npy'):
        np.save(path, array.squeeze(2) if array.shape[2] == 1 else array)
    else:
        Image.fromarray(array.squeeze(2) if array.shape[2] == 1 else array).save(path)


def depth_like(rng, channels, dtype):
    """Values that fill a small part of their type, with detail finer than 1/256 of their range."""
    base = rng.random((SIZE, SIZE, channels)) * 3000 + 200
    if np.dtype(dtype).kind == 'f':
        return (base / 1000 - 1.5).astype(dtype)  # float: around zero, fractional
    return np.round(base).astype(dtype)


KINDS = {  # name: (A's type, channels, extension), (B's ...)
    'uint16_1': (('uint16', 1, 'png'), ('uint16', 1, 'png')),
    'float32_2': (('float32', 2, 'tif'), ('float32', 2, 'tif')),
    'uint16_5': (('uint16', 5, 'tif'), ('uint16', 3, 'tif')),
    'rgb_to_depth': (('uint8', 3, 'jpg'), ('uint16', 1, 'png')),
    'npy': (('int16', 1, 'npy'), ('float32', 3, 'npy')),
}


def make_pairs(root, kind, phases=('train', 'test'), count=3, seed=0):
    """root/PHASEA and root/PHASEB of kind (KINDS); returns {phase: [(A array, B array)]} as written."""
    rng = np.random.default_rng(seed)
    written = {}
    for phase in phases:
        written[phase] = []
        for i in range(count):
            pair = []
            for side, (dtype, channels, extension) in zip('AB', KINDS[kind]):
                if dtype == 'uint8':
                    array = rng.integers(0, 256, (SIZE, SIZE, channels), dtype=np.uint8)
                else:
                    array = depth_like(rng, channels, dtype)
                path = os.path.join(root, f'{phase}{side}', f'{i:03d}.{extension}')
                write(path, array)
                pair.append(arrays.read_array(path))  # a JPEG holds what it decodes to
            written[phase].append(tuple(pair))
    return written


def train_options(root, *extra):
    return TrainOptions().parse(['--dataroot', str(root), *TINY_NET, '--seed', '0', *extra])


@pytest.mark.parametrize('kind', list(KINDS))
def test_files_are_read_as_the_values_they_hold(tmp_path, kind):
    written = make_pairs(tmp_path, kind, phases=('train',), count=1)
    (A, B), = written['train']
    for side, array, (dtype, channels, extension) in (('A', A, KINDS[kind][0]), ('B', B, KINDS[kind][1])):
        read = arrays.read_array(str(tmp_path / f'train{side}' / f'000.{extension}'))
        assert read.dtype == dtype and read.shape == (SIZE, SIZE, channels)
        assert np.array_equal(read, array)
        for extension in ('tif', 'npy') + (('png',) if arrays.file_extension(dtype, channels) == '.png' else ()):
            copy = str(tmp_path / f'copy.{extension}')
            arrays.write_array(copy, read)
            assert np.array_equal(arrays.read_array(copy), read) and arrays.read_array(copy).dtype == read.dtype


def test_a_planar_and_a_contiguous_tiff_give_the_same_array(tmp_path):
    array = depth_like(np.random.default_rng(0), 3, 'uint16')
    tifffile.imwrite(tmp_path / 'planar.tif', np.moveaxis(array, 2, 0), planarconfig='separate',
                     photometric='minisblack')
    tifffile.imwrite(tmp_path / 'contiguous.tif', array, planarconfig='contig', photometric='rgb')
    assert np.array_equal(arrays.read_array(str(tmp_path / 'planar.tif')), array)
    assert np.array_equal(arrays.read_array(str(tmp_path / 'contiguous.tif')), array)


@pytest.mark.parametrize('kind', list(KINDS))
def test_channel_counts_and_mappings_come_from_the_data(tmp_path, kind):
    written = make_pairs(tmp_path, kind, phases=('train',))
    opt = train_options(tmp_path)
    (A_type, A_channels, _), (B_type, B_channels, _) = KINDS[kind]
    assert (opt.input_nc, opt.output_nc) == (A_channels, B_channels)
    assert opt.source('input_nc') == opt.source('output_nc') == 'data'
    for side, dtype, index in (('A', A_type, 0), ('B', B_type, 1)):
        mapping = ValueMapping.from_dict(getattr(opt, f'mapping_{side}'))
        assert mapping.dtype == dtype
        if dtype == 'uint8':  # 8-bit: the type's range, the reference's mapping
            assert mapping.how == 'full' and mapping.ranges == [(0, 255)] * A_channels
            continue
        values = np.concatenate([pair[index].reshape(-1, pair[index].shape[2]) for pair in written['train']])
        expected = list(zip(np.percentile(values, 0.1, axis=0), np.percentile(values, 99.9, axis=0)))
        assert mapping.how == 'measured' and np.allclose(mapping.ranges, expected, rtol=0, atol=1e-6)


def test_the_other_direction_swaps_the_channel_counts(tmp_path):
    make_pairs(tmp_path, 'uint16_5', phases=('train',))
    opt = train_options(tmp_path, '--direction', 'BtoA')
    assert (opt.input_nc, opt.output_nc) == (3, 5)


def test_given_and_full_ranges(tmp_path):
    make_pairs(tmp_path, 'float32_2', phases=('train',))
    opt = train_options(tmp_path, '--range_A', '-2:2', '--range_B', '-1:1,0:3')
    assert ValueMapping.from_dict(opt.mapping_A).ranges == [(-2, 2), (-2, 2)]
    assert ValueMapping.from_dict(opt.mapping_B).ranges == [(-1, 1), (0, 3)]
    assert opt.mapping_B['how'] == 'given' and opt.source('mapping_B') == 'typed'
    with pytest.raises(UserError, match='float32 data has no full range'):
        train_options(tmp_path, '--range_A', 'full')
    with pytest.raises(UserError, match=r'--range_B -1:1,0:3,0:1: 3 ranges for 2 channels'):
        train_options(tmp_path, '--range_B', '-1:1,0:3,0:1')
    with pytest.raises(UserError, match='the range 3:1 is empty'):
        train_options(tmp_path, '--range_B', '3:1')
    with pytest.raises(UserError, match='give auto, full, measured, LOW:HIGH'):
        train_options(tmp_path, '--range_B', 'wide')
    tmp16 = tmp_path / 'u16'
    make_pairs(tmp16, 'uint16_1', phases=('train',))
    assert ValueMapping.from_dict(train_options(tmp16, '--range_A', 'full').mapping_A).ranges == [(0, 65535)]


@pytest.mark.parametrize('preprocess', ['crop', 'none'])
def test_values_finer_than_8_bits_survive_loading_and_augmentation(tmp_path, preprocess):
    written = make_pairs(tmp_path, 'uint16_1', phases=('train',))
    opt = train_options(tmp_path, '--preprocess', preprocess, '--load_size', '32', '--netG', 'unet_16',
                        '--crop_size', '16' if preprocess == 'crop' else '32')
    dataset = AlignedDataset(opt)
    mapping = ValueMapping.from_dict(opt.mapping_B)
    for epoch in range(4):
        for index, (_, B) in enumerate(written['train']):
            sample = dataset[(epoch, index)]
            assert torch.equal(sample['A'], dataset[(epoch, index)]['A'])  # (seed, epoch, index) decides it
            units = mapping.units_to_array(mapping.to_units(sample['B']))
            # The crop of the file's values, flipped or not: every 16-bit step is still there.
            size = units.shape[0]
            candidates = [B[y:y + size, x:x + size] for y in range(SIZE - size + 1) for x in range(SIZE - size + 1)]
            assert any(np.array_equal(units, c) or np.array_equal(units, c[:, ::-1]) for c in candidates)


def test_resizing_keeps_float_precision(tmp_path):
    make_pairs(tmp_path, 'float32_2', phases=('train',))
    opt = train_options(tmp_path, '--load_size', '40', '--crop_size', '32', '--no_flip')
    sample = AlignedDataset(opt)[0]
    # Bicubic resizing of float values: many distinct levels, far more than 8 bits would leave.
    assert len(torch.unique(sample['B'][0])) > 512


@pytest.mark.parametrize('name,layout', [('planar.tif', 'planar'), ('contiguous.tif', 'contig'),
                                         ('bands.npy', None), ('fortran.npy', 'fortran'), ('gray.tif', 'gray')])
def test_the_kind_of_a_large_file_comes_from_its_header(tmp_path, name, layout):
    """file_kind (what the configuration reads of the first file, and each loader of its first) gives what
    read_array gives without loading the pixels: a file of 4 to 8 MB costs it under 1% of that in memory."""
    shape = (1024, 1024, 1) if layout == 'gray' else (512, 512, 8)
    array = np.random.default_rng(0).random(shape, dtype=np.float32)
    path = str(tmp_path / name)
    if name.endswith('.npy'):
        np.save(path, np.asfortranarray(array) if layout == 'fortran' else array)
    else:
        planar = layout == 'planar'
        tifffile.imwrite(path, np.moveaxis(array, 2, 0) if planar else array[..., 0] if layout == 'gray' else array,
                         planarconfig='separate' if planar else 'contig', photometric='minisblack')
    tracemalloc.start()
    try:
        kind = arrays.file_kind(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    read = arrays.read_array(path)
    assert kind == (read.dtype.name, read.shape[2]) == ('float32', array.shape[2])
    assert np.array_equal(read, array)
    assert peak < array.nbytes / 100, peak


def test_a_planar_tiff_as_wide_as_its_band_count_is_still_planar(tmp_path):
    array = np.arange(27, dtype=np.uint16).reshape(3, 3, 3)
    tifffile.imwrite(tmp_path / 'cube.tif', np.moveaxis(array, 2, 0), planarconfig='separate', photometric='minisblack')
    assert np.array_equal(arrays.read_array(str(tmp_path / 'cube.tif')), array)
    assert arrays.file_kind(str(tmp_path / 'cube.tif')) == ('uint16', 3)


def test_the_kind_of_an_unreadable_or_odd_file_is_the_same_error_as_reading_it(tmp_path):
    odd = {'cube.npy': np.zeros((4, 4, 2, 2), np.float32), 'complex.npy': np.zeros((4, 4), np.complex64),
           'objects.npy': np.array([[None, 1]], dtype=object), 'broken.tif': b'II*\x00 not a tiff',
           'broken.npy': b'\x93NUMPY not an array', 'uint64.tif': np.zeros((4, 4), np.uint64)}
    for name, content in odd.items():
        path = str(tmp_path / name)
        if isinstance(content, bytes):
            (tmp_path / name).write_bytes(content)
        elif name.endswith('.npy'):
            np.save(path, content, allow_pickle=True)
        else:
            tifffile.imwrite(path, content)
        with pytest.raises(UserError) as reading:
            arrays.read_array(path)
        with pytest.raises(UserError) as kind:
            arrays.file_kind(path)
        assert str(kind.value) == str(reading.value) and path in str(kind.value), name


@pytest.mark.parametrize('kind', ['uint16_1', 'float32_2', 'uint16_5', 'rgb_to_depth', 'npy'])
def test_a_round_trip_through_test_py_is_exact(runner, tmp_path, kind):
    written = make_pairs(tmp_path / 'data', kind, count=2)
    checkpoints, results = tmp_path / 'checkpoints', tmp_path / 'results'
    runner.run('train.py', '--dataroot', tmp_path / 'data', '--name', kind, '--checkpoints_dir', checkpoints,
               *TINY_NET, '--n_epochs', 1, '--n_epochs_decay', 0)
    saved = json.loads((checkpoints / kind / 'architecture.json').read_text())
    assert saved['mapping_B']['type'] == KINDS[kind][1][0] and saved['input_nc'] == KINDS[kind][0][1]
    runner.run('test.py', '--dataroot', tmp_path / 'data', '--name', kind, '--checkpoints_dir', checkpoints,
               '--results_dir', results, '--preprocess', 'none', '--num_threads', 0)
    images = results / kind / 'test_latest' / 'images'
    (A_type, A_channels, _), (B_type, B_channels, _) = KINDS[kind]
    for i, (A, B) in enumerate(written['test']):
        for label, array, dtype, channels in (('real_A', A, A_type, A_channels), ('real_B', B, B_type, B_channels),
                                              ('fake_B', None, B_type, B_channels)):
            path = str(images / f'{i:03d}_{label}{arrays.file_extension(dtype, channels)}')
            read = arrays.read_array(path)
            assert read.dtype == dtype and read.shape == (SIZE, SIZE, channels)
            if array is not None:
                assert np.array_equal(read, array), f'{label} of {kind} is not the file it was read from'
        mapping = ValueMapping.from_dict(saved['mapping_B'])
        fake = arrays.read_array(str(images / f'{i:03d}_fake_B{arrays.file_extension(B_type, B_channels)}'))
        low, high = np.array(mapping.ranges).T
        assert (fake >= np.floor(low) - 1e-3).all() and (fake <= np.ceil(high) + 1e-3).all()  # what tanh reaches
        if B_type != 'uint8':  # a picture of it beside the file
            assert np.asarray(Image.open(images / f'{i:03d}_fake_B_preview.png')).shape == (SIZE, SIZE, 3)
    html = (results / kind / 'test_latest' / 'index.html').read_text()
    assert f'000_fake_B{arrays.file_extension(B_type, B_channels)}' in html


def test_test_py_uses_the_saved_mapping_not_the_test_data(runner, tmp_path):
    make_pairs(tmp_path / 'data', 'uint16_1', count=2)
    checkpoints = tmp_path / 'checkpoints'
    runner.run('train.py', '--dataroot', tmp_path / 'data', '--name', 'm', '--checkpoints_dir', checkpoints,
               *TINY_NET, '--n_epochs', 1, '--n_epochs_decay', 0)
    saved = json.loads((checkpoints / 'm' / 'architecture.json').read_text())
    opt = TestOptions().parse(['--dataroot', tmp_path / 'data', '--name', 'm', '--checkpoints_dir', checkpoints,
                               '--range_B', '0:10'])
    assert opt.mapping_A == saved['mapping_A'] and opt.mapping_B == saved['mapping_B']
    assert opt.source('mapping_B') == 'saved'
    resumed = TrainOptions().parse(['--dataroot', tmp_path / 'data', '--name', 'm', '--checkpoints_dir', checkpoints,
                                    *TINY_NET, '--continue_train'])
    assert resumed.mapping_B == saved['mapping_B'] and resumed.source('mapping_B') == 'saved'  # not measured again


# Bad input: one line naming the file and the fix.

def test_a_typed_channel_count_that_contradicts_the_data(tmp_path):
    make_pairs(tmp_path, 'float32_2', phases=('train',))
    with pytest.raises(UserError) as error:
        train_options(tmp_path, '--output_nc', '3')
    assert error.value.message == (f'--output_nc 3 (typed) but the data has 2 channels ({tmp_path}/trainB/000.tif, '
                                   f'float32). Drop --output_nc, or give data of 3 channels.')


def test_8bit_pictures_convert_between_gray_and_colour_as_the_reference(tmp_path):
    make_pairs(tmp_path, 'rgb_to_depth', phases=('train',))
    opt = train_options(tmp_path, '--input_nc', '1')
    assert AlignedDataset(opt)[0]['A'].shape[0] == 1


def test_files_unlike_the_rest(tmp_path):
    make_pairs(tmp_path, 'uint16_1', phases=('train',))
    write(str(tmp_path / 'trainB' / '001.png'), np.zeros((SIZE, SIZE, 3), np.uint8))
    with pytest.raises(UserError) as error:  # found when the range of B is measured, before training
        train_options(tmp_path)
    assert error.value.message == (f'{tmp_path}/trainB/001.png holds uint8 values in 3 channels, but '
                                   f'{tmp_path}/trainB/000.png (the first file of its side) uint16 values in 1. '
                                   f'Files of one side must be alike: convert it, or remove it.')


def test_nan_and_infinity_in_float_data(tmp_path):
    make_pairs(tmp_path, 'float32_2', phases=('train',))
    dataset = AlignedDataset(train_options(tmp_path))
    bad = arrays.read_array(str(tmp_path / 'trainA' / '002.tif')).copy()
    bad[3, 5, 1] = np.nan
    bad[7, 0, 0] = np.inf
    write(str(tmp_path / 'trainA' / '002.tif'), bad)
    with pytest.raises(UserError) as error:
        dataset[2]
    assert error.value.message == (f'{tmp_path}/trainA/002.tif holds 2 NaN or infinite values (the first at row 3, '
                                   f'column 5, channel 1). Replace them (for example with np.nan_to_num) or remove '
                                   f'the file.')


def test_a_constant_channel_has_no_measured_range(tmp_path):
    make_pairs(tmp_path, 'float32_2', phases=('train',))
    for i in range(3):
        array = arrays.read_array(str(tmp_path / 'trainB' / f'{i:03d}.tif')).copy()
        array[:, :, 1] = 0.5
        write(str(tmp_path / 'trainB' / f'{i:03d}.tif'), array)
    with pytest.raises(UserError, match=r'the values of B \(3 files\): channel 1 is 0.5 nearly everywhere in the '
                                        r'training set, so its measured range is empty. Give its range'):
        train_options(tmp_path)
    assert train_options(tmp_path, '--range_B', '-2:2').mapping_B['ranges'] == [[-2, 2], [-2, 2]]


def without_imagecodecs(code):
    """Run code in a fresh interpreter where imagecodecs (an optional package, installed for the tests) cannot be
    imported, as on a machine without it; returns its stdout."""
    prelude = 'import sys; sys.modules["imagecodecs"] = None\n'
    result = subprocess.run([sys.executable, '-c', prelude + code], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def read_error_without_imagecodecs(path):
    """The message with which util.arrays refuses path where imagecodecs is not installed."""
    return without_imagecodecs('from util import arrays\nfrom util.errors import UserError\ntry:\n'
                               f'    arrays.read_array({str(path)!r})\nexcept UserError as e:\n'
                               '    print(e.message)\n').strip()


def test_a_tiff_compression_without_its_codec(tmp_path):
    path = tmp_path / 'zstd.tif'
    tifffile.imwrite(path, np.zeros((8, 8), np.uint16))
    with tifffile.TiffFile(path) as tiff:
        offset = tiff.pages[0].tags['Compression'].valueoffset
    with open(path, 'r+b') as f:  # mark it as ZSTD-compressed, which only imagecodecs decodes
        f.seek(offset)
        f.write((50000).to_bytes(2, 'little'))
    assert read_error_without_imagecodecs(path) == (
        f'{path} is compressed with ZSTD, which needs the imagecodecs package: pip install imagecodecs, or save it '
        f'uncompressed, with deflate or with LZW.')


def test_an_object_array_is_refused_not_unpickled(tmp_path):
    path = tmp_path / 'objects.npy'
    np.save(path, np.array([{'a': 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(UserError) as error:
        arrays.read_array(str(path))
    assert error.value.message.startswith(f'{path} holds Python objects, not numbers; it is refused, as unpickling '
                                          f'it could run code.')


def write_colour_png16(path, pixels):
    """Pillow cannot write 48-bit colour, so the PNG is assembled by hand (filter 0 on every row)."""
    height, width, _ = pixels.shape
    raw = b''.join(b'\0' + pixels[y].astype('>u2').tobytes() for y in range(height))

    def chunk(kind, payload):
        return len(payload).to_bytes(4, 'big') + kind + payload + zlib.crc32(kind + payload).to_bytes(4, 'big')

    header = width.to_bytes(4, 'big') + height.to_bytes(4, 'big') + bytes([16, 2, 0, 0, 0])
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', zlib.compress(raw))
                     + chunk(b'IEND', b''))


def test_a_16bit_colour_png_is_read_in_full(tmp_path):
    pixels = depth_like(np.random.default_rng(0), 3, 'uint16')
    path = tmp_path / 'colour16.png'
    write_colour_png16(path, pixels)
    read = arrays.read_array(str(path))
    assert read.dtype == np.uint16 and np.array_equal(read, pixels)
    assert arrays.file_kind(str(path)) == ('uint16', 3)
    # Without imagecodecs Pillow would keep 8 of its bits: refused, naming the package.
    assert read_error_without_imagecodecs(path) == (
        f'{path} is a 16-bit colour PNG, which Pillow reads as 8 bits: pip install imagecodecs to read it in full, '
        f'or save it as a 16-bit TIFF.')


# Everything else works with such data.

def train_rank(rank, world_size, argv, dump_dir):
    """One rank of a torchrun-like run: train.py, then its configuration's mappings and its G saved for the test."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), GLOO_SOCKET_IFNAME='lo')
    torch.set_num_threads(1)
    import train
    model = train.main([str(arg) for arg in argv])
    torch.save({'mappings': [model.opt.mapping_A, model.opt.mapping_B], 'G': model.netG.module.state_dict()
                if hasattr(model.netG, 'module') else model.netG.state_dict()}, os.path.join(dump_dir, f'{rank}.pt'))


def test_every_rank_measures_the_same_ranges_and_trains_the_same_weights(tmp_path):
    make_pairs(tmp_path / 'data', 'float32_2', phases=('train',), count=4)
    argv = ['--dataroot', tmp_path / 'data', '--name', 'ddp', '--checkpoints_dir', tmp_path / 'checkpoints',
            *TINY_NET, '--n_epochs', 1, '--n_epochs_decay', 0, '--dist_url', f'file://{tmp_path}/meet']
    torch.multiprocessing.spawn(train_rank, args=(2, argv, str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f'{rank}.pt', weights_only=True) for rank in range(2)]
    alone = train_options(tmp_path / 'data')
    assert ranks[0]['mappings'] == ranks[1]['mappings'] == [alone.mapping_A, alone.mapping_B]
    # The weights (BatchNorm's running statistics are each rank's own until DDP broadcasts rank 0's)
    assert all(torch.equal(ranks[0]['G'][k], ranks[1]['G'][k]) for k in ranks[0]['G'] if 'running' not in k)


def test_a_resumed_run_on_16bit_data_ends_with_the_same_weights(runner, tmp_path):
    make_pairs(tmp_path / 'data', 'uint16_1', phases=('train',), count=3)
    for name, stops in (('straight', [2]), ('resumed', [1, 2])):
        for i, epochs in enumerate(stops):
            runner.run('train.py', '--dataroot', tmp_path / 'data', '--name', name, '--checkpoints_dir', tmp_path,
                       *TINY_NET, '--seed', 3, '--n_epochs', epochs, '--n_epochs_decay', 0,
                       *(['--continue_train'] if i else []))
    straight, resumed = (torch.load(tmp_path / name / 'latest_net_G.pth', weights_only=True)
                         for name in ('straight', 'resumed'))
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_amp_the_weight_average_and_the_best_checkpoint_on_float_data(runner, tmp_path):
    written = make_pairs(tmp_path / 'data', 'float32_2', phases=('train', 'val', 'test'), count=2)
    runner.run('train.py', '--dataroot', tmp_path / 'data', '--name', 'run', '--checkpoints_dir', tmp_path,
               *TINY_NET, '--n_epochs', 2, '--n_epochs_decay', 0, '--amp', 'bf16', '--ema_decay', 0.5,
               '--val_freq', 1)
    assert (tmp_path / 'run' / 'best_net_G.pth').exists() and (tmp_path / 'run' / 'best_net_G_ema.pth').exists()
    for suffix in ('', '_ema'):
        runner.run('test.py', '--dataroot', tmp_path / 'data', '--name', 'run', '--checkpoints_dir', tmp_path,
                   '--results_dir', tmp_path / f'results{suffix}', '--epoch', 'best', '--model_suffix', suffix,
                   '--preprocess', 'none', '--num_threads', 0)
        images = tmp_path / f'results{suffix}' / 'run' / 'test_best' / 'images'
        fake = arrays.read_array(str(images / '000_fake_B.tif'))
        assert fake.dtype == np.float32 and fake.shape == (SIZE, SIZE, 2)
        assert np.array_equal(arrays.read_array(str(images / '000_real_B.tif')), written['test'][0][1])


def test_test_py_on_one_file_writes_its_type(runner, tmp_path):
    written = make_pairs(tmp_path / 'data', 'uint16_1', count=1)
    runner.run('train.py', '--dataroot', tmp_path / 'data', '--name', 'one', '--checkpoints_dir', tmp_path,
               *TINY_NET, '--n_epochs', 1, '--n_epochs_decay', 0)
    runner.run('test.py', '--dataroot', tmp_path / 'data' / 'testA' / '000.png', '--name', 'one',
               '--checkpoints_dir', tmp_path, '--results_dir', tmp_path / 'results', '--preprocess', 'none',
               '--num_threads', 0)
    images = tmp_path / 'results' / 'one' / 'test_latest' / 'images'
    assert np.array_equal(arrays.read_array(str(images / '000_real.png')), written['test'][0][0])
    fake = arrays.read_array(str(images / '000_fake.png'))
    assert fake.dtype == np.uint16 and fake.shape == (SIZE, SIZE, 1)


def test_a_and_b_of_different_sizes(tmp_path):
    make_pairs(tmp_path, 'float32_2', phases=('train',))
    write(str(tmp_path / 'trainB' / '001.tif'), np.zeros((SIZE, SIZE + 2, 2), np.float32))
    with pytest.raises(UserError) as error:
        train_options(tmp_path)
    assert error.value.message == (f'{tmp_path}/trainA/001.tif is 32x32 but its partner {tmp_path}/trainB/001.tif is '
                                   f'34x32: A and B of a pair must be the same size. Resize one of them to the other.')


@pytest.mark.parametrize('kind', ['uint16_1', 'float32_2'])
def test_side_by_side_pairs_give_the_samples_of_separate_folders(runner, tmp_path, kind):
    written = make_pairs(tmp_path / 'folders', kind, count=2)
    extension = KINDS[kind][0][2]
    for phase, pairs in written.items():
        for i, (A, B) in enumerate(pairs):
            write(str(tmp_path / 'side_by_side' / phase / f'{i:03d}.{extension}'), np.concatenate([A, B], axis=1))
    flags = ['--preprocess', 'crop', '--load_size', '32', '--netG', 'unet_16', '--crop_size', '16']
    folders, side_by_side = (train_options(tmp_path / layout, *flags) for layout in ('folders', 'side_by_side'))
    assert (folders.mapping_A, folders.mapping_B) == (side_by_side.mapping_A, side_by_side.mapping_B)
    for epoch in range(3):
        for index in range(2):
            got, expected = AlignedDataset(side_by_side)[(epoch, index)], AlignedDataset(folders)[(epoch, index)]
            assert torch.equal(got['A'], expected['A']) and torch.equal(got['B'], expected['B'])
    checkpoints, results = tmp_path / 'checkpoints', tmp_path / 'results'
    runner.run('train.py', '--dataroot', tmp_path / 'side_by_side', '--name', kind, '--checkpoints_dir', checkpoints,
               *TINY_NET, '--n_epochs', 1, '--n_epochs_decay', 0)
    runner.run('test.py', '--dataroot', tmp_path / 'side_by_side', '--name', kind, '--checkpoints_dir', checkpoints,
               '--results_dir', results, '--preprocess', 'none', '--num_threads', 0)
    dtype, channels, _ = KINDS[kind][1]
    real_B = results / kind / 'test_latest' / 'images' / f'001_real_B{arrays.file_extension(dtype, channels)}'
    assert np.array_equal(arrays.read_array(str(real_B)), written['test'][1][1])


def test_a_16bit_file_among_8bit_pictures(tmp_path):
    make_pairs(tmp_path, 'rgb_to_depth', phases=('train',))
    Image.fromarray(np.zeros((SIZE, SIZE), np.uint16)).save(tmp_path / 'trainA' / '001.png')
    os.remove(tmp_path / 'trainA' / '001.jpg')
    with pytest.raises(UserError) as error:  # while B's range is measured: every file is read then
        train_options(tmp_path)
    assert error.value.message == (f'{tmp_path}/trainA/001.png holds 16-bit or float values, unlike the 8-bit data of '
                                   f'{tmp_path}/trainA/000.jpg. Convert it, or remove it.')


def test_a_spawned_loader_worker_gives_the_same_16bit_samples(tmp_path):
    # The start method of macOS and Windows (and of Linux from Python 3.14): the dataset, its configuration and
    # its value mappings travel pickled, and each worker makes its own readers.
    make_pairs(tmp_path, 'uint16_5', phases=('train',))
    dataset = AlignedDataset(train_options(tmp_path, '--preprocess', 'crop', '--load_size', '32', '--netG', 'unet_16',
                                           '--crop_size', '16'))
    keys = [(1, index) for index in range(len(dataset))]
    in_process = list(torch.utils.data.DataLoader(dataset, batch_size=2, sampler=keys))
    spawned = list(torch.utils.data.DataLoader(dataset, batch_size=2, sampler=keys, num_workers=1,
                                               multiprocessing_context='spawn'))
    for a, b in zip(in_process, spawned):
        assert torch.equal(a['A'], b['A']) and torch.equal(a['B'], b['B'])


@pytest.mark.parametrize('dtype,ranges', [('uint8', [(0, 255)] * 3), ('uint16', [(1922, 8000)]),
                                          ('float32', [(-1000.5, 3000.25), (0, 1)])])
def test_to_units_computes_the_formula_in_place_on_a_copy(dtype, ranges):
    """(y + 1) / 2 * (high - low) + low, clamped for 8-bit data, computed in place on one copy (test.py's
    whole-image buffers at 8192x8192 are 0.8 GB each): the network's values are left as they were."""
    values = torch.rand(len(ranges), 16, 16, generator=torch.Generator().manual_seed(0)) * 2.4 - 1.2
    before = values.clone()
    mapping = ValueMapping(dtype, ranges, 'given')
    units = mapping.to_units(values)
    assert torch.equal(values, before)
    precision = torch.float32 if dtype == 'uint8' else torch.float64
    y = before.to(precision).clamp(-1, 1) if dtype == 'uint8' else before.to(precision)
    for channel, (low, high) in enumerate(ranges):
        assert torch.equal(units[channel], (y[channel] + 1) / 2 * (high - low) + low)
    array = mapping.to_array(values)
    assert array.dtype == dtype and array.shape == (16, 16, len(ranges))
    if dtype != 'float32':
        assert np.array_equal(array[..., 0], np.clip(np.round(units[0].numpy()), 0, np.iinfo(dtype).max))
