"""Generators, discriminators, losses and schedules of pix2pix.

Module nesting and parameter order follow the reference implementation exactly, so that its
state_dicts (``model.model.1.model.3...`` for the U-Net) load here with strict=True.
"""
import functools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim import lr_scheduler


class Identity(nn.Module):
    def forward(self, x):
        return x


NORMS = ('batch', 'instance', 'none', 'syncbatch')


def get_norm_layer(norm_type='instance'):
    """Return a constructor ``norm_layer(num_features)``.

    Instance norm has no affine parameters and no running statistics, as in the reference,
    so its checkpoints hold no norm keys.
    """
    if norm_type == 'batch':
        return functools.partial(BatchNorm2d, affine=True, track_running_stats=True)
    if norm_type == 'syncbatch':
        return functools.partial(SyncBatchNorm, affine=True, track_running_stats=True)
    if norm_type == 'instance':
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if norm_type == 'none':
        return lambda num_features: Identity()
    raise ValueError(f'normalization layer [{norm_type}] is not supported; choose from {", ".join(NORMS)}')


class EachImageStatistics:
    """Batch norm (same parameters, same checkpoints) that can take its training-mode statistics per
    image: with each_image set, every image is normalised as a batch of one would be. test.py sets it, so
    that the paper's train-mode testing gives each image the same output whatever --batch_size groups it
    with (running statistics are then left as they are)."""
    each_image = False
    gathered = None  # models/tiling.py: statistics over a whole image's tiles

    def forward(self, x):
        if self.training and self.each_image:
            if self.gathered is not None:
                return self.gathered.normalise(self, x)
            return F.instance_norm(x, weight=self.weight, bias=self.bias, use_input_stats=True, eps=self.eps)
        return super().forward(x)


class BatchNorm2d(EachImageStatistics, nn.BatchNorm2d):
    pass


class SyncBatchNorm(EachImageStatistics, nn.SyncBatchNorm):
    pass


def normalize_each_image(net, each_image=True):
    for module in net.modules():
        if isinstance(module, EachImageStatistics):
            module.each_image = each_image


def set_test_mode(net, mode, dropout=True):
    """Put a generator in a test mode. paper (test.py's default, the paper's): batch norm normalises each
    image with its own statistics, which leaves the running ones as training made them, and dropout stays on
    unless dropout=False (export.py, for a deterministic program). eval (test.py --eval): batch norm's
    running statistics, dropout off. set_training_mode(net) undoes either."""
    if mode == 'eval':
        net.eval()
        return
    net.train(dropout)
    normalize_each_image(net)
    for module in net.modules():
        if isinstance(module, EachImageStatistics):
            module.train()  # each image's own statistics apply in training mode only


def set_training_mode(net):
    net.train()
    normalize_each_image(net, False)


def cast_convolutions(net, dtype):
    """Store the convolutions' weights and biases in dtype. For inference under autocast to that dtype,
    which would otherwise cast every weight again on every forward pass; the outputs stay the same up to
    the dtype's rounding. Normalisation layers keep float32, as autocast leaves them."""
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            module.to(dtype)


def uses_bias(norm_layer):
    # The reference gives convolutions a bias only before instance norm: batch norm's own shift
    # makes a bias redundant, and (a quirk kept for checkpoint compatibility) 'none' has none either.
    func = norm_layer.func if isinstance(norm_layer, functools.partial) else norm_layer
    return func is nn.InstanceNorm2d


# ----------------------------------------------------------------------------------------------
# Learning-rate schedules

LR_POLICIES = ('linear', 'step', 'plateau', 'cosine')


def get_scheduler(optimizer, opt, plateau_mode='min'):
    """linear: constant for n_epochs, then linear decay to zero over n_epochs_decay epochs.
    step: x0.1 every lr_decay_iters epochs. plateau: x0.2 when the metric passed to step() stalls: stops
    falling, or with plateau_mode 'max' (a validation score that rises as G improves) stops rising.
    cosine: cosine annealing to zero over n_epochs."""
    if opt.lr_policy == 'linear':
        def lambda_rule(epoch):
            return 1.0 - max(0, epoch + opt.epoch_count - opt.n_epochs) / float(opt.n_epochs_decay + 1)
        return lr_scheduler.LambdaLR(optimizer, lr_lambda=lambda_rule)
    if opt.lr_policy == 'step':
        return lr_scheduler.StepLR(optimizer, step_size=opt.lr_decay_iters, gamma=0.1)
    if opt.lr_policy == 'plateau':
        return lr_scheduler.ReduceLROnPlateau(optimizer, mode=plateau_mode, factor=0.2,
                                              threshold=0.01, patience=5)
    if opt.lr_policy == 'cosine':
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=opt.n_epochs, eta_min=0)
    raise ValueError(f'learning rate policy [{opt.lr_policy}] is not implemented; choose from {", ".join(LR_POLICIES)}')


# ----------------------------------------------------------------------------------------------
# Initialisation

INIT_TYPES = ('normal', 'xavier', 'kaiming', 'orthogonal')


def init_weights(net, init_type='normal', init_gain=0.02):
    def init_func(m):
        classname = m.__class__.__name__
        if hasattr(m, 'weight') and m.weight is not None and ('Conv' in classname or 'Linear' in classname):
            if init_type == 'normal':
                nn.init.normal_(m.weight, 0.0, init_gain)
            elif init_type == 'xavier':
                nn.init.xavier_normal_(m.weight, gain=init_gain)
            elif init_type == 'kaiming':
                nn.init.kaiming_normal_(m.weight, a=0, mode='fan_in')
            elif init_type == 'orthogonal':
                nn.init.orthogonal_(m.weight, gain=init_gain)
            else:
                raise ValueError(f'initialization method [{init_type}] is not implemented; choose from {", ".join(INIT_TYPES)}')
            if getattr(m, 'bias', None) is not None:
                nn.init.constant_(m.bias, 0.0)
        elif 'BatchNorm2d' in classname and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, init_gain)
            nn.init.constant_(m.bias, 0.0)

    net.apply(init_func)
    return net


# ----------------------------------------------------------------------------------------------
# Generators

def unet_depth(netG):
    """'unet_256' -> 8 downsamplings; any power of two >= 16 is accepted."""
    size = netG[len('unet_'):]
    if not size.isdigit() or int(size) < 16 or int(size) & (int(size) - 1):
        raise ValueError(f'generator [{netG}]: unet_N needs N a power of two >= 16 (unet_128, unet_256, ...)')
    return int(math.log2(int(size)))


def resnet_blocks(netG):
    blocks = netG[len('resnet_'):-len('blocks')]
    if not (netG.startswith('resnet_') and netG.endswith('blocks') and blocks.isdigit() and int(blocks) > 0):
        raise ValueError(f'generator [{netG}]: expected resnet_Nblocks such as resnet_6blocks or resnet_9blocks')
    return int(blocks)


UPSAMPLES = ('transpose', 'resize')
COARSE_TO_FINE = ('global', 'local')  # pix2pixHD's generators (Wang et al. 2018)


def size_multiple(netG, n_downsample_global, n_local_enhancers):
    """The multiple of which a generator's input sides must be: every stride-2 level halves them."""
    if netG.startswith('unet_'):
        return 2 ** unet_depth(netG)
    if netG == 'global':
        return 2 ** n_downsample_global
    if netG == 'local':
        return 2 ** (n_downsample_global + n_local_enhancers)
    return 4


def define_G(input_nc, output_nc, ngf, netG, norm='batch', use_dropout=False, init_type='normal', init_gain=0.02,
             upsample='transpose', n_downsample_global=4, n_blocks_global=9, n_local_enhancers=1, n_blocks_local=3):
    """upsample: 'transpose' (the reference's transposed convolutions) or 'resize' (UpsampleConv2d).
    n_downsample_global, n_blocks_global: --netG global and local (pix2pixHD's G1); n_local_enhancers,
    n_blocks_local: --netG local. Their defaults are pix2pixHD's."""
    norm_layer = get_norm_layer(norm)
    if upsample not in UPSAMPLES:
        raise ValueError(f'upsampling [{upsample}] is not implemented; choose from {", ".join(UPSAMPLES)}')
    if netG.startswith('unet_'):
        net = UnetGenerator(input_nc, output_nc, unet_depth(netG), ngf, norm_layer=norm_layer, use_dropout=use_dropout,
                            upsample=upsample)
    elif netG.startswith('resnet_'):
        net = ResnetGenerator(input_nc, output_nc, ngf, norm_layer=norm_layer, use_dropout=use_dropout,
                              n_blocks=resnet_blocks(netG), upsample=upsample)
    elif netG == 'global':
        net = GlobalGenerator(input_nc, output_nc, ngf, n_downsample_global, n_blocks_global, norm_layer=norm_layer,
                              use_dropout=use_dropout, upsample=upsample)
    elif netG == 'local':
        net = LocalEnhancer(input_nc, output_nc, ngf, n_downsample_global, n_blocks_global, n_local_enhancers,
                            n_blocks_local, norm_layer=norm_layer, use_dropout=use_dropout, upsample=upsample)
    else:
        raise ValueError(f'generator [{netG}] is not recognized; choose unet_128, unet_256 (unet_N, N a power '
                         f'of two >= 16), resnet_6blocks, resnet_9blocks, global or local')
    # init_type None keeps torch's default initialisation: for a network whose weights are loaded next.
    return init_weights(net, init_type, init_gain) if init_type else net


# The layers both the ResNet generator and pix2pixHD's generators are made of, as lists for nn.Sequential.

def first_layers(input_nc, ngf, norm_layer, use_bias):
    """7x7 convolution to ngf channels (reflection-padded, so the size stays), norm, ReLU."""
    return [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=use_bias),
            norm_layer(ngf), nn.ReLU(True)]


def down_layers(in_nc, out_nc, norm_layer, use_bias):
    """Halve the size: a 3x3 convolution of stride 2, norm, ReLU."""
    return [nn.Conv2d(in_nc, out_nc, kernel_size=3, stride=2, padding=1, bias=use_bias), norm_layer(out_nc),
            nn.ReLU(True)]


def up_layers(in_nc, out_nc, norm_layer, use_bias, upsample):
    """Double the size: a 3x3 transposed convolution of stride 2 (or --upsample resize's UpsampleConv2d), norm, ReLU."""
    if upsample == 'resize':
        up = UpsampleConv2d(in_nc, out_nc, kernel_size=3, padding=1, bias=use_bias)
    else:
        up = nn.ConvTranspose2d(in_nc, out_nc, kernel_size=3, stride=2, padding=1, output_padding=1, bias=use_bias)
    return [up, norm_layer(out_nc), nn.ReLU(True)]


def last_layers(ngf, output_nc):
    """7x7 convolution to the output's channels, tanh: images in [-1, 1]."""
    return [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]


class ResnetGenerator(nn.Module):
    """n_downsampling stride-2 downsamplings (2: Johnson et al.'s, the reference's), n_blocks residual
    blocks, as many upsamplings."""

    def __init__(self, input_nc, output_nc, ngf=64, norm_layer=nn.BatchNorm2d, use_dropout=False, n_blocks=6,
                 padding_type='reflect', upsample='transpose', n_downsampling=2):
        super().__init__()
        use_bias = uses_bias(norm_layer)
        model = first_layers(input_nc, ngf, norm_layer, use_bias)
        for i in range(n_downsampling):
            model += down_layers(ngf * 2 ** i, ngf * 2 ** (i + 1), norm_layer, use_bias)
        mult = 2 ** n_downsampling
        for _ in range(n_blocks):
            model += [ResnetBlock(ngf * mult, padding_type, norm_layer, use_dropout, use_bias)]
        for i in range(n_downsampling, 0, -1):
            model += up_layers(ngf * 2 ** i, ngf * 2 ** (i - 1), norm_layer, use_bias, upsample)
        model += last_layers(ngf, output_nc)
        self.model = nn.Sequential(*model)

    def forward(self, x):
        return self.model(x)


class GlobalGenerator(ResnetGenerator):
    """pix2pixHD's global generator G1: the ResNet generator with n_downsampling (pix2pixHD: 4) stride-2
    levels, so that its residual blocks see a larger part of the image. Same module layout as pix2pixHD's
    (model.0 the padding, model.1 the first convolution, ...)."""

    def __init__(self, input_nc, output_nc, ngf=64, n_downsampling=4, n_blocks=9, norm_layer=nn.BatchNorm2d,
                 use_dropout=False, upsample='transpose'):
        super().__init__(input_nc, output_nc, ngf, norm_layer, use_dropout, n_blocks, upsample=upsample,
                         n_downsampling=n_downsampling)


class LocalEnhancer(nn.Module):
    """pix2pixHD's coarse-to-fine generator: a global generator of ngf * 2^N filters works on the input
    average-pooled N times, without its last layers (model: it gives features); then enhancer n = 1..N
    (model{n}_1, model{n}_2), at ngf * 2^(N-n) filters, adds its downsampled view of the input pooled N-n
    times to the coarser level's features and upsamples the sum x2. The finest one ends in the 7x7
    convolution and tanh. A trained global generator loads into model (load_global)."""

    def __init__(self, input_nc, output_nc, ngf=32, n_downsample_global=4, n_blocks_global=9, n_local_enhancers=1,
                 n_blocks_local=3, norm_layer=nn.BatchNorm2d, use_dropout=False, upsample='transpose'):
        super().__init__()
        self.n_local_enhancers = n_local_enhancers
        use_bias = uses_bias(norm_layer)
        model_global = GlobalGenerator(input_nc, output_nc, ngf * 2 ** n_local_enhancers, n_downsample_global,
                                       n_blocks_global, norm_layer, use_dropout, upsample).model
        self.model = nn.Sequential(*model_global[:-3])  # without the last pad, convolution and tanh
        for n in range(1, n_local_enhancers + 1):
            ngf_n = ngf * 2 ** (n_local_enhancers - n)
            model_downsample = (first_layers(input_nc, ngf_n, norm_layer, use_bias) +
                                down_layers(ngf_n, ngf_n * 2, norm_layer, use_bias))
            model_upsample = [ResnetBlock(ngf_n * 2, 'reflect', norm_layer, use_dropout, use_bias)
                              for _ in range(n_blocks_local)]
            model_upsample += up_layers(ngf_n * 2, ngf_n, norm_layer, use_bias, upsample)
            if n == n_local_enhancers:
                model_upsample += last_layers(ngf, output_nc)
            setattr(self, f'model{n}_1', nn.Sequential(*model_downsample))
            setattr(self, f'model{n}_2', nn.Sequential(*model_upsample))
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x):
        inputs = [x]  # the input at full size, pooled once, ..., pooled N times
        for _ in range(self.n_local_enhancers):
            inputs.append(self.downsample(inputs[-1]))
        features = self.model(inputs[-1])
        for n in range(1, self.n_local_enhancers + 1):
            downsampled = getattr(self, f'model{n}_1')(inputs[self.n_local_enhancers - n])
            features = getattr(self, f'model{n}_2')(downsampled + features)
        return features

    def load_global(self, state):
        """Load a trained global generator's state_dict (of ngf * 2^N filters) into model, all but its last
        convolution; torch's RuntimeError when the file is of another architecture."""
        kept = {}
        for key, value in state.items():
            top, index, rest = (key.split('.', 2) + ['', ''])[:3]
            if top == 'model' and index.isdigit() and int(index) < len(self.model):
                kept[f'{index}.{rest}'] = value
        self.model.load_state_dict(kept, strict=True)


class ResnetBlock(nn.Module):
    """x + conv(norm(relu(conv(norm(x)))))."""

    def __init__(self, dim, padding_type, norm_layer, use_dropout, use_bias):
        super().__init__()
        pads = {'reflect': nn.ReflectionPad2d, 'replicate': nn.ReplicationPad2d}
        if padding_type not in pads and padding_type != 'zero':
            raise ValueError(f'padding [{padding_type}] is not implemented')

        def conv_with_padding():
            if padding_type == 'zero':
                return [nn.Conv2d(dim, dim, kernel_size=3, padding=1, bias=use_bias)]
            return [pads[padding_type](1), nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=use_bias)]

        block = conv_with_padding() + [norm_layer(dim), nn.ReLU(True)]
        if use_dropout:
            block += [nn.Dropout(0.5)]
        block += conv_with_padding() + [norm_layer(dim)]
        self.conv_block = nn.Sequential(*block)

    def forward(self, x):
        return x + self.conv_block(x)


# On the CPU, a convolution with at most this many output positions (batch x height x width; input
# positions for a transposed one) runs faster as one matrix product than through oneDNN, which re-lays
# out the weights on every call: at the U-Net's inner levels (512 channels, 1x1 to 8x8 pixels) that
# re-layout costs several times the arithmetic (docs/performance.md has the measurements).
MATMUL_MAX_POSITIONS = 128
exporting = getattr(torch.compiler, 'is_exporting', lambda: False)  # torch 2.7 has it; export.py needs it


def computes_as_matmul(conv, x, positions):
    # Never in an exported graph (export.py): it must hold for every image size, so it cannot branch on one,
    # and ONNX Runtime picks its own convolution kernels.
    if exporting():
        return False
    return (x.device.type == 'cpu' and positions <= MATMUL_MAX_POSITIONS and conv.groups == 1
            and conv.padding_mode == 'zeros' and not isinstance(conv.padding, str))


def with_bias(out, bias):
    """out + bias per channel, in out's dtype (bfloat16 under --amp, as oneDNN's convolutions give)."""
    return out if bias is None else out + bias.to(out.dtype).view(-1, 1, 1)


class Conv2d(nn.Conv2d):
    """nn.Conv2d (same parameters, same checkpoints) that computes small outputs as unfold + matmul."""

    def forward(self, x):
        n, _, h, w = x.shape
        out_h, out_w = (
            (size + 2 * p - d * (k - 1) - 1) // s + 1
            for size, k, s, p, d in zip((h, w), self.kernel_size, self.stride, self.padding, self.dilation))
        if not computes_as_matmul(self, x, n * out_h * out_w):
            return super().forward(x)
        columns = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)  # n, c*kh*kw, positions
        out = (self.weight.flatten(1) @ columns).view(n, self.out_channels, out_h, out_w)
        return with_bias(out, self.bias)


class ConvTranspose2d(nn.ConvTranspose2d):
    """nn.ConvTranspose2d (same parameters, same checkpoints) that computes small inputs as matmul + fold."""

    def forward(self, x, output_size=None):
        n, _, h, w = x.shape
        if output_size is not None or not computes_as_matmul(self, x, n * h * w):
            return super().forward(x, output_size)
        out_h, out_w = (
            (size - 1) * s - 2 * p + d * (k - 1) + op + 1
            for size, k, s, p, d, op in zip((h, w), self.kernel_size, self.stride, self.padding, self.dilation,
                                            self.output_padding))
        # (x^T W)^T rather than W^T x: --amp then casts the weight as stored, not a transposed (slow) view of it.
        columns = (x.flatten(2).transpose(1, 2) @ self.weight.flatten(1)).transpose(1, 2)  # n, out*kh*kw, h*w
        out = F.fold(columns, (out_h, out_w), self.kernel_size, self.dilation, self.padding, self.stride)
        return with_bias(out, self.bias)


class UpsampleConv2d(Conv2d):
    """--upsample resize: nearest-neighbour x2, then a 3x3 convolution with padding 1 (Odena et al. 2016,
    "Deconvolution and checkerboard artifacts"). A stride-2 transposed convolution gives alternate output
    pixels different kernel taps, which draws a checkerboard; here every output pixel sees the same taps.

    Computed as what it equals, a 4x4 transposed convolution of stride 2 whose taps are sums of the 3x3
    ones (resize_kernel): 2.25x fewer multiplications than convolving the enlarged image. Small images (the
    U-Net's inner levels on the CPU) are enlarged and convolved as one matrix product instead: there the
    weights are far larger than the image, and summing them would cost more than the product."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Along one axis of the enlarged image, output pixel 2i is x[i-1] w0 + x[i] (w1 + w2) and 2i+1 is
        # x[i] (w0 + w1) + x[i+1] w2: a transposed convolution of stride 2 and padding 1 gives them its taps 3, 1
        # and 2, 0. Row k says which of w0, w1, w2 tap k sums; over both axes, a (9, 16) matrix. Not saved.
        taps = torch.tensor([[0.0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]])
        self.register_buffer('taps', torch.kron(taps, taps).T.contiguous(), persistent=False)

    def forward(self, x):
        n, _, h, w = x.shape
        if computes_as_matmul(self, x, 4 * n * h * w):
            return super().forward(F.interpolate(x, scale_factor=2, mode='nearest'))
        return F.conv_transpose2d(x, self.transposed_kernel(), self.bias, stride=2, padding=1)

    def transposed_kernel(self):
        """(in, out, 4, 4): the 4x4 taps, each the sum of the 3x3 taps it stands for."""
        out_nc, in_nc = self.weight.shape[:2]
        flat = self.weight.reshape(out_nc, in_nc, 9).transpose(0, 1)
        return torch.matmul(flat, self.taps.to(flat.dtype)).view(in_nc, out_nc, 4, 4)


class UnetGenerator(nn.Module):
    """U-Net with num_downs stride-2 levels; a 2^num_downs image shrinks to 1x1 at the bottleneck.

    Level i has ngf * min(2^i, 8) channels, as in the reference (whose unet_128/unet_256 need at least
    five levels); inner levels at ngf*8 that are not the bottleneck get dropout.
    """

    def __init__(self, input_nc, output_nc, num_downs, ngf=64, norm_layer=nn.BatchNorm2d, use_dropout=False,
                 upsample='transpose'):
        super().__init__()
        channels = [ngf * min(2 ** level, 8) for level in range(num_downs)]
        block = UnetSkipConnectionBlock(channels[-2], channels[-1], norm_layer=norm_layer, innermost=True,
                                        upsample=upsample)
        for level in range(num_downs - 2, 0, -1):
            outer, inner = channels[level - 1], channels[level]
            block = UnetSkipConnectionBlock(outer, inner, submodule=block, norm_layer=norm_layer,
                                            use_dropout=use_dropout and outer == inner == ngf * 8, upsample=upsample)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True,
                                             norm_layer=norm_layer, upsample=upsample)

    def forward(self, x):
        return self.model(x)


class UnetSkipConnectionBlock(nn.Module):
    """down -> submodule -> up, with the block's input concatenated to its output (except outermost)."""

    def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None, outermost=False, innermost=False,
                 norm_layer=nn.BatchNorm2d, use_dropout=False, upsample='transpose'):
        super().__init__()

        def up(in_nc, out_nc, bias=True):  # x2: the reference's 4x4 transposed convolution, or nearest x2 + 3x3
            if upsample == 'resize':
                return UpsampleConv2d(in_nc, out_nc, kernel_size=3, padding=1, bias=bias)
            return ConvTranspose2d(in_nc, out_nc, kernel_size=4, stride=2, padding=1, bias=bias)

        self.outermost = outermost
        use_bias = uses_bias(norm_layer)
        if input_nc is None:
            input_nc = outer_nc
        downconv = Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
        downrelu = nn.LeakyReLU(0.2, True)
        uprelu = nn.ReLU(True)
        if outermost:
            upconv = up(inner_nc * 2, outer_nc)
            model = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = up(inner_nc, outer_nc, use_bias)
            model = [downrelu, downconv, uprelu, upconv, norm_layer(outer_nc)]
        else:
            upconv = up(inner_nc * 2, outer_nc, use_bias)
            model = [downrelu, downconv, norm_layer(inner_nc), submodule, uprelu, upconv, norm_layer(outer_nc)]
            if use_dropout:
                model += [nn.Dropout(0.5)]
        self.model = nn.Sequential(*model)

    def forward(self, x):
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


# ----------------------------------------------------------------------------------------------
# Discriminators

def define_D(input_nc, ndf, netD, n_layers_D=3, norm='batch', init_type='normal', init_gain=0.02):
    norm_layer = get_norm_layer(norm)
    if netD == 'basic':
        net = NLayerDiscriminator(input_nc, ndf, n_layers=3, norm_layer=norm_layer)
    elif netD == 'n_layers':
        net = NLayerDiscriminator(input_nc, ndf, n_layers_D, norm_layer=norm_layer)
    elif netD == 'pixel':
        net = PixelDiscriminator(input_nc, ndf, norm_layer=norm_layer)
    else:
        raise ValueError(f'discriminator [{netD}] is not recognized; choose basic, n_layers or pixel')
    return init_weights(net, init_type, init_gain)


class NLayerDiscriminator(nn.Module):
    """PatchGAN: each output value judges one overlapping patch (70x70 for n_layers=3)."""

    def __init__(self, input_nc, ndf=64, n_layers=3, norm_layer=nn.BatchNorm2d):
        super().__init__()
        use_bias = uses_bias(norm_layer)
        sequence = [nn.Conv2d(input_nc, ndf, kernel_size=4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        nf_mult = 1
        for n in range(1, n_layers + 1):
            nf_mult_prev, nf_mult = nf_mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            sequence += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=4, stride=stride, padding=1,
                                   bias=use_bias),
                         norm_layer(ndf * nf_mult),
                         nn.LeakyReLU(0.2, True)]
        sequence += [nn.Conv2d(ndf * nf_mult, 1, kernel_size=4, stride=1, padding=1)]
        self.model = nn.Sequential(*sequence)

    def forward(self, x, layers=False):
        return layer_outputs(self.model, x) if layers else self.model(x)


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN: judges every pixel on its own (colour, not structure)."""

    def __init__(self, input_nc, ndf=64, norm_layer=nn.BatchNorm2d):
        super().__init__()
        use_bias = uses_bias(norm_layer)
        self.net = nn.Sequential(
            nn.Conv2d(input_nc, ndf, kernel_size=1, stride=1, padding=0),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, kernel_size=1, stride=1, padding=0, bias=use_bias),
            norm_layer(ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, kernel_size=1, stride=1, padding=0, bias=use_bias))

    def forward(self, x, layers=False):
        return layer_outputs(self.net, x) if layers else self.net(x)


def layer_outputs(sequence, x):
    """D(x, layers=True): the output of each of D's layers (conv, norm, activation: pix2pixHD's grouping, for
    feature matching), the last being the prediction that D(x) returns."""
    outputs = []
    for module in sequence:
        x = module(x)
        if isinstance(module, nn.LeakyReLU):
            outputs.append(x)
    return outputs + [x]


# ----------------------------------------------------------------------------------------------
# Losses

GAN_MODES = ('vanilla', 'lsgan', 'wgangp', 'hinge')


class GANLoss(nn.Module):
    """vanilla: cross-entropy on logits; lsgan: least squares; wgangp: the Wasserstein critic's -D(real) / D(fake);
    hinge (SPADE, Lim & Ye 2017): D minimises relu(1 - D(real)) + relu(1 + D(fake)), G minimises -D(fake).
    Only hinge treats D's and G's losses differently; for_discriminator=False asks for G's.
    A multi-scale D's predictions come as a list, one per scale: the loss is their mean (as SPADE's code;
    pix2pixHD sums them), so --lambda_GAN weighs the same against --lambda_L1 whatever --num_D."""

    def __init__(self, gan_mode, target_real_label=1.0, target_fake_label=0.0):
        super().__init__()
        self.register_buffer('real_label', torch.tensor(target_real_label))
        self.register_buffer('fake_label', torch.tensor(target_fake_label))
        self.gan_mode = gan_mode
        if gan_mode == 'lsgan':
            self.loss = nn.MSELoss()
        elif gan_mode == 'vanilla':
            self.loss = nn.BCEWithLogitsLoss()
        elif gan_mode in ('wgangp', 'hinge'):
            self.loss = None
        else:
            raise ValueError(f'gan mode [{gan_mode}] is not implemented; choose from {", ".join(GAN_MODES)}')

    def get_target_tensor(self, prediction, target_is_real):
        target = self.real_label if target_is_real else self.fake_label
        return target.to(prediction.dtype).expand_as(prediction)

    def forward(self, prediction, target_is_real, for_discriminator=True):
        if isinstance(prediction, list):
            return sum(self(p, target_is_real, for_discriminator) for p in prediction) / len(prediction)
        prediction = prediction.float()  # D may run in bfloat16/float16 (--amp); the loss is taken in float32
        if self.gan_mode == 'hinge' and for_discriminator:
            return F.relu(1 - prediction).mean() if target_is_real else F.relu(1 + prediction).mean()
        if self.gan_mode in ('wgangp', 'hinge'):
            return -prediction.mean() if target_is_real else prediction.mean()
        return self.loss(prediction, self.get_target_tensor(prediction, target_is_real))


def gradient_penalty(netD, real_data, fake_data, lambda_gp=10.0, constant=1.0):
    """WGAN-GP (Gulrajani et al.): lambda * (||grad D(x_hat)|| - 1)^2 at random points between real and fake."""
    alpha = torch.rand(real_data.shape[0], 1, 1, 1, device=real_data.device, dtype=real_data.dtype)
    interpolates = (alpha * real_data.detach() + (1 - alpha) * fake_data.detach()).requires_grad_(True)
    disc_interpolates = netD(interpolates)
    if not isinstance(disc_interpolates, list):
        disc_interpolates = [disc_interpolates]  # a multi-scale D: the gradient of the sum over its scales
    gradients, = torch.autograd.grad(outputs=disc_interpolates, inputs=interpolates,
                                     grad_outputs=[torch.ones_like(d) for d in disc_interpolates],
                                     create_graph=True, retain_graph=True)
    gradients = gradients.reshape(real_data.shape[0], -1)
    return (((gradients + 1e-16).norm(2, dim=1) - constant) ** 2).mean() * lambda_gp
