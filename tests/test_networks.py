"""Generators, discriminators, losses, the gradient penalty and the learning-rate schedules."""
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

from models import networks
from training.plateau import Plateau

torch.set_num_threads(1)


@pytest.mark.parametrize('netG,size', [('unet_16', 16), ('unet_32', 32), ('unet_32', 64), ('unet_64', 64),
                                       ('unet_128', 128), ('resnet_6blocks', 32), ('resnet_9blocks', 36)])
@pytest.mark.parametrize('norm', ['batch', 'instance', 'none'])
def test_generators_map_images_to_images_in_tanh_range(netG, size, norm):
    torch.manual_seed(0)
    net = networks.define_G(3, 2, 4, netG, norm, use_dropout=True)
    x = torch.rand(2, 3, size, size) * 2 - 1
    y = net(x)
    assert y.shape == (2, 2, size, size)
    assert y.abs().max() <= 1 and y.std() > 0


def test_unet_depth_accepts_powers_of_two_only():
    assert networks.unet_depth('unet_256') == 8 and networks.unet_depth('unet_16') == 4
    for bad in ('unet_8', 'unet_100', 'unet_x'):
        with pytest.raises(ValueError, match='power of two'):
            networks.unet_depth(bad)


def test_unet_bottleneck_is_one_pixel():
    # A unet_N has log2(N) stride-2 levels, so an N x N image reaches 1 x 1 at the innermost block.
    net = networks.define_G(3, 3, 4, 'unet_64', 'batch')
    seen = {}
    innermost = [m for m in net.modules() if isinstance(m, networks.UnetSkipConnectionBlock)][-1]
    innermost.register_forward_hook(lambda m, i, o: seen.update(shape=i[0].shape))
    net.eval()(torch.zeros(1, 3, 64, 64))
    assert seen['shape'][-2:] == (2, 2)  # the innermost block's input; its downconv makes it 1x1


@pytest.mark.parametrize('netD,size,expected', [('basic', 64, 6), ('basic', 256, 30), ('n_layers', 64, 14),
                                                ('pixel', 32, 32)])
def test_discriminators_output_one_logit_per_patch(netD, size, expected):
    net = networks.define_D(6, 4, netD, n_layers_D=2, norm='batch')
    y = net(torch.randn(2, 6, size, size))
    assert y.shape == (2, 1, expected, expected)


def test_basic_discriminator_receptive_field_is_70_pixels():
    net = networks.define_D(3, 4, 'basic', norm='none', init_type='normal')
    x = torch.zeros(1, 3, 256, 256, requires_grad=True)
    net(x)[0, 0, 15, 15].backward()
    rows = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 3)) > 0)
    assert rows.max() - rows.min() + 1 == 70


def test_norm_layers_and_biases_follow_the_reference():
    batch = networks.define_G(3, 3, 4, 'unet_32', 'batch')
    instance = networks.define_G(3, 3, 4, 'unet_32', 'instance')
    assert any(isinstance(m, nn.BatchNorm2d) for m in batch.modules())
    assert batch.model.model[0].bias is None and instance.model.model[0].bias is not None
    assert not any(isinstance(m, nn.BatchNorm2d) for m in instance.modules())
    with pytest.raises(ValueError, match='not supported'):
        networks.get_norm_layer('group')


@pytest.mark.parametrize('init_type', networks.INIT_TYPES)
def test_init_types(init_type):
    torch.manual_seed(0)
    net = networks.init_weights(nn.Sequential(nn.Conv2d(64, 64, 3), nn.BatchNorm2d(64)), init_type, 0.02)
    conv, bn = net
    assert torch.all(conv.bias == 0) and torch.all(bn.bias == 0)
    fan_in = 64 * 9
    expected_std = {'normal': 0.02, 'xavier': 0.02 * math.sqrt(2 / (fan_in + 64 * 9)),
                    'kaiming': math.sqrt(2 / fan_in), 'orthogonal': None}[init_type]
    if expected_std:
        assert conv.weight.std().item() == pytest.approx(expected_std, rel=0.05)
    else:
        w = conv.weight.reshape(64, -1)
        assert torch.allclose(w @ w.T, torch.eye(64) * 0.02 ** 2, atol=1e-6)
    assert bn.weight.mean().item() == pytest.approx(1.0, abs=0.01)


def test_gan_losses_and_targets():
    logits = torch.tensor([[0.0, 2.0]])
    vanilla = networks.GANLoss('vanilla')
    assert vanilla(torch.zeros(3), True).item() == pytest.approx(math.log(2))
    assert vanilla(logits, False).item() == pytest.approx((math.log(2) + math.log(1 + math.exp(2))) / 2)
    lsgan = networks.GANLoss('lsgan')
    assert lsgan(logits, True).item() == pytest.approx((1 + 1) / 2)
    assert lsgan(logits, False).item() == pytest.approx((0 + 4) / 2)
    wgan = networks.GANLoss('wgangp')
    assert wgan(logits, True).item() == pytest.approx(-1.0) and wgan(logits, False).item() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        networks.GANLoss('relativistic')


def test_gradient_penalty_of_a_linear_critic_is_exact():
    # D(x) = w.x has gradient w everywhere, so the penalty is lambda * (||w|| - 1)^2 for any samples.
    netD = nn.Linear(12, 1, bias=False)
    with torch.no_grad():
        netD.weight.fill_(0.5)
    critic = lambda x: netD(x.reshape(x.shape[0], -1))
    real, fake = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    gp = networks.gradient_penalty(critic, real, fake, lambda_gp=10.0)
    assert gp.item() == pytest.approx(10.0 * (math.sqrt(12 * 0.25) - 1) ** 2, rel=1e-5)
    gp.backward()  # differentiable with respect to D's weights, so it trains the critic
    assert netD.weight.grad.abs().sum() > 0


def lr_sequence(policy, epochs, metrics=None, **opts):
    opt = SimpleNamespace(**{'lr_policy': policy, 'epoch_count': 1, 'n_epochs': 4, 'n_epochs_decay': 4,
                             'lr_decay_iters': 2, 'plateau_on': 'train', **opts})
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    # The mode train.py gives it: what the Plateau decides for a model with a plateau loss.
    scheduler = networks.get_scheduler(optimizer, opt, Plateau(opt, SimpleNamespace(plateau_loss='G_L1')).mode)
    lrs = []
    for epoch in range(epochs):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        scheduler.step(metrics[epoch]) if metrics else scheduler.step()
    return lrs


def test_lr_policies():
    assert lr_sequence('linear', 8) == pytest.approx([1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2])
    assert lr_sequence('step', 6) == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    cosine = lr_sequence('cosine', 5)
    assert cosine == pytest.approx([(1 + math.cos(math.pi * e / 4)) / 2 for e in range(5)])
    # plateau: a metric that stops improving cuts the rate by 5 after 5 stale epochs.
    plateau = lr_sequence('plateau', 9, metrics=[1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    assert plateau[:7] == [1.0] * 7 and plateau[8] == pytest.approx(0.2)
    # Following a validation score that rises when G improves (PSNR, SSIM): a rise is progress, a fall is not.
    rising = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    assert lr_sequence('plateau', 9, metrics=rising, plateau_on='val', val_metric='psnr') == [1.0] * 9
    assert lr_sequence('plateau', 9, metrics=rising, plateau_on='val', val_metric='l1')[8] == pytest.approx(0.2)
    assert lr_sequence('plateau', 9, metrics=[-x for x in rising], plateau_on='val', val_metric='ssim')[8] == \
        pytest.approx(0.2)
    with pytest.raises(ValueError):
        lr_sequence('exp', 1)
