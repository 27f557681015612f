"""Peak memory and time of test.py on one large image, whole and in tiles (docs/performance.md, "Large images").

    python scripts/tile_benchmark.py --sizes 1024,2048,4096,8192 --whole_up_to 4096 --tile 512 --tile_overlap 64

Each run is `test.py --model test --eval --preprocess none --dataroot IMAGE.png` in a process of its own, on a
unet_256 generator (--ngf filters, batch norm, random weights: memory and time do not depend on them) and a
synthetic RGB image of each size; its peak resident memory comes from the kernel's accounting of that process
(os.wait4), its seconds from the clock around it, start-up included. With --device cuda, the process also
reports the most GPU memory PyTorch allocated (torch.cuda.max_memory_allocated).
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from models import networks  # noqa: E402  (after the path is set)


def make_checkpoint(folder, ngf):
    torch.manual_seed(0)
    net = networks.define_G(3, 3, ngf, 'unet_256', 'batch', True)
    os.makedirs(os.path.join(folder, 'big'), exist_ok=True)
    torch.save(net.state_dict(), os.path.join(folder, 'big', 'latest_net_G.pth'))


def make_image(path, size):
    rng = np.random.default_rng(size)
    small = rng.integers(0, 256, (size // 64, size // 64, 3), dtype=np.uint8)
    Image.fromarray(small).resize((size, size), Image.BICUBIC).save(path)


# test.py's main in a fresh interpreter, then, on a GPU, its peak allocation as the last line of its output.
CHILD = """
import sys, torch
sys.path.insert(0, sys.argv[1])
import test
test.main(sys.argv[2:])
if torch.cuda.is_available():
    print('cuda peak bytes', torch.cuda.max_memory_allocated())
"""


def run(image, checkpoints, results, flags, device):
    """(peak RSS in GB, peak CUDA allocation in GB or None, seconds) of one test.py process."""
    argv = ['--model', 'test', '--eval', '--preprocess', 'none', '--dataroot', image, '--name', 'big',
            '--checkpoints_dir', checkpoints, '--results_dir', results, '--num_threads', '0', '--device', device,
            *flags]
    log = os.path.join(results, 'test.log')
    os.makedirs(results, exist_ok=True)
    start = time.perf_counter()
    with open(log, 'w') as log_file:  # a file, not a pipe: os.wait4 reaps the process and gives its usage
        process = subprocess.Popen([sys.executable, '-c', CHILD, REPO, *argv], stdout=log_file, stderr=log_file)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    with open(log) as f:
        output = f.read()
    if status:
        raise SystemExit(f'test.py {" ".join(argv)} failed:\n{output[-2000:]}')
    peaks = [int(line.split()[-1]) for line in output.splitlines() if line.startswith('cuda peak bytes')]
    cuda = round(peaks[-1] / 1024 ** 3, 2) if peaks and device.startswith('cuda') else None
    return round(usage.ru_maxrss / 1024 ** 2, 2), cuda, round(seconds, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sizes', default='1024,2048,4096,8192', help='image sides, in pixels')
    parser.add_argument('--whole_up_to', type=int, default=4096, help='also whole up to this side (memory!)')
    parser.add_argument('--tile', type=int, default=512)
    parser.add_argument('--tile_overlap', type=int, default=64)
    parser.add_argument('--ngf', type=int, default=64, help="the generator's filters (the paper's: 64)")
    parser.add_argument('--device', default='cpu', help='cpu, or cuda to also measure the GPU memory')
    parser.add_argument('--json', default=None, help='also write the results to this file')
    args = parser.parse_args()
    with open('/proc/cpuinfo') as f:
        cpu = next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), platform.machine())
    gpu = torch.cuda.get_device_name(args.device) if args.device.startswith('cuda') else None
    results = dict(cpu=cpu, cores=os.cpu_count(), gpu=gpu, device=args.device, ngf=args.ngf, tile=args.tile,
                   tile_overlap=args.tile_overlap, runs=[])
    with tempfile.TemporaryDirectory() as folder:
        make_checkpoint(folder, args.ngf)
        for size in map(int, args.sizes.split(',')):
            image = os.path.join(folder, f'image{size}.png')
            make_image(image, size)
            modes = [('tiled', ['--tile', str(args.tile), '--tile_overlap', str(args.tile_overlap)])]
            if size <= args.whole_up_to:
                modes.insert(0, ('whole', []))
            for mode, flags in modes:
                rss, cuda, seconds = run(image, folder, os.path.join(folder, 'results'), flags, args.device)
                results['runs'].append(dict(size=size, mode=mode, peak_rss_gb=rss, peak_cuda_gb=cuda, seconds=seconds))
                on_gpu = f', peak CUDA allocation {cuda} GB' if cuda is not None else ''
                print(f'{size}x{size} {mode}: peak RSS {rss} GB{on_gpu}, {seconds} s', flush=True)
    print(json.dumps(results, indent=1))
    if args.json:
        with open(args.json, 'w') as f:
            f.write(json.dumps(results, indent=1) + '\n')


if __name__ == '__main__':
    main()
