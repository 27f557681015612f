"""Everything that needs a CUDA GPU, in one call (issue 16): the CUDA tests, nccl DDP, training in every
precision with and without --channels_last and --compile, exact resume after kill -9, and the speed figures
of docs/performance.md. Writes summary.txt, benchmark_*.json, profile.txt and logs.tar.gz under --out.

    python scripts/gpu_proof.py --dataroot ./datasets/facades --out results/gpu_proof      # about 7 minutes
    python scripts/gpu_proof.py --dataroot DIR --out DIR --device cpu --quick              # its logic, on a CPU

Phase 1 times the networks with the GPU to itself; phase 2 runs the checks side by side (they only need to
pass); phase 3 times torch.compile's modes (whose compilation phase 2 has cached) and test.py.
"""
import argparse
import glob
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--dataroot', required=True, help='facades in pix2pix layout (train/, test/)')
    parser.add_argument('--out', required=True)
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--quick', action='store_true', help='tiny sizes and counts: checks this script on a CPU')
    parser.add_argument('--budget_s', type=float, default=480,
                        help='phase 3 leaves out a part that would end past this many seconds')
    parser.add_argument('--skip', default='', help='comma-separated parts to leave out: '
                                                   'benchmark,cuda_tests,ddp_checks,matrix,resume,compiled,'
                                                   'cudagraphs,test_speed,profile')
    return parser.parse_args(argv)


class Proof:
    def __init__(self, args):
        self.args = args
        self.out = os.path.abspath(args.out)
        self.work = os.path.join(self.out, 'work')
        os.makedirs(self.work, exist_ok=True)
        self.failed = 0
        self.start = time.time()
        quick = args.quick
        # The paper's setting: unet_256 on 256x256 crops of 286x286 images, batch 1.
        self.net = (['--netG', 'unet_64', '--ngf', '8', '--ndf', '8', '--load_size', '72', '--crop_size', '64']
                    if quick else ['--netG', 'unet_256', '--load_size', '286', '--crop_size', '256'])
        self.size = 64 if quick else 256

    def say(self, line):
        line = f'[{time.time() - self.start:6.1f} s] {line}'
        print(line, flush=True)
        with open(os.path.join(self.out, 'summary.txt'), 'a') as f:  # as it goes: a run cut short keeps it
            f.write(line + '\n')

    def check(self, description, ok, detail=''):
        self.say(f'{"PASS" if ok else "FAIL"}: {description}{"  (" + detail + ")" if detail else ""}')
        self.failed += not ok
        return ok

    def run(self, name, command, timeout, env=None):
        """Run command with its output in work/NAME.log; returns (exit status, output, seconds)."""
        log = os.path.join(self.work, name + '.log')
        started = time.time()
        with open(log, 'w') as f:
            try:
                code = subprocess.run(command, cwd=REPO, stdout=f, stderr=subprocess.STDOUT, timeout=timeout,
                                      env={**os.environ, **(env or {})}).returncode
            except subprocess.TimeoutExpired:
                code = 'timeout'
        with open(log) as f:
            return code, f.read(), time.time() - started

    def train_args(self, name, *extra, data=None):
        return [PYTHON, 'train.py', '--dataroot', data or self.args.dataroot, '--name', name,
                '--checkpoints_dir', os.path.join(self.work, 'checkpoints'), '--device', self.args.device,
                '--direction', 'BtoA', '--display_id', '0', '--no_html', *self.net, *map(str, extra)]

    def test_args(self, name, *extra):
        return [PYTHON, 'test.py', '--dataroot', self.args.dataroot, '--name', name, '--direction', 'BtoA',
                '--checkpoints_dir', os.path.join(self.work, 'checkpoints'), '--device', self.args.device,
                '--results_dir', os.path.join(self.work, 'results'), '--load_size', str(self.size),
                '--crop_size', str(self.size), *map(str, extra)]

    # -- phase 1 ------------------------------------------------------------------------------------------
    def benchmark(self, name, *flags, timeout):
        path = os.path.join(self.out, f'benchmark_{name}.json')
        sizes = ['--sizes', str(self.size), '--iters', '3' if self.args.quick else '10',
                 '--warmup', '1' if self.args.quick else '3', '--no_baseline']
        if self.args.quick:
            sizes += ['--ngf', '8', '--ndf', '8']
        code, output, seconds = self.run('benchmark_' + name, [PYTHON, 'scripts/benchmark.py', '--devices',
                                                               self.args.device, *sizes, *flags, '--json', path],
                                         timeout)
        self.check(f'benchmark {name} ({seconds:.0f} s)', code == 0 and os.path.exists(path), f'exit {code}')
        table = re.search(r'^matmul peak.*?(?=^\{)', output, re.S | re.M)
        self.say('\n' + (table.group(0) if table else output[-1500:]).strip())

    # -- phase 2 ------------------------------------------------------------------------------------------
    def cuda_tests(self):
        code, output, seconds = self.run('pytest_cuda', [PYTHON, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                                                         'tests/test_lab.py', 'tests/test_devices.py'], 600)
        summary = output.strip().splitlines()[-1] if output.strip() else ''
        self.check('the CUDA tests of the suite (tests/test_lab.py, tests/test_devices.py)', code == 0,
                   f'{summary}; {seconds:.0f} s')
        self.check('  ... and the CUDA Lab test ran rather than skipped',
                   self.args.device == 'cpu' or 'skipped' not in summary, summary)

    def ddp_checks(self):
        code, output, seconds = self.run('gpu_checks_ddp', ['bash', 'scripts/gpu_checks_ddp.sh'], 600,
                                         env={'OUT': os.path.join(self.work, 'ddp'), 'PYTHON': PYTHON})
        for line in output.splitlines():
            if line.startswith(('PASS', 'FAIL')):
                self.say('  gpu_checks_ddp.sh ' + line)
        self.check(f'scripts/gpu_checks_ddp.sh ({seconds:.0f} s)', code == 0, f'exit {code}')

    def matrix_run(self, amp, channels_last, compiled):
        name = f'matrix_{amp}' + '_cl' * channels_last + '_compile' * compiled
        flags = ['--amp', amp, '--max_dataset_size', 8 if self.args.quick else 24, '--n_epochs', 1,
                 '--n_epochs_decay', 0, '--print_freq', 4 if self.args.quick else 8, '--seed', 0,
                 '--ema_decay', 0.99, '--ema_every', 1]
        flags += ['--channels_last'] * channels_last + ['--compile'] * compiled
        code, output, seconds = self.run(name, self.train_args(name, *flags), 600,
                                         env={'TORCHINDUCTOR_COMPILE_THREADS': '2'})
        losses = [float(v) for v in re.findall(r'G_L1: ([-\d.e+]+|nan|inf)', output)]
        tested = code == 0 and self.run(name + '_test', self.test_args(name, '--amp', amp, '--num_test', 4,
                                                                       '--model_suffix', '_ema'), 300)[0] == 0
        images = glob.glob(os.path.join(self.work, 'results', name, 'test_latest', 'images', '*_fake_B.png'))
        return name, code, losses, tested, len(images), seconds

    def matrix(self):
        combos = [(amp, cl, comp) for amp in ('none', 'bf16', 'fp16') for cl in (False, True) for comp in (False, True)]
        if self.args.device == 'cpu':
            combos = [c for c in combos if c[0] != 'fp16']
        with ThreadPoolExecutor(len(combos)) as pool:
            results = list(pool.map(lambda c: self.matrix_run(*c), combos))
        for name, code, losses, tested, images, seconds in results:
            finite = bool(losses) and all(abs(v) < float('inf') and v == v for v in losses)
            self.check(f'{name}: trains with --ema_decay and tests the average ({seconds:.0f} s)',
                       code == 0 and finite and tested and images == 4,
                       f'exit {code}, G_L1 printed {losses}, test.py {"ok" if tested else "failed"}, {images} images')

    def resume(self, amp):
        """kill -9 in epoch 2, resume: the weights end where an uninterrupted run's do, within what two
        uninterrupted runs differ by (CUDA's kernels are not deterministic)."""
        sys.path.insert(0, REPO)
        from data.demo import ensure_demo_dataset
        data = ensure_demo_dataset()  # made here, once, not by the runs started side by side below
        flags = ['--max_dataset_size', 7, '--netG', 'unet_64', '--ngf', 16, '--ndf', 16, '--load_size', 72,
                 '--crop_size', 64, '--batch_size', 2, '--n_epochs', 2, '--n_epochs_decay', 2, '--print_freq', 2,
                 '--save_latest_freq', 6, '--seed', 3, '--ema_decay', 0.9, '--ema_every', 2, '--amp', amp]
        names = [f'resume_{amp}_{kind}' for kind in ('uninterrupted', 'again', 'killed')]

        def train(name, *extra):
            command = self.train_args(name, *flags, *extra, data=data)
            return self.run(name + ('_resumed' if extra else ''), command, 300)[0]

        with ThreadPoolExecutor(2) as pool:
            codes = list(pool.map(train, names[:2]))
        log = os.path.join(self.work, names[2] + '.log')
        with open(log, 'w') as f:
            child = subprocess.Popen(self.train_args(names[2], *flags, data=data), cwd=REPO, stdout=f,
                                     stderr=subprocess.STDOUT)
            deadline = time.time() + 300
            while time.time() < deadline and child.poll() is None:
                with open(log) as g:
                    if re.search(r'\(epoch: 2, iters: 2,', g.read()):
                        break
                time.sleep(0.05)
            child.send_signal(signal.SIGKILL)
            killed = child.wait() == -signal.SIGKILL
        codes.append(train(names[2], '--continue_train'))
        with open(os.path.join(self.work, names[2] + '_resumed.log')) as f:
            resumed_from = re.search(r'resuming from .*', f.read())
        import torch
        nets = {}
        for name in names:
            folder = os.path.join(self.work, 'checkpoints', name)
            nets[name] = {net: torch.load(os.path.join(folder, f'latest_net_{net}.pth'), weights_only=True)
                          for net in ('G', 'D', 'G_ema')} if os.path.isdir(folder) else None
        if not all(nets.values()) or any(codes):
            return self.check(f'resume {amp}: runs finished', False, f'exit codes {codes}')

        def distance(a, b):
            return max((a[k].float() - b[k].float()).abs().max().item() for k in a if a[k].is_floating_point())
        noise = {net: distance(nets[names[0]][net], nets[names[1]][net]) for net in ('G', 'D', 'G_ema')}
        resumed = {net: distance(nets[names[0]][net], nets[names[2]][net]) for net in ('G', 'D', 'G_ema')}
        ok = killed and resumed_from and all(resumed[n] <= max(4 * noise[n], 1e-5) for n in noise)
        return self.check(f'resume --amp {amp} with --ema_decay after kill -9 in epoch 2', ok,
                          f'{resumed_from.group(0) if resumed_from else "no resume line"}; largest weight '
                          f'difference to the uninterrupted run {resumed}, between two uninterrupted runs {noise}')

    # -- phase 3 ------------------------------------------------------------------------------------------
    def test_speed(self):
        """test.py end to end on every test image (PNG writing and metrics included), timed from its first
        image to its last."""
        source = 'matrix_bf16' if self.args.device != 'cpu' else 'matrix_none'
        for amp in ('none', 'bf16'):
            name = f'test_speed_{amp}'
            started = time.time()
            process = subprocess.Popen(self.test_args(source, '--amp', amp, '--eval', '--results_dir',
                                                      os.path.join(self.work, name)),
                                       cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            stamps, output = {}, []
            for line in process.stdout:
                output.append(line)
                for key in ('The number of test images', 'processed'):
                    if line.startswith(key):
                        stamps[key] = time.time()
            process.wait()
            with open(os.path.join(self.work, name + '.log'), 'w') as f:
                f.writelines(output)
            count = re.search(r'processed (\d+) images', ''.join(output))
            if not self.check(f'test.py --amp {amp} --eval on the test images', process.returncode == 0 and count,
                              f'exit {process.returncode}'):
                continue
            images = int(count.group(1))
            seconds = stamps['processed'] - stamps['The number of test images']
            self.say(f'  test.py --amp {amp}: {images} images in {seconds:.2f} s = {images / seconds:.1f} images/s '
                     f'(model built and loaded included; {time.time() - started:.1f} s with the start)')

    def profile(self):
        code, output, seconds = self.run('profile', [PYTHON, 'scripts/gpu_proof.py', '--profile_one_step',
                                                     self.args.device, str(self.size)], 300)
        with open(os.path.join(self.out, 'profile.txt'), 'w') as f:
            f.write(output)
        self.check(f'torch.profiler of one training step ({seconds:.0f} s)', code == 0, f'exit {code}')
        for line in output.splitlines():
            if line.startswith('step:'):
                self.say('  ' + line)

    def time_left(self, part, needs_s):
        left = self.args.budget_s - (time.time() - self.start)
        if left < needs_s:
            self.say(f'SKIPPED: {part}: {left:.0f} s of --budget_s left, it needs about {needs_s} s')
        return left >= needs_s

    def finish(self):
        self.say(f'{"ALL PASSED" if not self.failed else f"{self.failed} CHECK(S) FAILED"} in {time.time() - self.start:.0f} s')
        with tarfile.open(os.path.join(self.out, 'logs.tar.gz'), 'w:gz') as tar:
            for path in glob.glob(os.path.join(self.work, '**', '*.log'), recursive=True):
                tar.add(path, os.path.relpath(path, self.work))
            for path in glob.glob(os.path.join(self.work, 'checkpoints', '*', '*.txt')):
                tar.add(path, os.path.relpath(path, self.work))


def profile_one_step(device, size):
    """One pix2pix step (bf16, batch 1) under torch.profiler: where the time goes, kernel launches included."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    sys.path.insert(0, REPO)
    from models import create_model
    from options.train_options import TrainOptions
    net = f'unet_{size}'
    opt = TrainOptions().parse(['--dataroot', '.', '--device', device, '--netG', net, '--load_size', str(size),
                                '--crop_size', str(size), '--display_id', '0', '--amp', 'bf16'])
    model = create_model(opt)
    model.setup(opt)
    batch = torch.rand(2, 1, 3, size, size) * 2 - 1
    model.set_input({'A': batch[0], 'B': batch[1], 'A_paths': ['-'], 'B_paths': ['-']})
    cuda = device.startswith('cuda')
    for _ in range(5):
        model.optimize_parameters()
    if cuda:
        torch.cuda.synchronize()
    activities = [ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * cuda
    with profile(activities=activities) as prof:
        for _ in range(3):
            model.optimize_parameters()
        if cuda:
            torch.cuda.synchronize()
    events = prof.key_averages()
    sort = 'self_cuda_time_total' if cuda else 'self_cpu_time_total'
    print(events.table(sort_by=sort, row_limit=25))
    print(events.table(sort_by='self_cpu_time_total', row_limit=15))
    wall_us = max(e.time_range.end for e in prof.events()) - min(e.time_range.start for e in prof.events())
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    gpu_busy_us = sum(e.time_range.elapsed_us() for e in kernels)
    launches = sum(e.count for e in events if e.key in ('cudaLaunchKernel', 'cuLaunchKernel', 'cudaLaunchKernelExC'))
    print(f'step: {wall_us / 3 / 1e3:.2f} ms wall per step, GPU kernels busy {gpu_busy_us / 3 / 1e3:.2f} ms '
          f'({100 * gpu_busy_us / max(wall_us, 1):.0f}%), {len(kernels) // 3} kernels and {launches // 3} '
          f'launch calls per step')


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['--profile_one_step']:
        return profile_one_step(argv[1], int(argv[2]))
    args = parse_args(argv)
    skip = set(args.skip.split(','))
    proof = Proof(args)
    import torch
    proof.say(f'torch {torch.__version__}, CUDA {torch.version.cuda}, '
              f'{torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"}, '
              f'{os.cpu_count()} CPU cores; dataroot {args.dataroot}')
    # 1. Speed, with the GPU to itself: every precision with and without channels_last, batch 1, 16, 64.
    if 'benchmark' not in skip:
        proof.benchmark('eager', '--batch_sizes', '1,4' if args.quick else '1,16,64', '--amp',
                        'none,bf16' if args.device == 'cpu' else 'none,bf16,fp16', '--channels_last',
                        timeout=300)
    # 2. Checks side by side: they only need to pass.
    parts = [getattr(proof, part) for part in ('cuda_tests', 'ddp_checks', 'matrix') if part not in skip]
    if 'resume' not in skip:
        parts.append(lambda: [proof.resume(amp) for amp in (('none',) if args.device == 'cpu' else ('none', 'fp16'))])
    with ThreadPoolExecutor(len(parts) or 1) as pool:
        for future in [pool.submit(part) for part in parts]:
            future.result()
    # 3. torch.compile (its kernels cached by the matrix runs) and CUDA graphs, then test.py and a profile.
    for name, mode in (('compiled', 'default'), ('cudagraphs', 'reduce-overhead')):
        if name not in skip and proof.time_left(f'the benchmark of --compile_mode {mode}', 150):
            proof.benchmark(name, '--batch_sizes', '1', '--amp', 'bf16', '--compile', '--compile_modes', mode,
                            timeout=240)
    if 'test_speed' not in skip and proof.time_left('test.py speed', 40):
        proof.test_speed()
    if 'profile' not in skip and proof.time_left('the profile', 30):
        proof.profile()
    proof.finish()
    return 1 if proof.failed else 0


if __name__ == '__main__':
    sys.exit(main())
