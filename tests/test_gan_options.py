"""The training options taken from pix2pixHD and SPADE: multi-scale D, feature matching, hinge loss, spectral
norm, --lr_D, --upsample resize, the VGG loss and --recipe. Their definitions, their errors, bf16, and
test.py without the flags. Exact resume after kill -9: tests/test_resume.py; DDP: tests/test_distributed.py."""
import contextlib
import io
import os

import pytest
import torch

import models
from models import checkpoint, discriminators, networks, perceptual
from models.networks import GANLoss
from options.recipes import RECIPES
from options.train_options import TrainOptions
from tests.scripts import TINY_NET
from tests.tiny_data import make_aligned_pairs
from training.plateau import Plateau
from training.saving import NetworkSaver
from training.state import TrainingState
from util.errors import UserError

torch.set_num_threads(1)
VGG = 'VGG'  # in a parametrised flag list: stands for the vgg_weights fixture's file


# ------------------------------------------------------------------------------------------------
# Feature matching


def layers(*values):
    """One scale of D(x, layers=True): a constant feature map per value, the last one the prediction."""
    return [torch.full((1, 2, 3, 3), float(v)) for v in values]


def test_feature_matching_weighs_layers_and_scales_as_pix2pixhd():
    # Two scales of PatchGANs with n_layers_D 3: 4 intermediate layers weighing 4/4 each, the prediction (100,
    # -100) not counted, each scale 1/2.
    fake = [layers(1, 2, 3, 4, 100), layers(0, 0, 0, 0, -100)]
    real = [layers(0, 0, 0, 0, 0), layers(1, 1, 1, 1, 0)]
    assert discriminators.feature_matching(fake, real).item() == pytest.approx((1 + 2 + 3 + 4) / 2 + 4 / 2)
    # A single D (n_layers_D 1: 2 intermediate layers, 4/2 each), as --netD basic or n_layers gives it.
    assert discriminators.feature_matching(layers(1, -3, 9), layers(0, 0, 0)).item() == pytest.approx(2 * 1 + 2 * 3)


def test_feature_matching_is_zero_for_identical_pairs_and_pulls_the_fake_features_towards_the_real_ones():
    fake_feature = torch.tensor([[1.0, -1.0, 0.5]], requires_grad=True)
    real_feature = torch.tensor([[0.0, 0.0, 2.0]], requires_grad=True)
    prediction = torch.zeros(1)
    discriminators.feature_matching([fake_feature, prediction], [real_feature, prediction]).backward()
    # d/df of 4/T * mean|f - r| (T = 1 layer, 3 values) is 4/3 sign(f - r): descent moves f towards r.
    assert fake_feature.grad[0].tolist() == pytest.approx([4 / 3, -4 / 3, -4 / 3])
    assert real_feature.grad is None  # the real pair's features are the target

    torch.manual_seed(0)
    D = discriminators.define_D(6, 4, 'multiscale', 2, 'instance', num_D=2)
    real = torch.rand(2, 6, 32, 32) * 2 - 1
    with torch.no_grad():
        target = D(real, layers=True)
    assert discriminators.feature_matching(D(real.clone(), layers=True), target).item() == 0
    fake = (real + 0.5 * torch.randn_like(real)).requires_grad_(True)
    loss = discriminators.feature_matching(D(fake, layers=True), target)
    loss.backward()
    step = 0.05 * fake.grad / fake.grad.norm()
    with torch.no_grad():
        assert discriminators.feature_matching(D(fake - step, layers=True), target) < loss
        assert discriminators.feature_matching(D(fake + step, layers=True), target) > loss


# ------------------------------------------------------------------------------------------------
# The multi-scale discriminator


def pooled_by_hand(x):
    """pix2pixHD's AvgPool2d(3, stride=2, padding=1, count_include_pad=False), one window at a time."""
    h, w = x.shape[-2:]
    rows, cols = (h + 1) // 2, (w + 1) // 2
    out = torch.empty(*x.shape[:2], rows, cols)
    for i in range(rows):
        for j in range(cols):
            out[..., i, j] = x[..., max(2 * i - 1, 0):2 * i + 2, max(2 * j - 1, 0):2 * j + 2].mean((-2, -1))
    return out


def test_each_scale_of_the_multiscale_discriminator_sees_the_pair_pooled_k_times():
    torch.manual_seed(0)
    D = discriminators.define_D(6, 4, 'multiscale', 2, 'instance', num_D=3)
    seen = []
    for scale in D.scales:
        scale.model[0].register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    x = torch.randn(1, 6, 50, 50)  # 50 -> 25 -> 13: odd sizes, where the borders' windows are partial
    predictions = D(x)
    inputs = list(seen)
    assert [tuple(s.shape[-2:]) for s in inputs] == [(50, 50), (25, 25), (13, 13)]
    expected = x
    for k in range(3):
        assert torch.allclose(inputs[k], expected, atol=1e-6), k
        assert torch.equal(predictions[k], D.scales[k](inputs[k]))
        expected = pooled_by_hand(expected)

    every_layer = D(x, layers=True)  # per scale: n_layers_D + 1 intermediate features, then the prediction
    assert [len(scale) for scale in every_layer] == [4, 4, 4]
    assert all(torch.equal(scale[-1], p) for scale, p in zip(every_layer, predictions))
    assert discriminators.predictions(every_layer) == [scale[-1] for scale in every_layer]


def test_a_single_discriminator_gives_its_layers_and_the_same_prediction():
    torch.manual_seed(0)
    D = networks.define_D(6, 4, 'basic', norm='batch').eval()
    x = torch.randn(2, 6, 64, 64)
    every_layer = D(x, layers=True)
    assert len(every_layer) == 5 and torch.equal(every_layer[-1], D(x))
    assert [f.shape[1] for f in every_layer] == [4, 8, 16, 32, 1]
    pixel = networks.define_D(6, 4, 'pixel', norm='batch').eval()
    assert len(pixel(x, layers=True)) == 3 and torch.equal(pixel(x, layers=True)[-1], pixel(x))


# ------------------------------------------------------------------------------------------------
# The hinge loss


def test_hinge_loss_takes_its_known_values():
    hinge = GANLoss('hinge')
    p = torch.tensor([[-2.0, 0.0, 0.5, 3.0]])
    assert hinge(p, True).item() == pytest.approx((3 + 1 + 0.5 + 0) / 4)  # D: mean relu(1 - D(real))
    assert hinge(p, False).item() == pytest.approx((0 + 1 + 1.5 + 4) / 4)  # D: mean relu(1 + D(fake))
    assert hinge(p, True, for_discriminator=False).item() == pytest.approx(-(-2 + 0 + 0.5 + 3) / 4)  # G: -mean D(fake)
    # A multi-scale D's predictions: the mean of the scales' losses.
    assert hinge([p, torch.full((1, 1), 2.0)], False).item() == pytest.approx((1.625 + 3) / 2)
    # The other modes give G the loss of "real", as before.
    lsgan = GANLoss('lsgan')
    assert lsgan(p, True, for_discriminator=False).item() == lsgan(p, True).item()


def test_the_gradient_penalty_of_a_multiscale_critic_is_that_of_the_sum_of_its_scales():
    # --gan_mode wgangp --netD multiscale: two linear critics D_k(x) = w_k.x have the gradient w_1 + w_2.
    w1, w2 = torch.full((12, 1), 0.5), torch.linspace(-1, 1, 12).view(12, 1)
    critic = lambda x: [x.flatten(1) @ w1, x.flatten(1) @ w2]  # noqa: E731
    real, fake = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    penalty = networks.gradient_penalty(critic, real, fake, lambda_gp=10.0)
    assert penalty.item() == pytest.approx(10.0 * ((w1 + w2).norm().item() - 1) ** 2, rel=1e-5)


# ------------------------------------------------------------------------------------------------
# Spectral normalisation


def largest_singular_values(net):
    return [torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2).item()
            for m in net.modules() if isinstance(m, torch.nn.Conv2d)]


def test_spectral_norm_keeps_every_convolutions_largest_singular_value_near_1():
    torch.manual_seed(0)
    plain = discriminators.define_D(6, 4, 'multiscale', 3, 'instance', num_D=2)
    torch.manual_seed(0)
    D = discriminators.define_D(6, 4, 'multiscale', 3, 'instance', num_D=2, spectral=True)
    assert max(largest_singular_values(plain)) < 0.7  # the normal(0, 0.02) initial weights, unnormalised
    optimizer = torch.optim.Adam(D.parameters(), lr=4e-4)
    x = torch.randn(1, 6, 64, 64)
    hinge = GANLoss('hinge')
    for _ in range(10):
        optimizer.zero_grad()
        hinge(D(x), True).backward()
        optimizer.step()
    with torch.no_grad():
        for _ in range(10):  # each forward in training mode is one more power iteration
            D(x)
    D.eval()
    sigmas = largest_singular_values(D)
    # u^T W v never exceeds W's largest singular value, so the normalised weights' is 1 or a little above.
    assert len(sigmas) == 10 and all(0.999 < s < 1.05 for s in sigmas), str([round(s, 4) for s in sigmas])


def test_a_spectral_norm_discriminator_saves_its_power_iteration_vectors(tmp_path):
    torch.manual_seed(0)
    D = discriminators.define_D(6, 4, 'basic', 3, 'instance', spectral=True)
    x = torch.randn(1, 6, 32, 32)
    D(x)
    torch.save(D.state_dict(), tmp_path / 'D.pth')
    state = checkpoint.load_state_dict(str(tmp_path / 'D.pth'))
    assert 'model.0.parametrizations.weight.original' in state and 'model.0.parametrizations.weight.0._u' in state
    torch.manual_seed(1)
    loaded = discriminators.define_D(6, 4, 'basic', 3, 'instance', spectral=True)
    loaded.load_state_dict(state)
    # The next power iteration starts from the saved vectors: the same output, in training mode too.
    assert torch.equal(loaded(x), D(x))


# ------------------------------------------------------------------------------------------------
# --upsample resize


def test_resize_upsampling_has_no_checkerboard_on_a_constant_input():
    torch.manual_seed(0)
    x = torch.full((1, 4, 8, 8), 0.7)
    resize = networks.UpsampleConv2d(4, 3, kernel_size=3, padding=1)(x)
    assert resize.shape == (1, 3, 16, 16)
    interior = resize[..., 1:-1, 1:-1]  # the border sees the zero padding
    assert (interior.amax((-2, -1)) - interior.amin((-2, -1))).max() < 1e-6
    # The reference's transposed convolution draws a period-2 pattern on the same input.
    transpose = networks.ConvTranspose2d(4, 3, kernel_size=4, stride=2, padding=1)(x)[..., 1:-1, 1:-1]
    assert (transpose.amax((-2, -1)) - transpose.amin((-2, -1))).min() > 1e-3
    assert torch.equal(transpose[..., 0:-2:2, 0:-2:2], transpose[..., 2::2, 2::2])


@pytest.mark.parametrize('size', [3, 8, 21])  # enlarged, 2 x 3 x 4 inputs compute as one matmul; the others as a transposed convolution
def test_resize_upsampling_is_nearest_x2_then_a_3x3_convolution(size):
    torch.manual_seed(0)
    up = networks.UpsampleConv2d(5, 7, kernel_size=3, padding=1)
    x = torch.randn(2, 5, size, size + 1, requires_grad=True)
    y = up(x)
    y.square().sum().backward()
    gradients = x.grad, up.weight.grad, up.bias.grad
    x.grad = up.weight.grad = up.bias.grad = None
    expected = torch.nn.functional.conv2d(torch.nn.functional.interpolate(x, scale_factor=2, mode='nearest'),
                                          up.weight, up.bias, padding=1)
    expected.square().sum().backward()
    assert y.shape == (2, 7, 2 * size, 2 * size + 2)
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-5)
    for got, want in zip(gradients, (x.grad, up.weight.grad, up.bias.grad)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('netG,size,upsamplings', [('unet_32', 32, 5), ('resnet_6blocks', 32, 2)])
def test_resize_generators_upsample_without_transposed_convolutions(netG, size, upsamplings):
    torch.manual_seed(0)
    net = networks.define_G(3, 2, 4, netG, 'instance', upsample='resize')
    assert sum(isinstance(m, networks.UpsampleConv2d) for m in net.modules()) == upsamplings
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())
    y = net(torch.rand(2, 3, size, size) * 2 - 1)
    assert y.shape == (2, 2, size, size) and y.abs().max() <= 1


@pytest.mark.parametrize('netG', ['unet_32', 'resnet_6blocks'])
@pytest.mark.parametrize('upsample', networks.UPSAMPLES)
@pytest.mark.parametrize('norm', ['batch', 'instance'])
def test_the_upsampling_is_inferred_from_a_generator_file(netG, upsample, norm):
    with torch.device('meta'):
        state = networks.define_G(3, 2, 8, netG, norm, True, upsample=upsample).state_dict()
    inferred = checkpoint.infer_generator_options(state)
    assert (inferred['netG'], inferred['upsample'], inferred['norm'], inferred['output_nc']) == (netG, upsample, norm, 2)


# ------------------------------------------------------------------------------------------------
# The VGG loss


def vgg_loss_by_hand(path, fake, real):
    """pix2pixHD's VGGLoss on torchvision's VGG19: its features at relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1
    (torchvision's indices 1, 6, 11, 20, 29), weighted 1/32 ... 1, on ImageNet-normalised inputs."""
    from torchvision.models import vgg
    net = vgg.make_layers(vgg.cfgs['E'])
    net.load_state_dict({k[len('features.'):]: v for k, v in torch.load(path, weights_only=True).items()})
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def features(x):
        x, found = ((x + 1) / 2 - mean) / std, []
        for index, layer in enumerate(net[:30]):
            x = layer(x)
            if index in (1, 6, 11, 20, 29):
                found.append(x.clone())
        return found

    return sum(w * (a - b).abs().mean() for w, a, b in zip((1 / 32, 1 / 16, 1 / 8, 1 / 4, 1), features(fake), features(real)))


def test_vgg_loss_is_pix2pixhds_on_torchvisions_vgg19(vgg_weights):
    torch.manual_seed(0)
    loss = perceptual.VGGLoss(str(vgg_weights))
    fake, real = (torch.rand(2, 3, 32, 32) * 2 - 1 for _ in range(2))
    fake.requires_grad_(True)
    value = loss(fake, real)
    with torch.no_grad():
        assert value.item() == pytest.approx(vgg_loss_by_hand(vgg_weights, fake, real).item(), rel=1e-5)
    assert value.item() > 0 and loss(real, real).item() == 0
    value.backward()
    assert fake.grad.abs().sum() > 0 and not any(p.requires_grad for p in loss.parameters())
    gray = real[:, :1]  # a gray output is compared as the RGB image with three equal channels
    assert loss(gray, fake[:, :1].detach()).item() == pytest.approx(
        loss(gray.expand(-1, 3, -1, -1), fake[:, :1].detach().expand(-1, 3, -1, -1)).item())


def test_bad_vgg_weights_name_the_file_to_get(tmp_path):
    # No --vgg_weights, or no such file: the options say so (test_impossible_combinations_are_...).
    get = "get torchvision's VGG19 weights, vgg19-dcbb9e9d.pth, from https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
    torch.save(networks.define_D(6, 4, 'basic').state_dict(), tmp_path / 'D.pth')
    with pytest.raises(UserError, match=r'does not hold VGG19 weights \(missing or misshapen: features.0.weight, '):
        perceptual.load_vgg19_features(str(tmp_path / 'D.pth'))
    (tmp_path / 'notes.pth').write_text('not weights')
    with pytest.raises(UserError, match=f'cannot load --vgg_weights {tmp_path}/notes.pth: .*; {get}'):
        perceptual.load_vgg19_features(str(tmp_path / 'notes.pth'))


# ------------------------------------------------------------------------------------------------
# Options: errors, --lr_D, --recipe


def parse(*flags):
    with contextlib.redirect_stdout(io.StringIO()):
        opt = TrainOptions().parse(['--dataroot', '.', *TINY_NET, *map(str, flags)])
    return opt


@pytest.mark.parametrize('flags,message', [
    (['--num_D', 3], '--num_D 3 is the number of scales of a multi-scale D: add --netD multiscale, or drop --num_D'),
    (['--netD', 'multiscale', '--num_D', 0], '--num_D 0: give a number of scales, at least 1'),
    (['--netD', 'multiscale', '--num_D', 3, '--load_size', 64, '--crop_size', 64],
     '--netD multiscale --num_D 3: a PatchGAN of --n_layers_D 3 needs 24 pixels, so 64-pixel training images leave '
     'room for 2 scale(s) of halving; use --num_D 2 or a smaller --n_layers_D'),
    (['--netD', 'multi'], '--netD multi: choose from basic, n_layers, pixel, multiscale'),
    (['--lambda_vgg', 10], "--lambda_vgg needs --vgg_weights PATH: get torchvision's VGG19 weights, "
                           'vgg19-dcbb9e9d.pth, from https://download.pytorch.org/models/vgg19-dcbb9e9d.pth'),
    (['--lambda_vgg', 10, '--vgg_weights', 'no/such.pth'], '--vgg_weights no/such.pth: no such file; get'),
    (['--vgg_weights', VGG], '--vgg_weights is used only by the VGG loss: add --lambda_vgg 10'),
    (['--lambda_vgg', -1, '--vgg_weights', VGG], '--lambda_vgg -1.0: give a weight of 0 (off) or more'),
    (['--model', 'colorization', '--lambda_vgg', 10, '--vgg_weights', VGG],
     '--lambda_vgg compares RGB or gray images, but --output_nc is 2 (--model colorization); drop --lambda_vgg'),
    (['--lambda_feat', -1], '--lambda_feat -1.0: give a weight of 0 (off) or more'),
    (['--lr_D', 0], '--lr_D 0.0: give a positive learning rate, or drop --lr_D to use --lr'),
])
def test_impossible_combinations_are_one_line_errors_naming_the_fix(flags, message, vgg_weights):
    flags = [vgg_weights if flag == VGG else flag for flag in flags]
    with pytest.raises(UserError) as error:
        parse(*flags)
    assert str(error.value).startswith('error: ' + message) and '\n' not in str(error.value)


def test_bad_vgg_settings_stop_before_anything_is_written(runner, tmp_path):
    def train(*flags):
        result = runner.run('train.py', '--dataroot', data, '--checkpoints_dir', tmp_path / 'checkpoints', *TINY_NET,
                            '--lambda_vgg', 10, *flags, check=False)
        assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr[-2000:]
        return result.stderr

    data = make_aligned_pairs(str(tmp_path / 'data'), count=2, size=32, phases=('train',))
    assert train().startswith('error: --lambda_vgg needs --vgg_weights')
    assert not (tmp_path / 'checkpoints').exists()  # stopped by the options' checks
    torch.save(networks.define_D(6, 4, 'basic').state_dict(), tmp_path / 'D.pth')
    assert train('--vgg_weights', tmp_path / 'D.pth').startswith(f'error: --vgg_weights {tmp_path / "D.pth"} does '
                                                                 f'not hold VGG19 weights')
    assert os.listdir(tmp_path / 'checkpoints' / 'experiment_name') == []  # found when the model is built


@pytest.mark.filterwarnings('ignore:Detected call of `lr_scheduler.step')
def test_lr_D_is_Ds_rate_and_the_schedule_scales_both():
    opt = parse('--lr', 1e-4, '--lr_D', 4e-4, '--n_epochs', 1, '--n_epochs_decay', 3)
    model = model_for(opt)
    assert rates(model) == [1e-4, 4e-4]
    model.update_learning_rate()
    model.update_learning_rate()  # epoch 3 of 1 + 3: the linear decay is at 1 - 2/4
    assert rates(model) == pytest.approx([0.5e-4, 2e-4])
    assert rates(model_for(parse('--lr', 1e-4))) == [1e-4, 1e-4]  # no --lr_D: D at --lr, as the reference


def model_for(opt):
    with contextlib.redirect_stdout(io.StringIO()):
        model = models.create_model(opt)
        model.setup(opt)
    return model


def rates(model):
    return [optimizer.param_groups[0]['lr'] for optimizer in model.optimizers]


@pytest.mark.filterwarnings('ignore:Detected call of `lr_scheduler.step')
def test_resuming_keeps_lr_D_and_a_typed_one_rescales_D_alone(tmp_path):
    common = ['--checkpoints_dir', tmp_path, '--name', 'rates', '--lr', 1e-4, '--n_epochs', 1, '--n_epochs_decay', 3]
    opt = parse(*common, '--lr_D', 4e-4)
    model = model_for(opt)
    model.update_learning_rate()
    model.update_learning_rate()
    state = TrainingState(opt)
    state.restore(NetworkSaver(model, opt), Plateau(opt, model))
    state.save()  # at 1/2 of both rates

    def resumed(*flags):
        with contextlib.redirect_stdout(io.StringIO()):
            opt = parse(*common, '--continue_train', *flags)
            state = TrainingState(opt)
            model = model_for(opt)
            state.restore(NetworkSaver(model, opt), Plateau(opt, model))
        return opt, model

    opt, model = resumed()  # --lr_D not typed: the saved one
    assert opt.lr_D == 4e-4 and rates(model) == pytest.approx([0.5e-4, 2e-4])
    opt, model = resumed('--lr_D', 2e-4)  # typed: D's whole schedule halves, G's stays
    assert rates(model) == pytest.approx([0.5e-4, 1e-4])
    assert model.schedulers[1].base_lrs == pytest.approx([2e-4]) and model.schedulers[0].base_lrs == pytest.approx([1e-4])


def test_the_recipe_sets_its_options_unless_typed():
    opt = parse('--recipe', 'improved', '--upsample', 'transpose')
    assert RECIPES['improved'] and opt.upsample == 'transpose'
    assert all(getattr(opt, key) == value for key, value in RECIPES['improved'].items() if key != 'upsample')
    # Its --ema_bn_images is harmless where there is no batch norm (typed, it is an error: test_weight_average).
    assert parse('--recipe', 'improved', '--norm', 'instance').ema_bn_images == RECIPES['improved']['ema_bn_images']
    default, reference = vars(parse('--seed', 0)), vars(parse('--seed', 0, '--recipe', 'reference'))
    assert {k: v for k, v in reference.items() if k != 'recipe'} == {k: v for k, v in default.items() if k != 'recipe'}


# ------------------------------------------------------------------------------------------------
# bf16, and test.py without the flags

EVERY_OPTION = ['--netD', 'multiscale', '--n_layers_D', 2, '--lambda_feat', 10, '--gan_mode', 'hinge',
                '--spectral_norm_D', '--lr_D', 4e-4, '--upsample', 'resize', '--norm', 'instance']


@pytest.mark.parametrize('netG_flags', [[], ['--netG', 'local', '--n_downsample_global', 2, '--n_blocks_global', 1,
                                             '--n_blocks_local', 1]], ids=['unet', 'local'])
def test_bf16_takes_the_float32_step_within_rounding(vgg_weights, netG_flags):
    def one_step(amp):
        torch.manual_seed(0)
        with contextlib.redirect_stderr(io.StringIO()):  # this CPU may warn that it emulates bfloat16
            opt = parse(*EVERY_OPTION, *netG_flags, '--lambda_vgg', 10, '--vgg_weights', vgg_weights, '--amp', amp,
                        '--device', 'cpu', '--batch_size', 2)
        model = model_for(opt)
        generator = torch.Generator().manual_seed(0)
        pair = [torch.rand(2, 3, 32, 32, generator=generator) * 2 - 1 for _ in range(2)]
        model.set_input({'A': pair[0], 'B': pair[1], 'A_paths': ['a', 'b'], 'B_paths': ['a', 'b']})
        model.optimize_parameters()
        return model

    fp32, bf16 = one_step('none'), one_step('bf16')
    losses = {k: v.item() for k, v in bf16.get_current_losses().items()}
    assert set(losses) == {'G_GAN', 'G_L1', 'D_real', 'D_fake', 'G_feat', 'G_VGG'}
    for name, value in fp32.get_current_losses().items():
        assert losses[name] == pytest.approx(value.item(), rel=0.03, abs=0.01), name
    # Weights, and spectral norm's vectors, stay float32.
    assert all(t.dtype == torch.float32 for net in (bf16.netG, bf16.netD) for t in net.state_dict().values())


@pytest.fixture(scope='module')
def hd_run(train_tiny):
    return train_tiny(*EVERY_OPTION, '--n_epochs', 1, '--n_epochs_decay', 0, '--seed', 0, '--print_freq', 2, name='hd')


def test_training_logs_the_new_losses_and_saves_the_architecture(hd_run):
    log = (hd_run.folder / 'loss_log.txt').read_text()
    assert 'G_feat: ' in log and 'D_real: ' in log
    D = torch.load(hd_run.folder / 'latest_net_D.pth', weights_only=True)
    assert 'scales.1.model.0.parametrizations.weight.0._v' in D and not any(k.startswith('scales.2') for k in D)
    G = torch.load(hd_run.folder / 'latest_net_G.pth', weights_only=True)
    assert G['model.model.3.weight'].shape == (3, 16, 3, 3)  # resize: the last upsampling is a 3x3 convolution


def test_test_py_needs_no_flags_with_or_without_architecture_json(runner, hd_run, tmp_path):
    def outputs(name):
        result = runner.run('test.py', '--dataroot', hd_run.data, '--checkpoints_dir', hd_run.checkpoints,
                            '--name', name, '--results_dir', tmp_path, '--eval')
        assert 'upsample: resize' in result.stdout
        folder = tmp_path / name / 'test_latest' / 'images'
        return {path.name: path.read_bytes() for path in sorted(folder.glob('*_fake_B.png'))}

    with_json = outputs('hd')
    bare = hd_run.checkpoints / 'hd_bare'
    bare.mkdir()
    os.link(hd_run.folder / 'latest_net_G.pth', bare / 'latest_net_G.pth')  # no architecture.json: inferred
    assert len(with_json) == 4 and outputs('hd_bare') == with_json
