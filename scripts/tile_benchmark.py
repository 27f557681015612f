"""Peak memory and time of test.py on one large image, whole and in tiles (docs/performance.md, "Large images").

    python scripts/tile_benchmark.py --sizes 1024,2048,4096,8192 --whole_up_to 4096 --tile 512 --tile_overlap 64

Each run is `test.py --model test --eval --preprocess none --dataroot IMAGE.png` in a process of its own, on a
unet_256 generator (64 filters, batch norm, random weights: memory and time do not depend on them) and a
synthetic RGB image of each size; its peak resident memory comes from the kernel's accounting of that process
(os.wait4), its seconds from the clock around it, start-up included.
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


def make_checkpoint(folder):
    torch.manual_seed(0)
    net = networks.define_G(3, 3, 64, 'unet_256', 'batch', True)
    os.makedirs(os.path.join(folder, 'big'), exist_ok=True)
    torch.save(net.state_dict(), os.path.join(folder, 'big', 'latest_net_G.pth'))


def make_image(path, size):
    rng = np.random.default_rng(size)
    small = rng.integers(0, 256, (size // 64, size // 64, 3), dtype=np.uint8)
    Image.fromarray(small).resize((size, size), Image.BICUBIC).save(path)


def run(image, checkpoints, results, flags):
    """(peak RSS in GB, seconds) of one test.py process."""
    command = [sys.executable, os.path.join(REPO, 'test.py'), '--model', 'test', '--eval', '--preprocess', 'none',
               '--dataroot', image, '--name', 'big', '--checkpoints_dir', checkpoints, '--results_dir', results,
               '--num_threads', '0', *flags]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if status:
        raise SystemExit(f'{" ".join(command)} failed:\n{process.stderr.read().decode()[-2000:]}')
    return round(usage.ru_maxrss / 1024 ** 2, 2), round(seconds, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sizes', default='1024,2048,4096,8192', help='image sides, in pixels')
    parser.add_argument('--whole_up_to', type=int, default=4096, help='also whole up to this side (memory!)')
    parser.add_argument('--tile', type=int, default=512)
    parser.add_argument('--tile_overlap', type=int, default=64)
    parser.add_argument('--json', default=None, help='also write the results to this file')
    args = parser.parse_args()
    with open('/proc/cpuinfo') as f:
        cpu = next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), platform.machine())
    results = dict(cpu=cpu, cores=os.cpu_count(), tile=args.tile, tile_overlap=args.tile_overlap, runs=[])
    with tempfile.TemporaryDirectory() as folder:
        make_checkpoint(folder)
        for size in map(int, args.sizes.split(',')):
            image = os.path.join(folder, f'image{size}.png')
            make_image(image, size)
            modes = [('tiled', ['--tile', str(args.tile), '--tile_overlap', str(args.tile_overlap)])]
            if size <= args.whole_up_to:
                modes.insert(0, ('whole', []))
            for mode, flags in modes:
                rss, seconds = run(image, folder, os.path.join(folder, 'results'), flags)
                results['runs'].append(dict(size=size, mode=mode, peak_rss_gb=rss, seconds=seconds))
                print(f'{size}x{size} {mode}: peak RSS {rss} GB, {seconds} s', flush=True)
    print(json.dumps(results, indent=1))
    if args.json:
        with open(args.json, 'w') as f:
            f.write(json.dumps(results, indent=1) + '\n')


if __name__ == '__main__':
    main()
