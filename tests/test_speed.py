"""Speed options (--amp, --channels_last, --compile, --adam_impl), the small-convolution matmul path, and
scripts/benchmark.py: each changes what it should and nothing else. No test asserts a time."""
import json
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from data import create_dataloader
from data.base_dataset import pil_to_tensor
from models import create_model, networks
from options.test_options import TestOptions
from options.train_options import TrainOptions
from tests.scripts import PYTHON, REPO, TINY_NET, needs_cxx, run
from tests.tiny_data import make_aligned_pairs
from util.errors import UserError
from util.images import tensor2im

torch.set_num_threads(1)  # other tests share the cores


def tiny_model(tmp_path, *extra, seed=0):
    opt = TrainOptions().parse(['--dataroot', str(tmp_path), '--name', 'speed', '--checkpoints_dir', str(tmp_path),
                                '--device', 'cpu', *TINY_NET, *map(str, extra)])
    torch.manual_seed(seed)
    model = create_model(opt)
    model.setup(opt)
    return model


def random_pair(batch=1, size=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    A, B = (torch.rand(batch, 3, size, size, generator=generator) * 2 - 1 for _ in range(2))
    return {'A': A, 'B': B, 'A_paths': ['a'] * batch, 'B_paths': ['b'] * batch}


def conv_output_dtypes(model, step):
    """dtypes of every convolution's output (oneDNN and matmul paths alike) while step() runs."""
    dtypes = []
    convs = [m for net in model.networks().values() for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    handles = [m.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype)) for m in convs]
    step()
    for h in handles:
        h.remove()
    return dtypes


def test_bf16_runs_the_networks_in_bf16_and_keeps_weights_and_checkpoints_fp32(tmp_path):
    model = tiny_model(tmp_path, '--amp', 'bf16')
    model.set_input(random_pair())
    dtypes = conv_output_dtypes(model, model.optimize_parameters)
    assert len(dtypes) > 20 and set(dtypes) == {torch.bfloat16}
    assert model.fake_B.dtype == torch.bfloat16
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in model.get_current_losses().values())
    for net, optimizer in ((model.netG, model.optimizer_G), (model.netD, model.optimizer_D)):
        for p in net.parameters():
            assert p.dtype == torch.float32 and p.grad.dtype == torch.float32
            assert all(s.dtype == torch.float32 for k, s in optimizer.state[p].items() if k != 'step')
    model.save_networks('latest')
    for name in ('G', 'D'):
        saved = torch.load(tmp_path / 'speed' / f'latest_net_{name}.pth', weights_only=True)
        floats = [v for v in saved.values() if v.is_floating_point()]
        assert floats and all(v.dtype == torch.float32 for v in floats)
    # The test forward too (test.py's path).
    assert set(conv_output_dtypes(model, model.test)) == {torch.bfloat16}


def test_without_amp_everything_is_fp32(tmp_path):
    model = tiny_model(tmp_path)
    model.set_input(random_pair())
    assert set(conv_output_dtypes(model, model.optimize_parameters)) == {torch.float32}


def test_fp16_on_cpu_is_a_clear_error(tmp_path):
    result = run('train.py', '--dataroot', tmp_path, '--device', 'cpu', '--amp', 'fp16', *TINY_NET, check=False)
    assert result.returncode != 0
    assert 'error: --amp fp16 needs CUDA' in result.stderr and 'use --amp bf16' in result.stderr
    assert 'Traceback' not in result.stderr


def test_channels_last_lays_out_weights_channels_last_and_saves_them_as_usual(tmp_path):
    model = tiny_model(tmp_path, '--channels_last')
    weights = [p for net in model.networks().values() for p in net.parameters() if p.dim() == 4]
    assert weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
    assert not all(p.is_contiguous() for p in weights)
    model.set_input(random_pair())
    model.optimize_parameters()
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)  # still, after a step
    model.save_networks('latest')
    saved = torch.load(tmp_path / 'speed' / 'latest_net_G.pth', weights_only=True)
    assert all(v.is_contiguous() for v in saved.values())
    assert all(torch.equal(saved[k], v) for k, v in model.netG.state_dict().items())


def test_channels_last_gives_the_same_training_step(tmp_path):
    results = []
    for flags in ((), ('--channels_last',)):
        model = tiny_model(tmp_path, *flags)
        model.set_input(random_pair())
        torch.manual_seed(1)  # same dropout masks
        model.optimize_parameters()
        results.append(model.netG.state_dict())
    for key, value in results[0].items():
        torch.testing.assert_close(results[1][key], value, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('impl', ['foreach', 'for_loop'])
def test_fused_adam_takes_the_same_steps_as_the_other_implementations(tmp_path, impl):
    models = [tiny_model(tmp_path, '--adam_impl', name) for name in ('fused', impl)]
    start = {k: v.clone() for k, v in models[0].netG.state_dict().items()}
    for model in models:
        for step in range(3):
            model.set_input(random_pair(seed=step))
            torch.manual_seed(step)  # same dropout masks in both models
            model.optimize_parameters()
    assert models[0].optimizer_G.defaults['fused'] and not models[1].optimizer_G.defaults['fused']
    fused, other = models[0].netG.state_dict(), models[1].netG.state_dict()
    assert not torch.equal(fused['model.model.0.weight'], start['model.model.0.weight'])  # the steps moved it
    for name, value in fused.items():
        torch.testing.assert_close(value, other[name], rtol=1e-5, atol=1e-7)
    for p, q in zip(models[0].netD.parameters(), models[1].netD.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)


def test_default_adam_is_fused(tmp_path):
    model = tiny_model(tmp_path)
    assert all(o.defaults['fused'] for o in model.optimizers)


@needs_cxx
def test_compile_flag_compiles_both_networks_in_place(tmp_path):
    model = tiny_model(tmp_path, '--compile')
    for net in (model.netG, model.netD):
        assert net._compiled_call_impl is not None  # what nn.Module.compile() sets
        assert not any('_orig_mod' in k for k in net.state_dict())  # keys unchanged, checkpoints as usual


@needs_cxx
def test_compiled_model_trains_and_matches_eager(tmp_path):
    losses = []
    for flags in ((), ('--compile',)):
        model = tiny_model(tmp_path, *flags)
        for step in range(2):
            model.set_input(random_pair(seed=step))
            torch.manual_seed(step)
            model.optimize_parameters()
        losses.append({k: v.item() for k, v in model.get_current_losses().items()})
        model.set_input(random_pair(seed=5))
        model.test()
        assert model.fake_B.shape == (1, 3, 32, 32)
    for key in losses[0]:
        assert losses[1][key] == pytest.approx(losses[0][key], rel=1e-3, abs=1e-4)


@pytest.mark.parametrize('flags,message', [
    (('--compile_mode', 'max-autotune'), '--compile_mode max-autotune is a mode of --compile: add --compile'),
    (('--compile', '--compile_mode', 'reduce-overhead'),
     '--compile_mode reduce-overhead only adds CUDA graphs, which torch skips off CUDA (--device is cpu), so it would '
     'compile as --compile_mode default: use that'),
])
def test_compile_mode_needs_compile_and_reduce_overhead_needs_cuda(tmp_path, flags, message):
    with pytest.raises(UserError) as error:
        tiny_model(tmp_path, *flags)
    assert error.value.message == message


@needs_cxx
@pytest.mark.parametrize('mode', ['max-autotune', 'max-autotune-no-cudagraphs'])
def test_autotuning_modes_are_taken_on_the_cpu(tmp_path, mode):
    # Inductor autotunes on the CPU too and skips max-autotune's CUDA graphs there. Parsed only: compiling
    # with autotuning takes minutes on a CPU.
    opt = TrainOptions().parse(['--dataroot', str(tmp_path), '--device', 'cpu', *TINY_NET, '--compile',
                                '--compile_mode', mode])
    assert (opt.device, opt.compile, opt.compile_mode) == ('cpu', True, mode)


def test_cuda_graph_modes_mark_a_new_step_at_each_generator_forward(tmp_path, monkeypatch):
    # CUDA graphs replay into the memory of the previous step's outputs; each training step and each test
    # forward must tell torch that a new step begins, or reading fake_B would raise on the GPU.
    marks = []
    monkeypatch.setattr(torch.compiler, 'cudagraph_mark_step_begin', lambda: marks.append(1))
    model = tiny_model(tmp_path)
    model.set_input(random_pair())
    model.optimize_parameters()
    model.test()
    assert marks == []  # eager and --compile_mode default: nothing to mark
    # The CUDA check is the options' (above); the model reads its configuration at each forward.
    model.opt = model.opt.derive(compile=True, compile_mode='reduce-overhead')
    model.optimize_parameters()
    model.test()
    assert len(marks) == 2


# ----------------------------------------------------------------------------------------------
# The matmul path for convolutions on few pixels (models/networks.py)

@pytest.mark.parametrize('batch,size', [(1, 1), (1, 2), (2, 4), (1, 8), (3, 16)])
@pytest.mark.parametrize('transposed', [False, True])
@pytest.mark.parametrize('bias', [False, True])
def test_small_convolutions_match_torch(batch, size, transposed, bias):
    torch.manual_seed(0)
    if transposed:
        ours, theirs = (cls(6, 5, kernel_size=4, stride=2, padding=1, bias=bias)
                        for cls in (networks.ConvTranspose2d, torch.nn.ConvTranspose2d))
    else:
        ours, theirs = (cls(6, 5, kernel_size=4, stride=2, padding=1, bias=bias)
                        for cls in (networks.Conv2d, torch.nn.Conv2d))
        size = max(size, 2)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(batch, 6, size, size, requires_grad=True)
    y_ours, y_theirs = ours(x), theirs(x)
    torch.testing.assert_close(y_ours, y_theirs, rtol=1e-5, atol=1e-6)
    grad = torch.randn_like(y_ours)
    for a, b in zip(torch.autograd.grad(y_ours, [x, *ours.parameters()], grad),
                    torch.autograd.grad(y_theirs, [x, *theirs.parameters()], grad)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_matmul_path_threshold_counts_batch_and_pixels():
    conv = networks.Conv2d(4, 4, kernel_size=4, stride=2, padding=1)
    small = torch.randn(2, 4, 16, 16)  # 2 x 8x8 = 128 positions
    assert networks.computes_as_matmul(conv, small, 2 * 8 * 8)
    assert not networks.computes_as_matmul(conv, small, 4 * 8 * 8)
    assert not networks.computes_as_matmul(networks.Conv2d(4, 4, 3, padding=1, padding_mode='reflect'), small, 4)


def test_unet_keeps_the_reference_layout():
    net = networks.define_G(3, 3, 8, 'unet_256', 'batch', True)
    assert isinstance(net.model.model[0], torch.nn.Conv2d) and type(net.model.model[0]).__name__ == 'Conv2d'
    assert type(net.model.model[3]).__name__ == 'ConvTranspose2d'
    assert net.state_dict()['model.model.1.model.1.weight'].shape == (16, 8, 4, 4)  # reference key names


def saved_tiny_generator(tmp_path, *extra):
    """A test-phase model (what test.py builds) around a freshly saved tiny generator."""
    tiny_model(tmp_path, *extra).save_networks('latest')
    opt = TestOptions().parse(['--dataroot', str(tmp_path), '--name', 'speed', '--checkpoints_dir', str(tmp_path),
                               '--device', 'cpu', '--load_size', '32', '--crop_size', '32', *map(str, extra)])
    model = create_model(opt)
    model.setup(opt)
    return model


def test_train_mode_testing_gives_each_image_the_same_output_in_any_batch(tmp_path):
    model = saved_tiny_generator(tmp_path, '--no_dropout')
    assert model.netG.training  # the paper's test mode: batch statistics
    batch = random_pair(batch=3, size=32)
    model.set_input(batch)
    model.test()
    together = model.fake_B.clone()
    for i in range(3):
        model.set_input({key: value[i:i + 1] for key, value in batch.items()})
        model.test()
        assert torch.allclose(model.fake_B, together[i:i + 1], atol=1e-5), i
    # Training still normalises by the statistics of the whole batch.
    trainer = tiny_model(tmp_path, '--no_dropout')
    assert not any(m.each_image for m in trainer.netG.modules() if isinstance(m, networks.BatchNorm2d))


def test_a_syncbatch_generator_also_normalises_each_image_at_test_time():
    # Trained with --norm syncbatch on GPUs, tested on a CPU outside any process group.
    torch.manual_seed(0)
    net = networks.define_G(3, 3, 8, 'unet_32', 'syncbatch', use_dropout=False)
    networks.normalize_each_image(net)
    x = torch.randn(3, 3, 32, 32)
    with torch.inference_mode():
        together = net(x)
        for i in range(3):
            assert torch.allclose(net(x[i:i + 1]), together[i:i + 1], atol=1e-5), i


def test_bf16_testing_casts_the_convolutions_once_and_gives_the_same_images(tmp_path):
    model = saved_tiny_generator(tmp_path, '--no_dropout', '--amp', 'bf16')
    convs = [m for m in model.netG.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert convs and all(p.dtype == torch.bfloat16 for m in convs for p in m.parameters())
    norms = [m for m in model.netG.modules() if isinstance(m, networks.BatchNorm2d)]
    assert norms and all(p.dtype == torch.float32 for m in norms for p in m.parameters())
    model.set_input(random_pair(batch=2, size=32))
    model.test()
    cast_once = model.fake_B.float()
    # The same forward with float32 weights, cast by autocast on the fly: the same 8-bit images.
    stored = torch.load(tmp_path / 'speed' / 'latest_net_G.pth', weights_only=True)
    assert all(v.dtype == torch.float32 for v in stored.values() if v.is_floating_point())  # file untouched
    model.netG.float().load_state_dict(stored)
    model.test()
    for i in range(2):  # the PNG levels test.py saves
        assert np.abs(tensor2im(cast_once[i]).astype(int) - tensor2im(model.fake_B[i]).astype(int)).max() <= 2


# ----------------------------------------------------------------------------------------------
# Training quality and data loading

def overfit_l1(tmp_path, data, *flags, epochs=25):
    """Train on 4 pairs; mean |G(A) - B| on them (in the model's own precision) before and after."""
    model = tiny_model(tmp_path, '--dataroot', data, '--no_flip', '--serial_batches', '--num_threads', 0, *flags,
                       seed=3)
    loader = create_dataloader(model.opt, shuffle=False)

    def l1():
        total = 0.0
        for batch in loader:
            model.set_input(batch)
            model.test()
            total += (model.fake_B.float() - model.real_B).abs().mean().item()
        return total / len(loader)

    before = l1()
    torch.manual_seed(3)
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        for batch in loader:
            model.set_input(batch)
            model.optimize_parameters()
    return before, l1()


def test_bf16_overfits_a_few_pairs_as_well_as_fp32(tmp_path):
    data = make_aligned_pairs(str(tmp_path / 'data'), count=4, size=32)
    fp32_before, fp32_after = overfit_l1(tmp_path, data)
    bf16_before, bf16_after = overfit_l1(tmp_path, data, '--amp', 'bf16')
    assert bf16_before == pytest.approx(fp32_before, abs=0.02)  # same start
    assert fp32_after < 0.5 * fp32_before and bf16_after < 0.5 * bf16_before
    assert bf16_after < 1.3 * fp32_after + 0.02, (fp32_before, fp32_after, bf16_before, bf16_after)


def test_pil_to_tensor_matches_torchvision():
    tv = pytest.importorskip('torchvision.transforms.functional')
    rng = np.random.default_rng(0)
    for mode, shape in (('RGB', (5, 7, 3)), ('L', (5, 7))):
        image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
        assert torch.equal(pil_to_tensor(image), tv.pil_to_tensor(image))


def test_data_loading_modules_do_not_import_torchvision():
    # torchvision's import costs about 1.3 s per train.py/test.py process.
    code = 'import sys, data, data.aligned_dataset, models, util.files, util.images; print("torchvision" in sys.modules)'
    out = subprocess.run([PYTHON, '-c', code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == 'False'


# ----------------------------------------------------------------------------------------------
# scripts/benchmark.py

def test_benchmark_quick_writes_the_figures(tmp_path):
    out = tmp_path / 'bench.json'
    result = run('scripts/benchmark.py', '--quick', '--devices', 'cpu', '--sizes', '32,64', '--batch_sizes', '1,2',
                 '--ngf', 8, '--ndf', 8, '--iters', 2, '--threads', 1, '--json', out)
    report = json.loads(out.read_text())
    assert report['machine']['cores'] >= 1 and report['machine']['torch'] == torch.__version__
    peak = report['peak_gflops']['cpu']
    assert peak['fp32'] > 0 and peak['bf16'] > 0
    rows = report['results']
    assert {(r['size'], r['batch']) for r in rows} == {(32, 1), (64, 1), (32, 2)}
    assert {r['variant'] for r in rows} == {'baseline', 'fp32', 'bf16'}
    for r in rows:
        assert r['train_s_per_iter'] > 0 and r['test_images_per_s'] > 0 and r['iters'] == 2
        assert r['gflop_per_iter'] > 0 and r['train_gflops'] == pytest.approx(
            r['gflop_per_iter'] / r['train_s_per_iter'], rel=0.05)
        assert r['speedup_vs_baseline'] > 0 and 'cost_per_image_vs_paper' in r and 'cost_per_pixel_vs_paper' in r
    flops = {(r['size'], r['batch']): r['gflop_per_iter'] for r in rows if r['variant'] == 'fp32'}
    assert flops[(32, 2)] == pytest.approx(2 * flops[(32, 1)], rel=0.01)  # FLOPs grow with the batch
    assert 'speedup' in result.stdout and 'GFLOP/s' in result.stdout  # the printed table


def test_benchmark_times_training_options_against_the_default(tmp_path):
    out = tmp_path / 'bench.json'
    run('scripts/benchmark.py', '--devices', 'cpu', '--sizes', 64, '--batch_sizes', 1, '--amp', 'none', '--no_baseline',
        '--options', 'feat,vgg,ema', '--variant', 'hd=--netD multiscale --lambda_feat 10', '--ngf', 8, '--ndf', 8,
        '--iters', 1, '--warmup', 0, '--threads', 1, '--json', out)
    rows = {r['variant']: r for r in json.loads(out.read_text())['results']}
    assert list(rows) == ['fp32', 'fp32+feat', 'fp32+vgg', 'fp32+ema', 'fp32+hd']
    assert rows['fp32+hd']['flags'] == '--netD multiscale --lambda_feat 10' and rows['fp32']['flags'] == ''
    flops = {name: r['gflop_per_iter'] for name, r in rows.items()}
    # Feature matching runs D once more; the VGG loss runs VGG19 three times; a second scale adds a quarter D.
    assert flops['fp32'] < flops['fp32+feat'] < flops['fp32+hd'] and flops['fp32+vgg'] > 2 * flops['fp32']
    assert flops['fp32+ema'] == flops['fp32']  # FLOPs are counted in optimize_parameters(); the average is apart
    assert 'time_vs_default' not in rows['fp32']
    for name in ('fp32+feat', 'fp32+vgg', 'fp32+ema', 'fp32+hd'):
        assert rows[name]['time_vs_default'] == pytest.approx(
            rows[name]['train_s_per_iter'] / rows['fp32']['train_s_per_iter'], abs=0.01)


def test_gradient_scaler_wiring_takes_the_unscaled_steps(tmp_path):
    # --amp fp16 needs CUDA, but its scaler's wiring (losses scaled before backward, gradients unscaled
    # before each step, one update per iteration) runs on the CPU too: with a power-of-two scale and
    # float32 it must give the same steps as no scaler.
    states = []
    for scaled in (False, True):
        model = tiny_model(tmp_path)
        if scaled:
            model.scaler = torch.amp.GradScaler('cpu', init_scale=2.0 ** 12)
        for step in range(3):
            model.set_input(random_pair(seed=step))
            torch.manual_seed(step)
            model.optimize_parameters()
        moments = [model.optimizers[i].state[p]['exp_avg'] for i, net in enumerate((model.netG, model.netD))
                   for p in net.parameters()]  # Adam's running mean of the gradients: unscaled or 4096x
        states.append({**model.netG.state_dict(), **{'D.' + k: v for k, v in model.netD.state_dict().items()},
                       **{f'exp_avg.{i}': m for i, m in enumerate(moments)}})
    assert model.scaler.get_scale() == 2.0 ** 12  # no inf/NaN seen, so no step skipped
    for key, value in states[0].items():
        torch.testing.assert_close(states[1][key], value, rtol=1e-5, atol=1e-6)
