"""Speed of pix2pix training and testing, measured in one process (docs/performance.md has the figures).

    python scripts/benchmark.py                     # CPU (and CUDA if present): fp32 and bf16, all settings
    python scripts/benchmark.py --quick             # the paper's setting only, a few iterations (CI)
    python scripts/benchmark.py --channels_last --compile --json results.json
    python scripts/benchmark.py --sizes 128 --batch_sizes 1 --amp none --options all   # each training option's cost
    python scripts/benchmark.py --sizes 128 --batch_sizes 1 --variant 'hd=--netD multiscale --lambda_feat 10'

For each device and setting (the paper's 256x256 at batch 1, then batch 4 and 16 at 256, and image sizes
128 and 512 at batch 1) it builds the pix2pix model once per variant and times, round by round, one
training iteration (optimize_parameters: G forward, D step, G step) of every variant in turn, so that a
machine busy with other work slows them all alike; medians are reported. Test speed is model.test(), the
generator's forward pass under inference_mode, run on the training model; test.py's own preparation of
its generator (bf16 weights stored once under --amp, about 14% faster) is not in it, and test.py is timed
end to end in docs/performance.md. The data are random tensors: loading is timed apart (--dataroot) as
images per second of the DataLoader, to compare with the training rate.

Variants: 'baseline' runs as the reference implementation does (every convolution through oneDNN,
torch's default for-loop Adam, glibc's default allocator settings); 'fp32' is this implementation's default; then --amp bf16 and the
--channels_last / --compile variants asked for; then, in the first precision of --amp, the training options
of pix2pixHD and SPADE asked for with --options (each alone, and --recipe improved) and any --variant of
train.py flags. A training iteration is what train.py runs per step: optimize_parameters() and the weight
average's update_averages(). GFLOP/s come from torch's FLOP counter for one training iteration, and sit
next to the device's matmul peak measured here, in float32 and bfloat16.
"""
import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import shlex
import sys
import tempfile
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from models import create_model, networks, perceptual  # noqa: E402  (after the path is set)
from options.train_options import TrainOptions  # noqa: E402
from util.devices import keep_freed_memory  # noqa: E402

PAPER_SIZE = 256
# --options: pix2pixHD's and SPADE's training options one at a time (--lr_D costs nothing), and the recipe.
OPTION_VARIANTS = {
    'multiscale': ['--netD', 'multiscale'],
    'feat': ['--lambda_feat', '10'],
    'multiscale+feat': ['--netD', 'multiscale', '--lambda_feat', '10'],
    'hinge': ['--gan_mode', 'hinge'],
    'spectral': ['--spectral_norm_D'],
    'resize': ['--upsample', 'resize'],
    'vgg': ['--lambda_vgg', '10'],
    'ema': ['--ema_decay', '0.999'],
    'recipe': ['--recipe', 'improved'],
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--devices', default=None, help='cpu,cuda (default: cpu, and cuda when present)')
    parser.add_argument('--amp', default='none,bf16', help='precisions to time: none (fp32), bf16, fp16 (CUDA)')
    parser.add_argument('--channels_last', action='store_true', help='also time each precision with --channels_last')
    parser.add_argument('--compile', action='store_true',
                        help='also time each precision with --compile (its warm-up is reported apart)')
    parser.add_argument('--compile_modes', default='default',
                        help="with --compile, torch.compile's modes to time, e.g. default,reduce-overhead (CUDA graphs)")
    parser.add_argument('--no_baseline', action='store_true', help="don't time the reference's arithmetic")
    parser.add_argument('--options', default='',
                        help=f'training options to time, in the first --amp precision: all, or some of '
                             f'{",".join(OPTION_VARIANTS)}')
    parser.add_argument('--variant', action='append', default=[], metavar="NAME='FLAGS'",
                        help='also time train.py with these flags, in the first --amp precision (repeatable)')
    parser.add_argument('--vgg_weights', default=None,
                        help='VGG19 weights for the vgg option; default: random ones (the time does not depend on them)')
    parser.add_argument('--sizes', default='128,256,512', help='image sizes, timed at batch 1')
    parser.add_argument('--batch_sizes', default='1,4,16', help=f'batch sizes, timed at {PAPER_SIZE}x{PAPER_SIZE}')
    parser.add_argument('--iters', type=int, default=None, help='timed iterations per variant (default 10, quick 3)')
    parser.add_argument('--warmup', type=int, default=None, help='untimed iterations first (default 2, quick 1)')
    parser.add_argument('--ngf', type=int, default=64)
    parser.add_argument('--ndf', type=int, default=64)
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: torch\'s)')
    parser.add_argument('--dataroot', default=None, help='also time the DataLoader on DATAROOT/train')
    parser.add_argument('--loader_kinds', default='', help=f'also time the DataLoader on generated data of these '
                                                            f'kinds: {",".join(LOADER_KINDS)}')
    parser.add_argument('--quick', action='store_true',
                        help=f'only {PAPER_SIZE}x{PAPER_SIZE} at batch 1, 1 warm-up and 3 timed iterations')
    parser.add_argument('--json', default=None, help='also write the results to this file')
    args = parser.parse_args(argv)
    if args.quick:
        explicit = set(a.split('=')[0] for a in (argv if argv is not None else sys.argv[1:]))
        args.sizes = args.sizes if '--sizes' in explicit else str(PAPER_SIZE)
        args.batch_sizes = args.batch_sizes if '--batch_sizes' in explicit else '1'
    args.iters = args.iters or (3 if args.quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    args.sizes = [int(s) for s in args.sizes.split(',')]
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(',')]
    args.amp = args.amp.split(',')
    args.compile_modes = args.compile_modes.split(',')
    unknown = set(filter(None, args.loader_kinds.split(','))) - set(LOADER_KINDS)
    if unknown:
        parser.error(f'--loader_kinds {",".join(sorted(unknown))}: choose from {",".join(LOADER_KINDS)}')
    names = list(OPTION_VARIANTS) if args.options == 'all' else [n for n in args.options.split(',') if n]
    unknown = [n for n in names if n not in OPTION_VARIANTS]
    if unknown:
        parser.error(f'--options {",".join(unknown)}: choose all, or from {", ".join(OPTION_VARIANTS)}')
    args.flag_variants = [(name, OPTION_VARIANTS[name]) for name in names]
    for variant in args.variant:
        name, _, flags = variant.partition('=')
        args.flag_variants.append((name, shlex.split(flags)))
    if args.devices is None:
        args.devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
    else:
        args.devices = args.devices.split(',')
    return args


def base_size(sizes):
    """The size the batch sizes are timed at and costs are compared with: the paper's, or the first."""
    return PAPER_SIZE if PAPER_SIZE in sizes else sizes[0]


def settings(args):
    """(size, batch): every size at batch 1, every batch size at base_size."""
    base = base_size(args.sizes)
    chosen = [(size, 1) for size in args.sizes] + [(base, batch) for batch in args.batch_sizes]
    return sorted(set(chosen), key=lambda s: (s[0] != base, s[0], s[1]))


def variants(args, device):
    """(name, amp, channels_last, compile, train.py flags) of each variant to time."""
    amps = [a for a in args.amp if not (a == 'fp16' and device == 'cpu')]
    chosen = [] if args.no_baseline else [('baseline', 'none', False, False, [])]
    for amp in amps:
        name = 'fp32' if amp == 'none' else amp
        chosen.append((name, amp, False, False, []))
        if args.channels_last:
            chosen.append((name + '+channels_last', amp, True, False, []))
        for mode in args.compile_modes if args.compile else ():
            chosen.append((name + ('+compile' if mode == 'default' else f'+{mode}'), amp, False, mode, []))
    amp = amps[0]
    chosen += [(f'{"fp32" if amp == "none" else amp}+{name}', amp, False, False, flags)
               for name, flags in args.flag_variants]
    return chosen


def build(device, size, batch, amp, channels_last, compiled, baseline, flags, args):
    netG = f'unet_{min(size, PAPER_SIZE)}'  # the paper's U-Net; unet_128 for 128 pixels as in the reference
    argv = ['--dataroot', '.', '--device', device, '--netG', netG, '--ngf', str(args.ngf), '--ndf', str(args.ndf),
            '--crop_size', str(size), '--load_size', str(size), '--batch_size', str(batch), '--amp', amp,
            '--adam_impl', 'for_loop' if baseline else 'fused', '--display_id', '0']
    argv += ['--channels_last'] * channels_last + (['--compile', '--compile_mode', compiled] if compiled else [])
    argv += flags
    if '--lambda_vgg' in flags and '--vgg_weights' not in flags:
        argv += ['--vgg_weights', args.vgg_weights]
    with contextlib.redirect_stdout(io.StringIO()):  # the model prints its networks
        opt = TrainOptions().parse(argv)
        model = create_model(opt)
        model.setup(opt)
    generator = torch.Generator().manual_seed(0)
    pair = [torch.rand(batch, 3, size, size, generator=generator) * 2 - 1 for _ in range(2)]
    model.set_input({'A': pair[0], 'B': pair[1], 'A_paths': ['-'] * batch, 'B_paths': ['-'] * batch})
    return model, netG


@contextlib.contextmanager
def reference_arithmetic(on):
    """As the reference runs: every convolution through oneDNN, glibc's default allocator settings."""
    saved = networks.MATMUL_MAX_POSITIONS
    networks.MATMUL_MAX_POSITIONS = 0 if on else saved
    keep_freed_memory(not on)
    try:
        yield
    finally:
        networks.MATMUL_MAX_POSITIONS = saved
        keep_freed_memory()


def timed(step, device):
    if device.startswith('cuda'):
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    step()
    if device.startswith('cuda'):
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def matmul_peak(device, dtype, repeats=5, enough_s=0.05):
    """GFLOP/s of a large square matmul: what the device's arithmetic units reach at best. The size doubles
    from 256 up to 8192 (CUDA) or 2048 (CPU) while one product takes under enough_s: a CPU without bf16
    instructions emulates them at a few GFLOP/s, where one 2048 product would take seconds."""
    largest = 8192 if device.startswith('cuda') else 2048
    n = 256
    while True:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        timed(lambda: a @ b, device)
        seconds = statistics.median(timed(lambda: a @ b, device) for _ in range(repeats))
        if n >= largest or seconds >= enough_s:
            return 2 * n ** 3 / seconds / 1e9
        n *= 2


def training_flops(model):
    with FlopCounterMode(display=False) as counter:
        model.optimize_parameters()
    return counter.get_total_flops()


def train_step(model):
    """One iteration of train.py: the optimizers' steps, then the weight average's (--ema_decay)."""
    model.optimize_parameters()
    model.update_averages()


def measure_setting(device, size, batch, args):
    """Build every variant, then time them round-robin: train iterations, then test forwards."""
    built = {}
    rows = []
    flops = {}
    cuda = device.startswith('cuda')
    for name, amp, channels_last, compiled, flags in variants(args, device):
        if cuda:  # the memory this variant adds to those built before it, at its peak
            in_use = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
        model, netG = build(device, size, batch, amp, channels_last, compiled, name == 'baseline', flags, args)
        start = time.perf_counter()
        with reference_arithmetic(name == 'baseline'):
            timed(lambda: train_step(model), device)  # first call: allocation, and compilation with --compile
            timed(model.test, device)
        built[name] = model
        rows.append(dict(device=device, variant=name, amp=amp, channels_last=channels_last, compile=compiled,
                         flags=' '.join(flags), size=size, batch=batch, netG=netG,
                         first_call_s=round(time.perf_counter() - start, 2)))
        if cuda:
            rows[-1]['peak_memory_gib'] = round((torch.cuda.max_memory_allocated(device) - in_use) / 2 ** 30, 2)
        # The speed settings leave the arithmetic as it is; the training options change it.
        if flags or not flops:
            flops[name] = training_flops(model)
    train = {name: [] for name in built}
    test = {name: [] for name in built}
    for round_index in range(args.warmup + args.iters):
        for name, model in built.items():
            with reference_arithmetic(name == 'baseline'):
                train_s = timed(lambda: train_step(model), device)
                test_s = timed(model.test, device)
            if round_index >= args.warmup:
                train[name].append(train_s)
                test[name].append(test_s)
    for row in rows:
        name = row['variant']
        train_s, test_s = statistics.median(train[name]), statistics.median(test[name])
        iteration_flops = flops.get(name, next(iter(flops.values())))
        row.update(train_s_per_iter=round(train_s, 4), train_ms_per_image=round(1e3 * train_s / batch, 2),
                   train_s_spread=[round(min(train[name]), 4), round(max(train[name]), 4)],
                   test_images_per_s=round(batch / test_s, 2), gflop_per_iter=round(iteration_flops / 1e9, 4),
                   train_gflops=round(iteration_flops / train_s / 1e9, 2), iters=args.iters)
    del built
    return rows


def loader_rate(dataroot, size, batches=40):
    """Images per second the DataLoader delivers with train.py's settings (jitter, flips, workers), after a first
    batch that pays for one-off imports (torchvision's, for data that is not 8-bit)."""
    from data import create_dataloader
    with contextlib.redirect_stdout(io.StringIO()):
        opt = TrainOptions().parse(['--dataroot', dataroot, '--device', 'cpu', '--crop_size', str(size),
                                    '--load_size', str(size * 286 // 256), '--display_id', '0'])
    loader = create_dataloader(opt, shuffle=True)
    count, start = 0, None
    for i, data in enumerate(loader):
        if start is None:
            start = time.perf_counter()
            continue
        count += data['A'].shape[0]
        if i >= batches:
            break
    return dict(images=count, images_per_s=round(count / (time.perf_counter() - start), 1),
                workers=loader.num_workers, input_nc=opt.input_nc, output_nc=opt.output_nc)


LOADER_KINDS = ('jpeg8', 'png16', 'tiff_float8')


def make_loader_data(root, kind, count=48, size=PAPER_SIZE):
    """count training pairs of size x size: jpeg8, A|B side by side in 8-bit JPEG (facades' format); png16, A and B
    in folders as one-channel 16-bit PNG; tiff_float8, A and B in folders as 8-band float32 TIFF."""
    import numpy as np
    import tifffile
    from PIL import Image
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size
    for i in range(count):
        bands = [np.sin(6 * x * rng.random() + 4 * y * rng.random()) + 0.1 * rng.standard_normal((size, size))
                 for _ in range(16)]
        A, B = np.stack(bands[:8], axis=2), np.stack(bands[8:], axis=2)
        if kind == 'jpeg8':
            pair = np.concatenate([A[:, :, :3], B[:, :, :3]], axis=1)
            os.makedirs(os.path.join(root, 'train'), exist_ok=True)
            Image.fromarray(np.clip((pair + 1.2) * 100, 0, 255).astype(np.uint8)).save(
                os.path.join(root, 'train', f'{i:03d}.jpg'), quality=90)
            continue
        for side, array in (('A', A), ('B', B)):
            folder = os.path.join(root, 'train' + side)
            os.makedirs(folder, exist_ok=True)
            if kind == 'png16':
                Image.fromarray(np.clip((array[:, :, 0] + 1.2) * 2000, 0, 65535).astype(np.uint16)).save(
                    os.path.join(folder, f'{i:03d}.png'))
            else:
                tifffile.imwrite(os.path.join(folder, f'{i:03d}.tif'), array.astype(np.float32),
                                 photometric='minisblack', planarconfig='contig')


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    info = dict(cpu=cpu, cores=os.cpu_count(), torch_threads=torch.get_num_threads(), torch=torch.__version__,
                cpu_capability=torch.backends.cpu.get_cpu_capability(), python=platform.python_version())
    if torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name()
    if hasattr(os, 'getloadavg'):
        info['load_average_at_start'] = round(os.getloadavg()[0], 2)
    return info


def add_ratios(rows, base):
    """speedup: against the baseline of the same setting; costs per image and per pixel against (base, batch 1);
    a training option's time against its precision's default (fp32+feat against fp32)."""
    by_key = {(r['device'], r['variant'], r['size'], r['batch']): r for r in rows}
    for r in rows:
        default = by_key.get((r['device'], r['variant'].split('+')[0], r['size'], r['batch']))
        if r['flags'] and default:
            r['time_vs_default'] = round(r['train_s_per_iter'] / default['train_s_per_iter'], 3)
        baseline = by_key.get((r['device'], 'baseline', r['size'], r['batch']))
        if baseline:
            r['speedup_vs_baseline'] = round(baseline['train_s_per_iter'] / r['train_s_per_iter'], 2)
            r['test_speedup_vs_baseline'] = round(r['test_images_per_s'] / baseline['test_images_per_s'], 2)
        reference = by_key.get((r['device'], r['variant'], base, 1))
        if reference:
            per_image = r['train_s_per_iter'] / r['batch'] / reference['train_s_per_iter']
            r['cost_per_image_vs_paper'] = round(per_image, 3)
            r['cost_per_pixel_vs_paper'] = round(per_image * (base / r['size']) ** 2, 3)


def table(rows, peaks):
    lines = []
    header = (f'{"device":6} {"variant":22} {"size":>4} {"batch":>5} {"s/iter":>8} {"ms/img":>8} {"speedup":>7} '
              f'{"GFLOP/s":>8} {"%peak":>6} {"test img/s":>10} {"img cost":>8} {"px cost":>7} {"vs default":>10}')
    lines.append(header)
    lines.append('-' * len(header))
    for r in rows:
        peak = peaks[r['device']]['fp32' if r['amp'] == 'none' else r['amp']]
        lines.append(f'{r["device"]:6} {r["variant"]:22} {r["size"]:>4} {r["batch"]:>5} {r["train_s_per_iter"]:>8.3f} '
                     f'{r["train_ms_per_image"]:>8.1f} {r.get("speedup_vs_baseline", float("nan")):>6.2f}x '
                     f'{r["train_gflops"]:>8.1f} {100 * r["train_gflops"] / peak:>5.0f}% {r["test_images_per_s"]:>10.2f} '
                     f'{r.get("cost_per_image_vs_paper", float("nan")):>8.2f} {r.get("cost_per_pixel_vs_paper", float("nan")):>7.2f} '
                     f'{r.get("time_vs_default", float("nan")):>9.2f}x')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = dict(machine=machine(), command=' '.join(['python', 'scripts/benchmark.py'] + (argv or sys.argv[1:])),
                   settings=dict(iters=args.iters, warmup=args.warmup, ngf=args.ngf, ndf=args.ndf),
                   peak_gflops={}, results=[])
    if results['machine'].get('load_average_at_start', 0) > 0.5 and 'cpu' in args.devices:
        print(f'warning: load average {results["machine"]["load_average_at_start"]}: other processes are running, so '
              f'CPU timings will be slow and noisy (torch waits for descheduled threads); use a quiet machine, '
              f'or --threads set to the idle cores', file=sys.stderr)
    with tempfile.TemporaryDirectory() as folder:
        if args.vgg_weights is None and any('--lambda_vgg' in flags for _, flags in args.flag_variants):
            args.vgg_weights = perceptual.save_random_vgg19(os.path.join(folder, 'vgg19-random.pth'))
        for device in args.devices:
            dtypes = {'fp32': torch.float32, 'bf16': torch.bfloat16}
            if device.startswith('cuda'):
                dtypes['fp16'] = torch.float16
            results['peak_gflops'][device] = {k: round(matmul_peak(device, dt), 1) for k, dt in dtypes.items()}
            for size, batch in settings(args):
                print(f'{device}: {size}x{size}, batch {batch} ...', file=sys.stderr, flush=True)
                results['results'] += measure_setting(device, size, batch, args)
    add_ratios(results['results'], base_size(args.sizes))
    if args.dataroot:
        results['data_loader'] = loader_rate(args.dataroot, PAPER_SIZE)
    for kind in filter(None, args.loader_kinds.split(',')):
        with tempfile.TemporaryDirectory() as root:
            make_loader_data(root, kind)
            results.setdefault('data_loaders', {})[kind] = loader_rate(root, PAPER_SIZE)
    print(f'{results["machine"]}\nmatmul peak GFLOP/s: {results["peak_gflops"]}')
    print(table(results['results'], results['peak_gflops']))
    if 'data_loader' in results:
        print(f'data loader: {results["data_loader"]}')
    for kind, rate in results.get('data_loaders', {}).items():
        print(f'data loader, {kind}: {rate}')
    text = json.dumps(results, indent=1)
    print(text)
    if args.json:
        with open(args.json, 'w') as f:
            f.write(text + '\n')
    return results


if __name__ == '__main__':
    main()
