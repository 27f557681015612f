"""train.py on two processes (DistributedDataParallel, gloo on the CPU) against one process.

Two ranks with batch 1 take the same steps as one process with batch 2 over the same images: the
losses are means over the batch, DDP averages the ranks' gradients, and instance norm (unlike batch
norm) and the PatchGAN's per-image outputs keep every image's gradient independent of the others.
The ranks run train.py itself, started by torch.multiprocessing.spawn and meeting through a file
(file:// init, GLOO_SOCKET_IFNAME=lo), so nothing listens beyond 127.0.0.1. Every run validates after
each epoch and logs for TensorBoard: rank 0 validates and writes, the others wait for its scores.
"""
import json
import os
import re
import sys

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from models import discriminators, networks
from models.base_model import unwrap
from tests.scripts import REPO, TINY_NET, needs_cxx, run
from tests.tiny_data import make_aligned_pairs
from tests.saved_networks import assert_statistics_recomputed, first_training_inputs, plateau_state, tensorboard_points

# Nothing random but the data order (no flip, no dropout, crop = image). --lr_policy plateau following the
# validation L1 keeps the rate constant for 3 epochs (it waits 5 without progress), so a run of 2 epochs
# resumed to 3 follows the same schedule as one run of 3; every rank's scheduler must see rank 0's scores.
ARGS = [*TINY_NET, '--norm', 'instance', '--no_dropout', '--no_flip', '--seed', '5', '--print_freq', '2',
        '--save_epoch_freq', '1', '--lr_policy', 'plateau', '--plateau_on', 'val', '--val_freq', '1',
        '--tensorboard', '--n_epochs_decay', '0', '--dist_timeout', '120', '--ema_decay', '0.5', '--ema_every', '1']
NETWORKS = ('G', 'D', 'G_ema')  # G_ema: the weight average, which every rank keeps
# pix2pixHD's and SPADE's options (tests/test_gan_options.py), all at once; --n_layers_D 2 leaves room for two
# scales on 32-pixel images. The VGG loss and feature matching are means over the batch, like L1; spectral
# norm's power iteration depends on the weights alone, the same on every rank. unet_16: with unet_32 the
# innermost resize convolution would see a 1x1 bottleneck upsampled to a constant 2x2, and instance norm would
# cancel its centre tap as it cancels the biases (see biases_cancelled_by_instance_norm).
HD_ARGS = ['--netG', 'unet_16', '--netD', 'multiscale', '--n_layers_D', '2', '--lambda_feat', '10', '--gan_mode', 'hinge',
           '--spectral_norm_D', '--lr_D', '4e-4', '--upsample', 'resize', '--lambda_vgg', '10']


def train_rank(rank, world_size, argv_by_rank, dump_dir):
    """One rank: train.py as torchrun would start it, then its own networks and last losses saved for the test."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), GLOO_SOCKET_IFNAME='lo')
    torch.set_num_threads(1)
    sys.path.insert(0, REPO)
    import train
    model = train.main([str(arg) for arg in argv_by_rank[rank]])
    nets = {name: unwrap(net) for name, net in model.networks().items()}
    nets.update({name: average.net for name, average in model.averages.items()})
    torch.save({'networks': {name: net.state_dict() for name, net in nets.items()},
                'losses': {k: v.item() for k, v in model.get_current_losses().items()},
                'schedulers': [scheduler.state_dict() for scheduler in model.schedulers]},
               os.path.join(dump_dir, f'rank{rank}.pt'))


def spawn_ranks(argv_by_rank, dump_dir):
    os.makedirs(dump_dir, exist_ok=True)
    mp.spawn(train_rank, args=(len(argv_by_rank), argv_by_rank, str(dump_dir)), nprocs=len(argv_by_rank))
    return [torch.load(os.path.join(dump_dir, f'rank{r}.pt'), weights_only=True) for r in range(len(argv_by_rank))]


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp('ddp')
    data = make_aligned_pairs(str(root / 'data'), count=4, size=32, phases=('train', 'test'))
    common = ['--dataroot', data, '--name', 'run', *ARGS]
    # One process, batch 2, three epochs in one go (numbered checkpoints after each).
    run('train.py', *common, '--checkpoints_dir', root / 'single', '--batch_size', 2, '--n_epochs', 3)
    # Two ranks, batch 1 each, two epochs. Rank 1 is given a folder of its own, which must stay empty.
    def rank_argv(checkpoints, meeting_file, *more):
        return [*common, '--checkpoints_dir', checkpoints, '--batch_size', 1,
                '--dist_url', 'file://' + str(root / meeting_file), *more]

    ddp = root / 'ddp'
    fresh = spawn_ranks([rank_argv(ddp, 'meet_fresh', '--n_epochs', 2),
                         rank_argv(root / 'rank1', 'meet_fresh', '--n_epochs', 2)], root / 'dump_fresh')
    fresh_files = sorted(os.listdir(ddp / 'run'))
    # Both ranks resume the two-rank run from rank 0's files for a third epoch.
    resumed = spawn_ranks([rank_argv(ddp, 'meet_resumed', '--n_epochs', 3, '--continue_train')] * 2,
                          root / 'dump_resumed')
    return dict(root=root, data=data, fresh=fresh, fresh_files=fresh_files, resumed=resumed)


def load(path):
    return torch.load(path, weights_only=True)


def biases_cancelled_by_instance_norm(net):
    """Names of the conv biases right before an InstanceNorm2d. The norm subtracts each channel's mean, so their
    gradient is zero but for rounding, and Adam (which divides by the gradient's size) turns that rounding into
    steps of up to lr: two correct runs differ there, and the network computes the same function either way."""
    names = set()
    for prefix, module in net.named_modules():
        if isinstance(module, nn.Sequential):
            layers = list(module.named_children())
            for (name, layer), (_, following) in zip(layers, layers[1:]):
                if isinstance(following, nn.InstanceNorm2d) and getattr(layer, 'bias', None) is not None:
                    names.add(f'{prefix}.{name}.bias' if prefix else f'{name}.bias')
    return names


def build(name, hd=False):
    """The network called name, as ARGS (and HD_ARGS, with hd) build it."""
    if name.startswith('G'):
        return networks.define_G(3, 3, 8, 'unet_16' if hd else 'unet_32', 'instance', False,
                                 upsample='resize' if hd else 'transpose')
    if hd:
        return discriminators.define_D(6, 8, 'multiscale', 2, 'instance', num_D=2, spectral=True)
    return networks.define_D(6, 8, 'basic', 3, 'instance')


def max_difference(a, b, skip=()):
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a if k not in skip)


def assert_same_networks(expected, actual, hd=False):
    """Weights within 1e-5 (but for the cancelled biases), and G's outputs within 1e-5."""
    for name in NETWORKS:
        net = build(name, hd)
        assert max_difference(expected[name], actual[name], biases_cancelled_by_instance_norm(net)) < 1e-5, name
    for name in ('G', 'G_ema'):
        G, G2 = build(name, hd), build(name, hd)
        G.load_state_dict(expected[name])
        G2.load_state_dict(actual[name])
        x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            assert (G(x) - G2(x)).abs().max().item() < 1e-5, name


def checkpoint(folder, prefix):
    return {name: load(folder / 'run' / f'{prefix}_net_{name}.pth') for name in NETWORKS}


def test_two_ranks_of_batch_1_take_the_same_steps_as_one_process_of_batch_2(runs):
    single = runs['root'] / 'single'
    assert_same_networks(checkpoint(single, 2), checkpoint(runs['root'] / 'ddp', 2))
    # An epoch of training moves the weights by far more than the tolerance.
    assert max_difference(checkpoint(single, 1)['G'], checkpoint(single, 2)['G']) > 1e-4


def test_continue_train_under_ddp_resumes_the_same_run(runs):
    # Two ranks stopped after epoch 2 and resumed for epoch 3 end where one process running 3 epochs does.
    assert_same_networks(checkpoint(runs['root'] / 'single', 3), checkpoint(runs['root'] / 'ddp', 3))


@pytest.mark.parametrize('stage', ['fresh', 'resumed'])
def test_every_rank_ends_with_the_same_weights(runs, stage):
    rank0, rank1 = (dump['networks'] for dump in runs[stage])
    assert set(rank0) == set(NETWORKS)
    for name in NETWORKS:
        assert all(torch.equal(rank0[name][k], rank1[name][k]) for k in rank0[name]), name


def test_only_rank_0_writes_files(runs):
    written = [os.path.join(d, f) for d, _, files in os.walk(runs['root'] / 'rank1') for f in files]
    assert written == []
    single = sorted(os.listdir(runs['root'] / 'single' / 'run'))
    expected = [f for f in single if not f.startswith('3_')]  # the one-process run trained a third epoch
    assert runs['fresh_files'] == expected


def test_checkpoints_have_the_single_process_format(runs):
    for name in NETWORKS:
        saved = load(runs['root'] / 'ddp' / 'run' / f'latest_net_{name}.pth')
        assert list(saved) == list(build(name).state_dict())  # no 'module.' prefix, same keys in the same order


def lines(folder):
    """The values of each line of folder/run/loss_log.txt."""
    log = (folder / 'run' / 'loss_log.txt').read_text()
    return [dict((k, float(v)) for k, v in re.findall(r'(\w+): (-?[\d.]+)', line))
            for line in log.splitlines() if line.startswith('(epoch')]


def test_logged_losses_are_the_mean_over_ranks(runs):
    ddp = lines(runs['root'] / 'ddp')
    # The last line (epoch 3, after the resume) holds the mean of the two ranks' last losses ...
    rank0, rank1 = (dump['losses'] for dump in runs['resumed'])
    assert set(rank0) == {'G_GAN', 'G_L1', 'D_real', 'D_fake'} and rank0 != rank1
    for k in rank0:
        assert ddp[-1][k] == pytest.approx((rank0[k] + rank1[k]) / 2, abs=6e-4), k
    # ... and every line equals the one-process run's, which averages over its batch of both images.
    single = lines(runs['root'] / 'single')
    assert len(ddp) == len(single) == 6
    for mine, theirs in zip(ddp, single):
        assert mine['epoch'] == theirs['epoch'] and mine['iters'] == theirs['iters']
        for k in rank0:
            assert mine[k] == pytest.approx(theirs[k], abs=2e-3), (k, mine, theirs)


@needs_cxx
def test_compiled_networks_train_under_ddp_like_eager_ones(runs, tmp_path):
    # torch.compile splits a DDP model's graph at its gradient buckets; the run must still take the eager
    # run's steps, end with the same weights on both ranks and save the plain checkpoint format.
    argv = ['--dataroot', runs['data'], '--name', 'run', *ARGS, '--checkpoints_dir', tmp_path, '--batch_size', 1,
            '--n_epochs', 2, '--dist_url', 'file://' + str(tmp_path / 'meet'), '--compile']
    rank0, rank1 = (dump['networks'] for dump in spawn_ranks([argv, argv], tmp_path / 'dump'))
    for name in 'GD':
        assert all(torch.equal(rank0[name][k], rank1[name][k]) for k in rank0[name]), name
    compiled = checkpoint(tmp_path, 2)
    assert all(list(compiled[name]) == list(build(name).state_dict()) for name in 'GD')
    assert_same_networks(checkpoint(runs['root'] / 'ddp', 2), compiled)  # measured: 7e-7 apart at most


@pytest.fixture(scope='module')
def hd_runs(runs, vgg_weights):
    """One process with batch 2 and two ranks with batch 1, for 2 epochs, with every option of HD_ARGS."""
    root = runs['root']
    common = ['--dataroot', runs['data'], '--name', 'run', *ARGS, *HD_ARGS, '--vgg_weights', vgg_weights,
              '--n_epochs', 2]
    run('train.py', *common, '--checkpoints_dir', root / 'hd_single', '--batch_size', 2)
    argv = [*common, '--checkpoints_dir', root / 'hd_ddp', '--batch_size', 1, '--dist_url', 'file://' + str(root / 'meet_hd')]
    spawn_ranks([argv, argv], root / 'dump_hd')
    return root


def test_pix2pixhd_and_spade_options_take_the_same_steps_on_two_ranks(hd_runs):
    assert_same_networks(checkpoint(hd_runs / 'hd_single', 2), checkpoint(hd_runs / 'hd_ddp', 2), hd=True)
    ddp, single = lines(hd_runs / 'hd_ddp'), lines(hd_runs / 'hd_single')
    assert len(ddp) == len(single) == 4 and {'G_feat', 'G_VGG'} <= set(ddp[-1])
    for mine, theirs in zip(ddp, single):
        assert (mine['epoch'], mine['iters']) == (theirs['epoch'], theirs['iters'])
        for k in ('G_GAN', 'G_L1', 'D_real', 'D_fake', 'G_feat', 'G_VGG'):
            assert mine[k] == pytest.approx(theirs[k], abs=2e-3), (k, mine, theirs)


def test_pix2pixhds_local_generator_on_its_schedule_takes_the_same_steps_on_two_ranks(runs, tmp_path):
    """--netG local started from a global run (--load_global), its global part fixed for epoch 1
    (--niter_fix_global: dropped after DDP's exchange of gradients), with the multi-scale D, feature matching and
    the hinge loss: two ranks of batch 1 take one process's steps of batch 2, and keep the global part as loaded."""
    shape = dict(n_downsample_global=2, n_blocks_global=1)
    torch.manual_seed(1)
    global_run = networks.define_G(3, 3, 8, 'global', 'instance', False, **shape).state_dict()  # --ngf 4 * 2
    torch.save(global_run, tmp_path / 'global_G.pth')
    common = ['--dataroot', runs['data'], '--name', 'run', *ARGS, '--netG', 'local', '--ngf', 4,
              '--n_downsample_global', 2, '--n_blocks_global', 1, '--n_blocks_local', 1, '--netD', 'multiscale',
              '--n_layers_D', 2, '--lambda_feat', 10, '--gan_mode', 'hinge', '--load_global', tmp_path / 'global_G.pth',
              '--niter_fix_global', 1, '--n_epochs', 2]
    run('train.py', *common, '--checkpoints_dir', tmp_path / 'single', '--batch_size', 2)
    argv = [*common, '--checkpoints_dir', tmp_path / 'ddp', '--batch_size', 1,
            '--dist_url', 'file://' + str(tmp_path / 'meet')]
    spawn_ranks([argv, argv], tmp_path / 'dump')

    local = networks.define_G(3, 3, 4, 'local', 'instance', False, n_blocks_local=1, **shape)
    D = discriminators.define_D(6, 8, 'multiscale', 2, 'instance', num_D=2)
    cancelled = {'G': biases_cancelled_by_instance_norm(local), 'G_ema': biases_cancelled_by_instance_norm(local),
                 'D': biases_cancelled_by_instance_norm(D)}
    for epoch in (1, 2):
        single, ddp = checkpoint(tmp_path / 'single', epoch), checkpoint(tmp_path / 'ddp', epoch)
        for name in NETWORKS:
            assert max_difference(single[name], ddp[name], cancelled[name]) < 1e-5, (epoch, name)
        global_part = {key: value for key, value in ddp['G'].items() if key.startswith('model.')}
        assert global_part and global_part.keys() <= global_run.keys()
        unchanged = all(torch.equal(value, global_run[key]) for key, value in global_part.items())
        assert unchanged == (epoch == 1), epoch
    local.load_state_dict(ddp['G'])
    with torch.no_grad():
        assert local(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_ema_bn_images_under_ddp_recomputes_on_rank_0_over_the_first_training_images(runs, tmp_path):
    # Batch norm under DDP normalises each rank's own batch of 1. Rank 0 alone recomputes the saved average's
    # statistics, while rank 1 waits: over the first 3 images of the whole training set (not of its share of
    # it), in batches of 1. The resume state keeps rank 0's average as training left it.
    argv = ['--dataroot', runs['data'], '--name', 'run', *ARGS, '--norm', 'batch', '--ema_bn_images', 3,
            '--batch_size', 1, '--n_epochs', 2, '--dist_url', 'file://' + str(tmp_path / 'meet')]
    rank0, rank1 = (dump['networks']['G_ema'] for dump in spawn_ranks(
        [[*argv, '--checkpoints_dir', tmp_path / 'ddp'], [*argv, '--checkpoints_dir', tmp_path / 'rank1']],
        tmp_path / 'dump'))
    # The same averaged weights; each rank's running statistics follow its own batches.
    assert {k for k in rank0 if not torch.equal(rank0[k], rank1[k])} == {k for k in rank0 if 'running' in k}
    assert [path for path in (tmp_path / 'rank1').rglob('*') if path.is_file()] == []
    folder = tmp_path / 'ddp' / 'run'
    averaged = load(folder / 'latest_train_state.pth')['averages']['G_ema']['weights']
    assert all(torch.equal(averaged[k], rank0[k]) for k in rank0)
    inputs = first_training_inputs(runs['data'], 3)
    for saved in (load(folder / 'latest_net_G_ema.pth'), load(folder / '2_net_G_ema.pth')):
        assert_statistics_recomputed(saved, averaged, [inputs[i:i + 1] for i in range(3)])


def val_log(folder):
    return [json.loads(line) for line in (folder / 'run' / 'val_log.jsonl').read_text().splitlines()]


def test_rank_0_validates_and_every_rank_follows_its_scores(runs):
    single, ddp = val_log(runs['root'] / 'single'), val_log(runs['root'] / 'ddp')
    # Once per epoch: the resumed run does not validate again the epoch its save recorded.
    assert [line['epoch'] for line in ddp] == [line['epoch'] for line in single] == [1, 2, 3]
    for mine, theirs in zip(ddp, single):
        assert mine['images'] == 4 and mine['best'] == theirs['best']
        for name in ('G', 'G_ema'):
            for metric, value in theirs['scores'][name].items():
                assert mine['scores'][name][metric] == pytest.approx(value, rel=1e-3), (name, metric)
    # --plateau_on val: rank 1, which validates nothing, stepped its schedulers with rank 0's L1.
    for stage, epochs in (('fresh', 2), ('resumed', 3)):
        rank0, rank1 = (dump['schedulers'] for dump in runs[stage])
        assert rank0 == rank1
        expected = plateau_state([line['scores']['G']['l1'] for line in ddp[:epochs]], 'l1')
        for state in rank0:
            assert {k: state[k] for k in ('last_epoch', 'best', 'num_bad_epochs')} == \
                {k: expected[k] for k in ('last_epoch', 'best', 'num_bad_epochs')}


def test_tensorboard_is_written_by_rank_0_with_the_steps_of_one_process(runs):
    ddp, single = tensorboard_points(runs['root'] / 'ddp' / 'run'), tensorboard_points(runs['root'] / 'single' / 'run')
    assert ddp.keys() == single.keys() and {'val/G/l1', 'val/G_ema/ssim', 'loss/G_L1', 'learning_rate/G'} <= set(ddp)
    for tag in single:
        assert [step for step, _ in ddp[tag]] == [step for step, _ in single[tag]], tag
