"""How visible the tiles' borders are in tiled translation (docs/performance.md, "Large images").

    python scripts/seam_benchmark.py --dataroot ../shared/datasets/maps/test --name maps_unet --direction BtoA \
        --tile 256 --tile_overlap 64 --max_images 20

Each test image (the A|B pair's input side) is translated whole and in tiles of --tile, without blending
(--tile_overlap 0) and blended (--tile_overlap N), in the paper's test mode and in --eval. The seam figure is
the mean absolute difference between neighbouring pixels across the tiles' borders (every column and row where a
tile begins or ends inside the image), over the same difference everywhere in the image: 1.0 means the borders
are as smooth as the rest, above it they show. Beside it, the mean absolute difference from the whole-image
output, in 8-bit levels.
"""
import argparse
import contextlib
import io
import json
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import models  # noqa: E402  (after the path is set)
from data import create_dataloader  # noqa: E402
from models import tiling  # noqa: E402
from options.test_options import TestOptions  # noqa: E402


def seam_ratio(image, tile, overlap, multiple):
    """Mean |neighbour difference| across tile borders over the same everywhere, both directions; image (C, H, W).
    The tiles are those of test.py: over the image padded to a multiple of `multiple`, starting on its grid."""
    ratios = []
    for axis in (1, 2):
        length = image.shape[axis]
        padded = -(-length // multiple) * multiple
        starts = tiling.tile_starts(padded, tile, overlap, multiple)
        size = min(tile, padded)
        borders = sorted({s for s in starts if 0 < s < length} | {s + size for s in starts if s + size < length})
        if not borders:
            continue
        steps = (image.narrow(axis, 1, length - 1) - image.narrow(axis, 0, length - 1)).abs()
        across = steps.index_select(axis, torch.tensor(borders) - 1)  # step from border - 1 to border
        ratios.append((across.mean() / steps.mean()).item())
    return statistics.mean(ratios)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--dataroot', required=True, help='a folder of A|B test pairs')
    parser.add_argument('--name', required=True)
    parser.add_argument('--checkpoints_dir', default='./checkpoints')
    parser.add_argument('--direction', default='AtoB')
    parser.add_argument('--tile', type=int, default=256)
    parser.add_argument('--tile_overlap', type=int, default=64)
    parser.add_argument('--max_images', type=int, default=20)
    parser.add_argument('--json', default=None)
    args = parser.parse_args()
    common = ['--dataroot', args.dataroot, '--name', args.name, '--checkpoints_dir', args.checkpoints_dir,
              '--direction', args.direction, '--preprocess', 'none', '--num_threads', '0',
              '--max_dataset_size', str(args.max_images)]
    settings = {'whole': [], 'hard': ['--tile', str(args.tile), '--tile_overlap', '0'],
                'blended': ['--tile', str(args.tile), '--tile_overlap', str(args.tile_overlap)]}
    results = {}
    for mode in ('paper', 'eval'):
        outputs = {}
        for setting, flags in settings.items():
            with contextlib.redirect_stdout(io.StringIO()):
                opt = TestOptions().parse(common + flags + (['--eval'] if mode == 'eval' else []))
                model = models.create_model(opt)
                model.setup(opt)
            loader = create_dataloader(opt, shuffle=False)
            outputs[setting] = []
            for data in loader:
                torch.manual_seed(0)  # dropout: the same draws for every setting
                model.set_input(data)
                model.test()
                outputs[setting].append(model.get_current_visuals()[model.visual_roles['output']][0].clamp(-1, 1))
        multiple = models.base_model.generator_size_multiple(opt)
        for setting in ('whole', 'hard', 'blended'):
            overlap = 0 if setting != 'blended' else args.tile_overlap
            seams = [seam_ratio(out, args.tile, overlap, multiple) for out in outputs[setting]]
            levels = [((out - whole).abs().mean() * 127.5).item()
                      for out, whole in zip(outputs[setting], outputs['whole'])]
            # The whole output has no tiles: its figure is at the borders the blended tiles would have.
            results[f'{mode} {setting}'] = dict(seam=round(statistics.mean(seams), 3),
                                                levels_from_whole=round(statistics.mean(levels), 2))
            print(f'{mode:5} {setting:7}: seam {results[f"{mode} {setting}"]["seam"]}, '
                  f'{results[f"{mode} {setting}"]["levels_from_whole"]} levels from whole', flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            f.write(json.dumps(dict(args=vars(args), results=results), indent=1) + '\n')


if __name__ == '__main__':
    main()
