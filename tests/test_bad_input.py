"""Bad input gives one clear error naming the file and the fix, a non-zero exit, no traceback, and leaves
what earlier runs wrote as it was. Odd image modes are converted correctly; odd sizes just work."""
import os
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from data.aligned_dataset import AlignedDataset
from data.image_folder import open_image
from tests.scripts import TINY_NET
from tests.tiny_data import pair_image
from training import state as training_state
from util.errors import UserError
from util.value_mapping import ValueMapping


@pytest.fixture
def existing(tiny_run, tmp_path):
    """A copy of the finished run to point a failing command at; snapshot() is the bytes of its checkpoints
    and architecture.json (train_opt.* and loss_log.txt record each start, by design)."""
    checkpoints = tmp_path / 'checkpoints'
    shutil.copytree(tiny_run.checkpoints, checkpoints)
    folder = checkpoints / 'tiny'

    def snapshot():
        return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))
                if name.endswith('.pth') or name == 'architecture.json'}

    return SimpleNamespace(checkpoints=checkpoints, folder=folder, snapshot=snapshot, before=snapshot())


def assert_clean_failure(result, *fragments):
    assert result.returncode != 0
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr[-2000:]
    assert 'Traceback' not in result.stderr, result.stderr[-3000:]


def train(runner, existing, dataroot, *extra):
    return runner.run('train.py', '--dataroot', dataroot, '--name', 'tiny', '--checkpoints_dir',
                      existing.checkpoints, *TINY_NET, '--n_epochs', 1, '--n_epochs_decay', 0, *extra, check=False)


# ------------------------------------------------------------------------------------------------
# Training data


def test_missing_dataroot(runner, existing, tmp_path):
    root = tmp_path / 'no_such_folder'
    result = train(runner, existing, root)
    assert_clean_failure(result, f'there is neither {root / "train"} (A|B images side by side) nor '
                                 f'{root / "trainA"} and {root / "trainB"} (A and B in separate folders). Check '
                                 f'--dataroot (and --phase).')
    assert existing.snapshot() == existing.before


def test_empty_dataroot(runner, existing, tmp_path):
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'trainA').mkdir()  # without trainB: no layout of pairs is complete
    result = train(runner, existing, tmp_path / 'empty')
    assert_clean_failure(result, f'there is neither {tmp_path / "empty" / "train"} (A|B images side by side) nor '
                                 f'{tmp_path / "empty" / "trainA"} and {tmp_path / "empty" / "trainB"}')
    assert existing.snapshot() == existing.before


def test_no_images_in_the_phase_folder(runner, existing, tmp_path):
    (tmp_path / 'data' / 'train').mkdir(parents=True)
    (tmp_path / 'data' / 'train' / 'notes.txt').write_text('not an image')
    result = train(runner, existing, tmp_path / 'data')
    assert_clean_failure(result, 'no images (.jpg, .jpeg, .png', f'found in {tmp_path / "data" / "train"}',
                         'Check --dataroot and --phase')
    assert existing.snapshot() == existing.before


@pytest.mark.parametrize('kind', ['not_an_image', 'truncated'])
def test_unreadable_image(runner, existing, tmp_path, kind):
    good = tmp_path / 'data' / 'train' / 'a.png'
    pair_image(good, 64, 32)
    bad = tmp_path / 'data' / 'train' / 'b.png'
    if kind == 'not_an_image':
        bad.write_text('<html>a web page saved with an image name</html>')
    else:
        bad.write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    result = train(runner, existing, tmp_path / 'data')
    assert_clean_failure(result, f'cannot read image {bad}:', 'Remove or replace the file.')
    assert existing.snapshot() == existing.before


def test_unreadable_image_in_a_loader_worker_keeps_its_message(tmp_path):
    bad = tmp_path / 'bad.png'
    bad.write_text('not an image')

    class OneImage(torch.utils.data.Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, index):
            return torch.zeros(open_image(str(bad)).size)

    with pytest.raises(UserError) as error:
        list(torch.utils.data.DataLoader(OneImage(), num_workers=1))
    assert error.value.code.startswith(f'error: cannot read image {bad}: ')
    assert 'Traceback' not in error.value.code and error.value.code.endswith('Remove or replace the file.')


@pytest.mark.parametrize('width,height,message,fix', [
    (65, 32, 'is 65x32: an aligned pair must be two equal halves side by side, so its width must be even',
     'Recombine it with datasets/combine_A_and_B.py.'),
    (32, 32, 'is 32x32, not wider than tall, so it is not an A|B pair', 'DATAROOT/PHASEA and DATAROOT/PHASEB'),
    (40, 64, 'is 40x64, not wider than tall', 'use --dataset_mode single'),
])
def test_aligned_image_that_cannot_be_a_pair(runner, existing, tmp_path, width, height, message, fix):
    path = tmp_path / 'data' / 'train' / 'photo.png'
    pair_image(path, width, height)
    result = train(runner, existing, tmp_path / 'data', '--preprocess', 'none')
    assert_clean_failure(result, f'{path} {message}', fix)


def test_checkpoints_dir_that_cannot_be_written(runner, tiny_run, tmp_path):
    # A folder under a regular file cannot be made, not even by root.
    blocker = tmp_path / 'a_file'
    blocker.write_text('keep me')
    result = runner.run('train.py', '--dataroot', tiny_run.data, '--name', 'tiny', '--checkpoints_dir',
                        blocker / 'checkpoints', *TINY_NET, check=False)
    assert_clean_failure(result, f'cannot write checkpoints to {blocker / "checkpoints" / "tiny"}: Not a directory',
                         'Choose a writable --checkpoints_dir')
    assert 'The number of training images' not in result.stdout  # refused before any work
    assert blocker.read_text() == 'keep me'


# ------------------------------------------------------------------------------------------------
# Image modes: converted to what the network expects, with the right values


def aligned_item(tmp_path, image, input_nc=3, mapping=ValueMapping.full('uint8', 3)):
    """A and B of image (an A|B pair) as the loader gives them, in the file's levels (mapping: B's values, and A's
    unless 8-bit)."""
    os.makedirs(tmp_path / 'train', exist_ok=True)
    image.save(tmp_path / 'train' / 'pair.png')
    A_mapping = ValueMapping.full('uint8', input_nc) if mapping.dtype == 'uint8' else mapping
    opt = SimpleNamespace(dataroot=str(tmp_path), phase='train', max_dataset_size=float('inf'), direction='AtoB',
                          pairs='auto', input_nc=input_nc, output_nc=mapping.channels, preprocess='none', load_size=4,
                          crop_size=4, no_flip=True, seed=0, is_train=True, mapping_A=A_mapping.to_dict(),
                          mapping_B=mapping.to_dict())
    item = AlignedDataset(opt)[0]
    return {k: ((item[k] + 1) * mapping.half.view(-1)[0] + mapping.low.view(-1)[0]).round().to(torch.int64)
            for k in 'AB'}  # back to the file's levels


def test_grayscale_pair_becomes_rgb(tmp_path):
    item = aligned_item(tmp_path, Image.fromarray(np.array([[10, 20, 200, 250]], np.uint8), 'L'))
    assert item['A'].tolist() == [[[10, 20]]] * 3 and item['B'].tolist() == [[[200, 250]]] * 3


def test_rgba_drops_alpha_and_keeps_colour(tmp_path):
    pixels = np.array([[[10, 20, 30, 0], [40, 50, 60, 128], [70, 80, 90, 255], [1, 2, 3, 255]]], np.uint8)
    item = aligned_item(tmp_path, Image.fromarray(pixels, 'RGBA'))
    assert item['A'][:, 0, 0].tolist() == [10, 20, 30] and item['A'][:, 0, 1].tolist() == [40, 50, 60]
    assert item['B'][:, 0, 1].tolist() == [1, 2, 3]


@pytest.mark.parametrize('transparent', [False, True])
def test_palette_image_gets_its_palette_colours(tmp_path, transparent):
    image = Image.fromarray(np.array([[0, 1, 2, 1]], np.uint8), 'P')
    image.putpalette([255, 0, 0, 0, 128, 255, 7, 8, 9] + [0] * (256 * 3 - 9))
    if transparent:
        image.info['transparency'] = 0
    item = aligned_item(tmp_path, image)
    assert item['A'][:, 0, 0].tolist() == [255, 0, 0] and item['A'][:, 0, 1].tolist() == [0, 128, 255]
    assert item['B'][:, 0, 0].tolist() == [7, 8, 9]


def test_16_bit_grayscale_keeps_its_levels(tmp_path):
    levels = np.array([[0, 32896, 65535, 1000]], np.uint16)
    item = aligned_item(tmp_path, Image.fromarray(levels), input_nc=1, mapping=ValueMapping.full('uint16', 1))
    assert item['A'][0].tolist() == [[0, 32896]] and item['B'][0].tolist() == [[65535, 1000]]
    # 8-bit data's reader (Pillow's path; colorization's photos) scales it: a dark 16-bit image stays dark, 200
    # of 65535 is level 1 of 255, not 200.
    Image.fromarray(np.array([[200, 100]], np.uint16)).save(tmp_path / 'dark.png')
    assert np.asarray(open_image(str(tmp_path / 'dark.png')))[0, :, 0].tolist() == [1, 0]


def test_16_bit_colour_png_keeps_its_levels(tmp_path):
    write_16_bit_rgb_png(tmp_path / 'deep.png', np.array([[[65535, 0, 32896], [1000, 2000, 3000]]], np.uint16))
    assert np.asarray(open_image(str(tmp_path / 'deep.png'))).tolist() == [[[255, 0, 128], [3, 7, 11]]]


def write_16_bit_rgb_png(path, pixels):
    """Pillow cannot write 48-bit colour, so the PNG is assembled by hand."""
    import struct
    import zlib

    def chunk(kind, payload):
        return struct.pack('>I', len(payload)) + kind + payload + struct.pack('>I', zlib.crc32(kind + payload))

    height, width, _ = pixels.shape
    rows = b''.join(b'\0' + pixels[y].astype('>u2').tobytes() for y in range(height))
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 16, 2, 0, 0, 0))
                     + chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b''))


# ------------------------------------------------------------------------------------------------
# Test time: sizes and checkpoints


def test_any_image_size_at_test_time(runner, tiny_run, tmp_path):
    # unet_32 takes multiples of 32; this A half is 50x70. It is padded for G and the output cropped back.
    pixels = pair_image(tmp_path / 'data' / 'test' / 'odd.png', 100, 70)
    runner.run('test.py', '--dataroot', tmp_path / 'data', '--name', 'tiny', '--checkpoints_dir',
               tiny_run.checkpoints, '--results_dir', tmp_path / 'results', '--preprocess', 'none')
    images = tmp_path / 'results' / 'tiny' / 'test_latest' / 'images'
    real_A, fake_B = (np.asarray(Image.open(images / f'odd_{label}.png')) for label in ('real_A', 'fake_B'))
    assert fake_B.shape == real_A.shape == (70, 50, 3)
    assert np.array_equal(real_A, pixels[:, :50])  # not resampled to a multiple of 4, as the reference does


def test_checkpoint_for_another_architecture_names_the_options(runner, tiny_run, tmp_path):
    # A reference-style folder: the generator file alone, its options inferred from its layers.
    folder = tmp_path / 'checkpoints' / 'reference'
    folder.mkdir(parents=True)
    shutil.copy(tiny_run.checkpoints / 'tiny' / 'latest_net_G.pth', folder)
    result = runner.run('test.py', '--dataroot', tiny_run.data, '--name', 'reference', '--checkpoints_dir',
                        tmp_path / 'checkpoints', '--netG', 'unet_64', '--ngf', 16, '--norm', 'batch', check=False)
    assert_clean_failure(result, '--netG unet_64 (saved: unet_32)', '--ngf 16 (saved: 8)',
                         f'{folder / "latest_net_G.pth"} (inferred from its layers)', 'drop these flags')


def test_continue_train_with_another_discriminator_names_the_option(runner, existing, tiny_run):
    result = train(runner, existing, tiny_run.data, '--continue_train', '--ndf', 16)
    assert_clean_failure(result, '--ndf 16 (saved: 8)', 'drop these flags')
    assert existing.snapshot() == existing.before


def test_truncated_network_checkpoint(runner, existing, tiny_run, tmp_path):
    generator = existing.folder / 'latest_net_G.pth'
    generator.write_bytes(generator.read_bytes()[:5000])
    result = runner.run('test.py', '--dataroot', tiny_run.data, '--name', 'tiny', '--checkpoints_dir',
                        existing.checkpoints, '--results_dir', tmp_path / 'results', check=False)
    assert_clean_failure(result, f'cannot load checkpoint {generator}:', 'truncated, corrupt or not a weights file',
                         'load another epoch with --epoch')


def test_corrupt_training_state(runner, existing, tiny_run):
    state = existing.folder / training_state.STATE_FILE
    state.write_bytes(b'PK\x03\x04' + os.urandom(3000))
    before = existing.snapshot()
    result = train(runner, existing, tiny_run.data, '--continue_train')
    assert_clean_failure(result, f'cannot load the training state {state}:',
                         'delete it to continue from latest_net_*.pth alone')
    assert existing.snapshot() == before


def test_checkpoint_saved_with_a_module_prefix_loads(runner, tiny_run, tmp_path):
    # As saved by other code from DataParallel/DDP: every key starts with 'module.'; no architecture.json.
    folder = tmp_path / 'checkpoints' / 'wrapped'
    folder.mkdir(parents=True)
    state = torch.load(tiny_run.checkpoints / 'tiny' / 'latest_net_G.pth', weights_only=True)
    torch.save({'module.' + k: v for k, v in state.items()}, folder / 'latest_net_G.pth')

    for name, checkpoints in (('wrapped', tmp_path / 'checkpoints'), ('tiny', tiny_run.checkpoints)):
        runner.run('test.py', '--dataroot', tiny_run.data, '--name', name, '--checkpoints_dir', checkpoints,
                   '--results_dir', tmp_path / 'results', '--eval')
    wrapped, plain = (np.asarray(Image.open(tmp_path / 'results' / name / 'test_latest' / 'images' / '000_fake_B.png'))
                      for name in ('wrapped', 'tiny'))
    assert np.array_equal(wrapped, plain)
