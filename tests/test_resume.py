"""--continue_train continues exactly: a run killed with kill -9, or stopped by SIGTERM/SIGINT, then
resumed, ends with the same weights (and weight average, --ema_decay), validation scores, best checkpoints
and TensorBoard curves as a run never interrupted; validation itself leaves the training as it was. A NaN
loss stops without saving."""
import json
import os
import re
import shutil
import signal

import pytest
import torch

import models.networks
from tests.saved_networks import assert_same_latest_networks, latest_networks, tensorboard_points
from tests.tiny_data import make_aligned_pairs
from training import state as training_state
from util.display.loss_plot import ValidationLog

# 7 pairs in batches of 2 (the last one partial), random 64-pixel crops of 72-pixel images with flips,
# and unet_64, which has dropout: every random generator training uses is in play. On the CPU: CUDA's
# kernels are not deterministic (two uninterrupted runs on an H200 differ by 1e-2 after 28 samples).
ARGS = ['--device', 'cpu', '--netG', 'unet_64', '--ngf', 8, '--ndf', 8, '--load_size', 72, '--crop_size', 64, '--batch_size', 2,
        '--n_epochs', 2, '--n_epochs_decay', 2, '--print_freq', 2, '--save_latest_freq', 6, '--seed', 3,
        '--display_id', 0, '--num_threads', 0, '--no_html', '--ema_decay', 0.9, '--ema_every', 2, '--ema_bn_images', 3,
        '--val_freq', 1, '--tensorboard', '--display_freq', 4]
NETWORKS = ('G', 'D', 'G_ema')
EPOCH_2_STARTED = r'\(epoch: 2, iters: 2,'  # printed after the save at total_iters 6 (epoch 1, 6 of 7 seen)


@pytest.fixture(scope='module')
def setup(runner, tmp_path_factory):
    root = tmp_path_factory.mktemp('resume')
    data = make_aligned_pairs(str(root / 'data'), count=7, size=32, phases=('train', 'val'))
    checkpoints = root / 'checkpoints'

    def train(name, *extra, **kwargs):
        return runner.run('train.py', '--dataroot', data, '--checkpoints_dir', checkpoints, '--name', name,
                          *ARGS, *extra, **kwargs)

    def start(name, *extra):
        return runner.start('train.py', '--dataroot', data, '--checkpoints_dir', checkpoints, '--name', name, *ARGS,
                            *extra)

    train('uninterrupted')
    return checkpoints, train, start


def networks(folder):
    return latest_networks(folder, NETWORKS)


def assert_same_weights(folder, expected_folder):
    assert_same_latest_networks(folder, expected_folder, NETWORKS)


def test_killed_run_resumes_to_the_same_weights(setup):
    checkpoints, train, start = setup
    child = start('killed')
    child.wait_for(EPOCH_2_STARTED)
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL
    assert 'End of epoch 4' not in child.stdout
    saved = training_state.load(str(checkpoints / 'killed' / training_state.STATE_FILE))
    assert saved['total_iters'] < 28

    resumed = train('killed', '--continue_train')

    assert f'resuming from {checkpoints / "killed" / training_state.STATE_FILE}: epoch {saved["epoch"]}, ' \
           f'{saved["epoch_iter"]} samples into it, total_iters {saved["total_iters"]}' in resumed.stdout
    assert_same_weights(checkpoints / 'killed', checkpoints / 'uninterrupted')
    # The optimizers' moments match too, so the runs would stay equal however long they went on.
    got, expected = (training_state.load(str(checkpoints / name / training_state.STATE_FILE))
                     for name in ('killed', 'uninterrupted'))
    for got_optimizer, expected_optimizer in zip(got['optimizers'], expected['optimizers']):
        for index, moments in expected_optimizer['state'].items():
            assert torch.equal(got_optimizer['state'][index]['exp_avg_sq'], moments['exp_avg_sq'])
    assert_same_validation_and_curves(checkpoints / 'killed', checkpoints / 'uninterrupted')


def assert_same_validation_and_curves(folder, expected_folder):
    """The same scores for every validated epoch (a validation the kill cut off from its save is done again
    and logged twice; the later line counts), the same best checkpoints, and TensorBoard curves and images
    with the same points once each."""
    validations = [ValidationLog(f / 'val_log.jsonl').points() for f in (folder, expected_folder)]
    assert validations[0] == validations[1] and [epoch for epoch, _ in validations[1]] == [1, 2, 3, 4]
    for name in ('G', 'G_ema'):
        assert (folder / f'best_net_{name}.json').read_text() == (expected_folder / f'best_net_{name}.json').read_text()
        best, expected = (torch.load(f / f'best_net_{name}.pth', weights_only=True) for f in (folder, expected_folder))
        assert best.keys() == expected.keys() and all(torch.equal(best[k], expected[k]) for k in expected)
    got, expected = tensorboard_points(folder), tensorboard_points(expected_folder)
    assert got.keys() == expected.keys() and len(got) == 4 + 2 + 6 + 3  # losses, G's and D's rates, 2 x 3 scores, 3 visuals
    for tag in expected:
        assert got[tag] == expected[tag], tag
        steps = [step for step, _ in got[tag]]
        assert steps == sorted(set(steps)), tag  # no step twice


def test_validation_leaves_the_training_as_it_was(setup):
    # Validation's dropout draws from a stream of its own, and batch norm's running statistics are not touched.
    checkpoints, train, start = setup
    train('not_validated', '--val_freq', 0)
    assert_same_weights(checkpoints / 'not_validated', checkpoints / 'uninterrupted')
    assert not (checkpoints / 'not_validated' / 'val_log.jsonl').exists()


def test_killed_run_with_pix2pixhd_and_spade_options_resumes_to_the_same_weights(setup):
    # A multi-scale, spectral-norm D (its power iteration's vectors are saved with it), feature matching, the
    # hinge loss, D's own rate and resize upsampling. (The VGG loss has no state to resume: fixed weights.)
    checkpoints, train, start = setup
    losses = ['--lambda_feat', 10, '--gan_mode', 'hinge']
    architecture = ['--netD', 'multiscale', '--spectral_norm_D', '--upsample', 'resize']
    train('hd_uninterrupted', *losses, *architecture, '--lr_D', 4e-4)
    child = start('hd_killed', *losses, *architecture, '--lr_D', 4e-4)
    child.wait_for(EPOCH_2_STARTED)
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL

    # The architecture comes from architecture.json and --lr_D from the training state: not typed again.
    resumed = train('hd_killed', '--continue_train', *losses)

    assert 'upsample: resize' in resumed.stdout and 'lr_D: 0.0004' in resumed.stdout
    assert_same_weights(checkpoints / 'hd_killed', checkpoints / 'hd_uninterrupted')
    D = networks(checkpoints / 'hd_killed')['D']
    assert 'scales.1.model.0.parametrizations.weight.0._u' in D


@pytest.mark.parametrize('fixed_epochs', [1, 0])
def test_killed_run_of_pix2pixhds_local_generator_on_its_schedule_resumes_to_the_same_weights(setup, tmp_path,
                                                                                             fixed_epochs):
    # --netG local started from a global run. The run is killed after the save in epoch 1 and resumed by the same
    # command with --continue_train; it ends where the uninterrupted run does, global part and weight average
    # included. With --niter_fix_global 1 the save falls while the global part is fixed, and it must stay fixed
    # to the end of epoch 1; with 0 the global part has trained before the save, and the file --load_global names
    # must not replace it.
    checkpoints, train, start = setup
    shape = dict(n_downsample_global=2, n_blocks_global=1)
    torch.manual_seed(2)
    torch.save(models.networks.define_G(3, 3, 16, 'global', 'batch', True, **shape).state_dict(),
               tmp_path / 'global_G.pth')  # --ngf 8 * 2
    local = ['--netG', 'local', '--n_downsample_global', 2, '--n_blocks_global', 1, '--n_blocks_local', 1,
             '--load_global', tmp_path / 'global_G.pth', '--niter_fix_global', fixed_epochs]
    train(f'local_uninterrupted_{fixed_epochs}', *local)
    child = start(f'local_killed_{fixed_epochs}', *local)
    child.wait_for(EPOCH_2_STARTED)
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL

    train(f'local_killed_{fixed_epochs}', '--continue_train', *local)

    killed = checkpoints / f'local_killed_{fixed_epochs}'
    uninterrupted = checkpoints / f'local_uninterrupted_{fixed_epochs}'
    assert_same_weights(killed, uninterrupted)
    assert any(key.startswith('model1_') for key in networks(killed)['G'])


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_exits_cleanly_and_resumes_exactly(setup, signum):
    checkpoints, train, start = setup
    name = f'stopped_by_{signum.name}'
    child = start(name)
    child.wait_for(EPOCH_2_STARTED)
    os.kill(child.pid, signum)

    assert child.wait() == 128 + signum
    assert f'{signum.name} received' in child.stderr and 'Traceback' not in child.stderr
    stopped = re.search(rf'stopped by {signum.name} at epoch (\d+), total_iters (\d+)', child.stdout)
    assert stopped, child.stdout[-2000:]
    folder = checkpoints / name
    saved = training_state.load(str(folder / training_state.STATE_FILE))
    # Saved at the end of the iteration the signal arrived in, nets and state alike.
    assert (saved['epoch'], saved['total_iters']) == (int(stopped[1]), int(stopped[2]))
    latest_G = networks(folder)['G']
    assert all(torch.equal(latest_G[k], v) for k, v in saved['networks']['G'].items())

    train(name, '--continue_train')
    assert_same_weights(folder, checkpoints / 'uninterrupted')
    assert_same_validation_and_curves(folder, checkpoints / 'uninterrupted')


def test_state_holds_everything_and_loads_with_weights_only(setup):
    checkpoints, train, start = setup
    folder = checkpoints / 'uninterrupted'
    saved = torch.load(folder / training_state.STATE_FILE, weights_only=True)

    # Saved at the end of the last epoch (4 epochs of 7 samples), before its learning-rate step.
    assert (saved['epoch'], saved['epoch_iter'], saved['total_iters']) == (4, 7, 28)
    G_optimizer, D_optimizer = saved['optimizers']
    assert len(G_optimizer['state']) == len(saved['networks']['G']) - count_buffers(saved['networks']['G'])
    assert all({'exp_avg', 'exp_avg_sq', 'step'} <= set(s) for s in D_optimizer['state'].values())
    assert [s['last_epoch'] for s in saved['schedulers']] == [3, 3]
    options = json.loads(saved['options'])
    assert (options['seed'], options['netG'], options['batch_size']) == (3, 'unet_64', 2)
    rng = saved['rng'][0]
    assert rng['python'].shape == (625,) and rng['numpy'].shape == (624,) and rng['torch'].dtype == torch.uint8
    latest = networks(folder)
    for name in 'GD':
        assert all(torch.equal(latest[name][k], v) for k, v in saved['networks'][name].items())
    average = saved['averages']['G_ema']
    assert average['steps'] == 16  # 4 epochs of 4 steps (7 samples in batches of 2)
    # The file's batch norm statistics are recomputed for it (--ema_bn_images); the state keeps the averaged
    # ones that training goes on with.
    statistics = {k for k in average['weights'] if k.endswith(('running_mean', 'running_var'))}
    assert all(torch.equal(latest['G_ema'][k], v) for k, v in average['weights'].items() if k not in statistics)
    assert statistics and all(not torch.equal(latest['G_ema'][k], average['weights'][k]) for k in statistics)


def count_buffers(state):
    return sum(k.endswith(('running_mean', 'running_var', 'num_batches_tracked')) for k in state)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(setup):
    checkpoints, train, start = setup
    folder = checkpoints / 'diverged'
    shutil.copytree(checkpoints / 'uninterrupted', folder)
    before = {name: (folder / name).read_bytes() for name in os.listdir(folder) if name.endswith(('.pth', '.json'))
              and name != 'train_opt.json'}

    # A typed --lr replaces the saved one on resume (the fix the message suggests, the other way round).
    result = train('diverged', '--continue_train', '--n_epochs_decay', 4, '--lr', '1e30', check=False)

    assert result.returncode == 1
    message = re.search(r'error: a loss became NaN or Inf at iteration (\d+) \(epoch 5\): G_GAN \S+, G_L1 \S+, '
                        r'D_real \S+, D_fake \S+\. Training stopped without saving; the latest checkpoint '
                        r'\(total_iters 28\) is kept', result.stderr)
    assert message, result.stderr[-2000:]
    assert int(message[1]) > 28 and 'nan' in message[0] and 'Lower --lr' in result.stderr
    assert 'Traceback' not in result.stderr
    after = {name: (folder / name).read_bytes() for name in before}
    assert after == before


def test_continue_from_weights_alone_without_a_state_file(setup):
    checkpoints, train, start = setup
    folder = checkpoints / 'reference_style'
    shutil.copytree(checkpoints / 'uninterrupted', folder)
    os.remove(folder / training_state.STATE_FILE)

    result = train('reference_style', '--continue_train', '--epoch_count', 5, '--n_epochs_decay', 3)

    assert 'only the network weights are loaded; the optimizers start afresh at --epoch_count 5' in result.stdout
    assert f'loading the weight average from {folder / "latest_net_G_ema.pth"}' in result.stdout
    assert 'End of epoch 5 / 5' in result.stdout and (folder / '5_net_G.pth').exists()
    assert training_state.load(str(folder / training_state.STATE_FILE))['epoch'] == 5


def test_the_fp16_loss_scale_is_saved_and_restored(tmp_path):
    # --amp fp16 needs CUDA; the GradScaler's state round trip is the same on the CPU.
    import torch

    from models import create_model
    from options.train_options import TrainOptions
    from tests.scripts import TINY_NET
    from tests.tiny_data import make_aligned_pairs
    from training.plateau import Plateau
    from training.saving import NetworkSaver
    from training.state import TrainingState

    data = make_aligned_pairs(str(tmp_path / 'data'), count=2, size=32, phases=('train',))
    argv = ['--dataroot', data, '--name', 'scale', '--checkpoints_dir', str(tmp_path), *TINY_NET, '--seed', '0']

    def model_and_state(extra):
        opt = TrainOptions().parse(argv + extra)
        state = TrainingState(opt)
        model = create_model(opt)
        model.setup(opt)
        model.scaler = torch.amp.GradScaler('cpu', init_scale=2.0 ** 16)
        return model, state

    def restore(model, state):
        state.restore(NetworkSaver(model, model.opt), Plateau(model.opt, model))

    model, state = model_and_state([])
    model.scaler.scale(torch.ones(()))
    model.scaler.update(new_scale=1024.0)  # as after some steps with inf gradients
    restore(model, state)  # nothing to restore: hands save() the model
    state.save()
    resumed, resumed_state = model_and_state(['--continue_train'])
    restore(resumed, resumed_state)
    assert resumed.scaler.get_scale() == 1024.0
