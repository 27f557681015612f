"""--ema_decay: the moving average of G's weights follows its formula, is saved in the reference's format,
and test.py tests it with --model_suffix _ema (resuming it exactly: tests/test_resume.py; under DDP:
tests/test_distributed.py)."""
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from models import networks
from models.weight_average import WeightAverage
from tests.saved_networks import assert_statistics_recomputed, batch_statistics, first_training_inputs
from tests.scripts import TINY_NET


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


def fill(net, value):
    with torch.no_grad():
        for tensor in net.state_dict().values():
            if tensor.is_floating_point():
                tensor.fill_(value)


def test_the_first_update_copies_then_the_average_moves_by_the_decay_every_nth_step():
    net = small_net()
    fill(net, 1.0)
    average = WeightAverage(net, decay=0.5, every=4)
    fill(net, 3.0)
    net[1].num_batches_tracked.fill_(7)
    for _ in range(3):
        average.update()
    assert all(torch.equal(v, torch.ones_like(v)) for k, v in average.net.state_dict().items()
               if v.is_floating_point())  # steps 1 to 3: not a multiple of 4, no update
    average.update()  # step 4, the first update: a copy (on every DDP rank the same weights)
    assert all(torch.equal(v, torch.full_like(v, 3.0)) for k, v in average.net.state_dict().items()
               if v.is_floating_point())

    fill(net, 5.0)
    for _ in range(4):
        average.update()
    # Step 8, the second update: the mean of the two averaged weights (3 and 5) weighted D : 1, D = 0.5 ** 4.
    D = 0.5 ** 4
    expected = (3 * D + 5) / (D + 1)
    for key, value in average.net.state_dict().items():
        if value.is_floating_point():
            assert torch.allclose(value, torch.full_like(value, expected), rtol=0, atol=1e-6), key
    assert average.net[1].num_batches_tracked.item() == 7  # counters are copied, not averaged
    assert average.steps == 8


def test_the_average_is_the_exponentially_weighted_mean_of_the_steps_so_far():
    net = small_net()
    fill(net, 100.0)  # the weights it was made from: they must not count
    average = WeightAverage(net, decay=0.9, every=1)
    for step in range(1, 31):
        fill(net, float(step))
        average.update()
    ages = np.arange(30)[::-1]  # step 1 is 29 updates old
    expected = np.sum(0.9 ** ages * np.arange(1, 31)) / np.sum(0.9 ** ages)
    weight = average.net[0].weight
    assert torch.allclose(weight, torch.full_like(weight, expected), rtol=0, atol=1e-4)
    # A plain EMA started from the initial weights would still hold 0.9 ** 30 = 4% of them (+3.8).
    assert abs(expected - (0.9 ** 30 * 100 + (1 - 0.9) * np.sum(0.9 ** ages * np.arange(1, 31)))) > 3
    assert weight.requires_grad is False


def test_the_average_follows_weights_moved_to_channels_last():
    net = small_net()
    average = WeightAverage(net, decay=0.9, every=1)
    net.to(memory_format=torch.channels_last)  # setup() does this in place with --channels_last
    fill(net, 2.0)
    average.update()
    fill(net, 4.0)
    average.update()
    assert torch.allclose(average.net[0].weight, torch.full_like(average.net[0].weight, (2 * 0.9 + 4) / 1.9))


def test_restart_and_state_round_trip():
    net = small_net()
    average = WeightAverage(net, decay=0.9, every=2)
    fill(net, 5.0)
    for _ in range(3):
        average.update()
    copy = WeightAverage(small_net(), decay=0.9, every=2)
    copy.load_state_dict(average.state_dict())
    assert copy.steps == 3
    assert all(torch.equal(a, b) for a, b in zip(copy.net.state_dict().values(), average.net.state_dict().values()))
    average.restart()
    assert average.steps == 0 and torch.equal(average.net[0].weight, net[0].weight)


def test_recomputed_statistics_are_those_of_the_averaged_weights_without_dropout():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), networks.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
                        nn.Conv2d(4, 4, 3), networks.SyncBatchNorm(4))
    average = WeightAverage(net, decay=0.9)
    networks.normalize_each_image(average.net)  # as validation (testing_with) or test.py leave it
    kept = {k: v.clone() for k, v in average.net.state_dict().items()}
    batches = [torch.randn(2, 3, 8, 8) * 3 + 1 for _ in range(3)]
    saved = average.with_recomputed_statistics(iter(batches), lambda net, x: net(x))

    expected = batch_statistics(net, batches)
    norms = [m for m in saved.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm, (mean, var) in zip(norms, expected):
        assert torch.allclose(norm.running_mean, mean, atol=1e-5) and torch.allclose(norm.running_var, var, atol=1e-4)
    assert not torch.allclose(norms[0].running_mean, torch.zeros(4), atol=0.1)  # not the initial statistics
    # The sync layer was computed here alone (one process saves), as the plain layer it saves like.
    assert type(norms[1]) is networks.BatchNorm2d and saved.state_dict().keys() == kept.keys()
    assert not saved.training
    assert all(torch.equal(v, kept[k]) for k, v in average.net.state_dict().items())  # the average is untouched
    assert all(torch.equal(v, kept[k]) for k, v in saved.state_dict().items() if 'running' not in k)
    # Saved twice in a row (latest, then the epoch's file): one pass. Once the average moves, a new one.
    assert average.with_recomputed_statistics(iter([]), None) is saved
    average.update()
    assert average.with_recomputed_statistics(iter(batches), lambda net, x: net(x)) is not saved


@pytest.fixture(scope='module')
def trained(train_tiny):
    tiny = train_tiny('--norm', 'batch', '--n_epochs', 3, '--n_epochs_decay', 3, '--seed', 0, '--no_html',
                      '--ema_decay', 0.9, '--ema_every', 2, name='ema')
    return tiny.data, tiny.checkpoints


def test_training_saves_the_average_in_the_reference_format(trained):
    data, checkpoints = trained
    folder = checkpoints / 'ema'
    average = torch.load(folder / 'latest_net_G_ema.pth', weights_only=True)
    live = torch.load(folder / 'latest_net_G.pth', weights_only=True)
    # A plain state_dict with G's keys: the reference's define_G-built network loads it strictly.
    networks.define_G(3, 3, 8, 'unet_32', 'batch', True).load_state_dict(average, strict=True)
    assert list(average) == list(live)
    assert torch.equal(average['model.model.0.weight'], torch.load(folder / '6_net_G_ema.pth',
                                                                   weights_only=True)['model.model.0.weight'])
    # 24 steps with a memory of about 10: an average of recent weights, not the last ones.
    assert not torch.equal(average['model.model.0.weight'], live['model.model.0.weight'])
    # Batch norm's running statistics are averaged too; its counter is the live one.
    means = [k for k in live if k.endswith('running_mean')]
    assert means and not all(torch.equal(average[k], live[k]) for k in means)
    counters = [k for k in live if k.endswith('num_batches_tracked')]
    assert all(torch.equal(average[k], live[k]) for k in counters)


def outputs(results, name):
    folder = results / name / 'test_latest' / 'images'
    return {path.name: np.asarray(Image.open(path)) for path in sorted(folder.glob('*_fake_B.png'))}


def test_test_py_loads_the_average_with_model_suffix(runner, trained, tmp_path):
    data, checkpoints = trained
    args = ['--dataroot', data, '--checkpoints_dir', checkpoints, '--eval']
    result = runner.run('test.py', *args, '--name', 'ema', '--model_suffix', '_ema', '--results_dir', tmp_path / 'ema')
    assert f'loading the model from {checkpoints / "ema" / "latest_net_G_ema.pth"}' in result.stdout
    live = runner.run('test.py', *args, '--name', 'ema', '--results_dir', tmp_path / 'live')
    # The same outputs as the average's file saved as the generator of another run: the average was tested.
    alone = checkpoints / 'ema_alone'
    alone.mkdir()
    shutil.copy(checkpoints / 'ema' / 'latest_net_G_ema.pth', alone / 'latest_net_G.pth')
    runner.run('test.py', *args, '--name', 'ema_alone', '--results_dir', tmp_path / 'alone')
    got, expected = outputs(tmp_path / 'ema', 'ema'), outputs(tmp_path / 'alone', 'ema_alone')
    assert len(got) == 4 and got.keys() == expected.keys()
    assert all(np.array_equal(got[k], expected[k]) for k in got)
    assert any(not np.array_equal(got[k], v) for k, v in outputs(tmp_path / 'live', 'ema').items())
    assert 'L1 ' in live.stdout
    # --model test takes the same suffix, with the architecture from the folder's architecture.json.
    single = runner.run('test.py', '--dataroot', f'{data}/test', '--name', 'ema', '--checkpoints_dir', checkpoints,
                        '--model', 'test', '--model_suffix', '_ema', '--eval', '--results_dir', tmp_path / 'single')
    assert 'latest_net_G_ema.pth' in single.stdout


def test_resuming_a_run_without_an_average_starts_it_from_the_resumed_weights(runner, trained, tmp_path):
    data, checkpoints = trained
    folder = tmp_path / 'checkpoints'
    shutil.copytree(checkpoints / 'ema', folder / 'added')
    for path in folder.glob('added/*_net_G_ema.pth'):
        path.unlink()
    result = runner.run('train.py', '--dataroot', data, '--name', 'added', '--checkpoints_dir', folder, *TINY_NET,
                        '--norm', 'batch', '--n_epochs', 3, '--n_epochs_decay', 4, '--continue_train',
                        '--ema_decay', 0.9, '--epoch', 6, '--epoch_count', 7)
    assert f'no {folder / "added" / "6_net_G_ema.pth"}: the weight average starts again from the loaded weights' \
        in result.stdout
    assert (folder / 'added' / '7_net_G_ema.pth').exists()


def test_ema_bn_images_saves_the_statistics_of_the_average_over_the_first_training_images(train_tiny):
    args = ['--norm', 'batch', '--n_epochs', 1, '--n_epochs_decay', 1, '--seed', 0, '--no_html', '--no_flip',
            '--batch_size', 2, '--ema_decay', 0.9, '--ema_every', 1, '--ema_bn_images', 3]
    tiny = train_tiny(*args, name='ema_bn', count=4)
    saved = torch.load(tiny.folder / 'latest_net_G_ema.pth', weights_only=True)
    state = torch.load(tiny.folder / 'latest_train_state.pth', weights_only=True)
    averaged = state['averages']['G_ema']['weights']  # what training goes on with: the statistics averaged

    # The first 3 training pairs (no flip: as they are on disk), in batches of --batch_size: 2 then 1.
    inputs = first_training_inputs(tiny.data, 3)
    assert_statistics_recomputed(saved, averaged, [inputs[:2], inputs[2:]])
    # The weights themselves are the average's, and each numbered file gets the same statistics.
    assert all(torch.equal(saved[k], averaged[k]) for k in saved if 'running' not in k)
    numbered = torch.load(tiny.folder / '2_net_G_ema.pth', weights_only=True)
    assert all(torch.equal(numbered[k], saved[k]) for k in saved)


@pytest.mark.parametrize('flags,message', [
    (['--ema_decay', 1], '--ema_decay 1.0: give a decay between 0 and 1'),
    (['--ema_decay', 0.99, '--ema_every', 0], '--ema_every 0: give a number of steps, at least 1'),
    (['--ema_bn_images', 10], '--ema_bn_images recomputes the weight average\'s statistics, but there is no average'),
    (['--ema_decay', 0.99, '--norm', 'instance', '--ema_bn_images', 10], '--ema_bn_images recomputes batch norm '
                                                                           'statistics, but --norm '
                                                     'instance keeps none'),
    (['--ema_decay', 0.99, '--norm', 'batch', '--ema_bn_images', -1], '--ema_bn_images -1: give a number of images'),
])
def test_impossible_average_settings(runner, trained, flags, message):
    data, checkpoints = trained
    result = runner.run('train.py', '--dataroot', data, '--name', 'bad', '--checkpoints_dir', checkpoints,
                        *TINY_NET, *flags, check=False)
    assert result.returncode != 0 and f'error: {message}' in result.stderr and 'Traceback' not in result.stderr
