"""Train the segmenter of the semantic score on the real photos of an aligned labels|photo dataset.

    python scripts/train_segmenter.py --dataroot ./datasets/facades --direction BtoA
    python test.py --dataroot ./datasets/facades --direction BtoA --name facades_pix2pix \\
        --segmenter checkpoints/segmenter_facades.pth

The label maps are the input side of the pairs (the side --direction translates from: B for BtoA, A for
AtoB) and the photos the other. The classes are the label maps' colours, found in DATAROOT/PHASE
(util/evaluation/palette.py; JPEG label maps are fine), or given with --palette. The network
(models/segmenter.py) learns photo -> class per pixel at --crop_size, from random --crop_size crops of
the pairs resized to --load_size, mirrored half the time. At the end it is scored on the real photos of
DATAROOT/EVAL_PHASE as test.py would score them (the ceiling of the semantic score) and saved with its
palette and size to --output (crash-safe: an interrupted run leaves any earlier file as it was).
"""
import argparse
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from data.aligned_dataset import split_pair  # noqa: E402  (after the path is set)
from data.base_dataset import pil_to_tensor  # noqa: E402
from data.image_folder import make_dataset, open_image  # noqa: E402
from models.segmenter import Segmenter, SegmenterNet, save_segmenter  # noqa: E402
from util import devices  # noqa: E402
from util.display.visualizer import progress_bar  # noqa: E402
from util.errors import UserError  # noqa: E402
from util.evaluation.palette import IGNORE, MIN_FRACTION, discover_palette, label_classes, nearest_classes  # noqa: E402
from util.evaluation.semantic import (SCORES, SemanticScore, format_semantic, refuse_other_palette,  # noqa: E402
                                      to_network_range, unmatched_shares)
from util.files import ensure_writable  # noqa: E402

PALETTE_IMAGES = 200  # label maps the palette is looked for in, spread over the split


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--dataroot', required=True, help='folder with PHASE/ (and EVAL_PHASE/) of aligned pairs')
    parser.add_argument('--direction', default='AtoB', choices=('AtoB', 'BtoA'),
                        help='as for train.py: the label maps are the side it translates from (facades: BtoA)')
    parser.add_argument('--output', default=None, help='segmenter file (default: checkpoints/segmenter_<dataroot\'s name>.pth)')
    parser.add_argument('--phase', default='train', help='train on DATAROOT/PHASE')
    parser.add_argument('--eval_phase', default='test', help='score the result on DATAROOT/EVAL_PHASE (\'\' or missing: skip)')
    parser.add_argument('--crop_size', type=int, default=128, help='the size it trains and segments at (a multiple of 8)')
    parser.add_argument('--load_size', type=int, default=None, help='pairs are resized to this before cropping (default: crop_size * 286 / 256, as pix2pix jitters)')
    parser.add_argument('--epochs', type=int, default=20,
                        help='passes over the training pairs (facades: 43 s each on 2 idle CPU cores)')
    parser.add_argument('--batch_size', type=int, default=8)
    parser.add_argument('--lr', type=float, default=0.002, help='Adam\'s learning rate, decayed to 0 along a cosine')
    parser.add_argument('--width', type=int, default=16, help='channels of the U-Net at full resolution (doubling at each of 3 lower scales)')
    parser.add_argument('--palette', default=None,
                        help='the class colours, "R,G,B R,G,B ...", instead of finding them in the label maps')
    parser.add_argument('--min_class_fraction', type=float, default=MIN_FRACTION,
                        help='a colour is a class when at least this share of the label maps\' uniform pixels has it')
    parser.add_argument('--max_dataset_size', type=int, default=None, help='use at most this many training pairs')
    parser.add_argument('--seed', type=int, default=0, help='initial weights, order and crops')
    parser.add_argument('--device', default='auto', help='auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N or mps')
    args = parser.parse_args(argv)
    args.load_size = args.load_size or round(args.crop_size * 286 / 256)
    if args.crop_size < 8 or args.crop_size % 8:
        raise UserError(f'--crop_size {args.crop_size}: give a multiple of 8 (the U-Net halves it 3 times)')
    if args.load_size < args.crop_size:
        raise UserError(f'--load_size {args.load_size} is smaller than --crop_size {args.crop_size}; give at least {args.crop_size}')
    if args.epochs < 1 or args.batch_size < 1 or args.width < 1:
        raise UserError('--epochs, --batch_size and --width must be at least 1')
    if not args.lr > 0:
        raise UserError(f'--lr {args.lr}: give a positive learning rate, e.g. 0.002 (the default)')
    if not 0 < args.min_class_fraction <= 0.5:
        raise UserError(f'--min_class_fraction {args.min_class_fraction}: give a share above 0 and at most 0.5 '
                        f'(two classes at least), e.g. {MIN_FRACTION} (the default)')
    args.output = args.output or os.path.join('checkpoints', f'segmenter_{os.path.basename(os.path.abspath(args.dataroot))}.pth')
    args.palette = parse_palette(args.palette) if args.palette else None
    args.device = devices.resolve(args.device)
    return args


def parse_palette(text):
    try:
        colours = [tuple(int(v) for v in colour.split(',')) for colour in text.split()]
    except ValueError:
        colours = []
    if len(colours) < 2 or any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in colours):
        raise UserError(f'--palette {text!r}: give two or more colours as "R,G,B R,G,B ...", each value 0 to 255')
    return np.array(colours, np.uint8)


def labels_and_photo(path, direction):
    """(label map, photo) of the aligned pair at path: the label map is the side the generator reads."""
    A, B = split_pair(open_image(path), path)
    return (A, B) if direction == 'AtoB' else (B, A)


def find_palette(paths, direction, min_fraction):
    """The class colours of the label maps of (up to PALETTE_IMAGES of) paths, read at their full size."""
    chosen = [paths[i] for i in np.linspace(0, len(paths) - 1, min(len(paths), PALETTE_IMAGES)).round().astype(int)]
    side = f'the {"A (left)" if direction == "AtoB" else "B (right)"} side, as --direction {direction} says'
    try:
        palette = discover_palette((np.asarray(labels_and_photo(path, direction)[0]) for path in chosen), min_fraction)
    except ValueError as e:
        raise UserError(f'{os.path.dirname(paths[0])}: {e}. Are the label maps {side}? Otherwise give the class '
                        f'colours with --palette "R,G,B R,G,B ..."')
    if len(palette) < 2:
        raise UserError(f'found {len(palette)} class colour(s) in the label maps of {os.path.dirname(paths[0])}. Are '
                        f'the label maps {side}? Otherwise give the colours with --palette "R,G,B R,G,B ..."')
    return palette


def load_pairs(paths, direction, size, palette, desc, device='cpu'):
    """Photos (N, 3, size, size) uint8 and their class maps (N, size, size) int16, both resized as test.py
    resizes (bicubic), the label maps' colours read into classes at that size (on `device`)."""
    photos = torch.empty(len(paths), 3, size, size, dtype=torch.uint8)
    labels = torch.empty(len(paths), size, size, 3, dtype=torch.uint8)
    for i, path in enumerate(progress_bar(paths, desc=desc)):
        label_map, photo = (image.resize((size, size), Image.BICUBIC) for image in labels_and_photo(path, direction))
        photos[i] = pil_to_tensor(photo)
        labels[i] = pil_to_tensor(label_map).permute(1, 2, 0)
    shares, classes = [], []
    for chunk in labels.split(64):  # chunks: the nearest classes of all maps at once would take 8 bytes a pixel
        chunk = chunk.to(device)
        nearest = nearest_classes(chunk, palette)
        shares.append(unmatched_shares(nearest))
        classes.append(label_classes(chunk, palette, nearest=nearest).to('cpu', torch.int16))
    # Every map has the same size: the mean of their shares is the share of all their pixels.
    refuse_other_palette(float(torch.cat(shares).mean()), f'the label maps of {os.path.dirname(paths[0])}',
                         f'the {len(palette)} class colours: they are not colour label maps of this palette. Are the '
                         f'label maps the {"A (left)" if direction == "AtoB" else "B (right)"} side, as --direction '
                         f'{direction} says?')
    return photos, labels, torch.cat(classes)


def random_crops(photos, classes, crop, generator):
    """A random crop of each pair, mirrored half the time: photos in [-1, 1] and their classes (long)."""
    n, _, h, w = photos.shape
    ys = torch.randint(0, h - crop + 1, (n,), generator=generator).tolist()
    xs = torch.randint(0, w - crop + 1, (n,), generator=generator).tolist()
    flips = (torch.rand(n, generator=generator) < 0.5).tolist()
    x = torch.stack([p[:, y:y + crop, x:x + crop] for p, y, x in zip(photos, ys, xs)])
    t = torch.stack([c[y:y + crop, x:x + crop] for c, y, x in zip(classes, ys, xs)])
    flip = torch.tensor(flips, device=photos.device)
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    t = torch.where(flip[:, None, None], t.flip(-1), t)
    return x.float() / 127.5 - 1, t.long()


def ceiling(segmenter, photos, labels, batch_size=16):
    """The semantic score of the real photos against their label maps: what generated photos can reach."""
    score = SemanticScore(segmenter)
    for p, l in zip(photos.split(batch_size), labels.split(batch_size)):
        score.update(to_network_range(p.permute(0, 2, 3, 1)), None, to_network_range(l))
    return score.result()


def main(argv=None):
    args = parse_args(argv)
    began = time.time()
    ensure_writable(os.path.dirname(os.path.abspath(args.output)))  # now, not after the training
    train_paths = make_dataset(os.path.join(args.dataroot, args.phase), args.max_dataset_size or float('inf'))
    palette = args.palette if args.palette is not None else find_palette(train_paths, args.direction,
                                                                         args.min_class_fraction)
    print(f'{len(palette)} classes, colours (RGB): {" ".join(",".join(map(str, c)) for c in palette.tolist())}')
    photos, _, classes = load_pairs(train_paths, args.direction, args.load_size, palette, 'reading the training pairs',
                                    args.device)
    unknown = float((classes == IGNORE).float().mean())
    print(f'{len(train_paths)} training pairs from {os.path.join(args.dataroot, args.phase)}, at {args.load_size}x'
          f'{args.load_size} cropped to {args.crop_size}; {unknown:.2%} of label pixels have no class (left out)')
    print(f'read and classified in {time.time() - began:.0f} s')
    photos, classes = photos.to(args.device), classes.to(args.device)

    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    net = SegmenterNet(len(palette), args.width).to(args.device)
    print(f'segmenter: U-Net of width {args.width}, {sum(p.numel() for p in net.parameters()) / 1e6:.2f} M parameters, '
          f'on {args.device}')
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    steps = args.epochs * math.ceil(len(photos) / args.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))
    start = time.time()
    for epoch in range(1, args.epochs + 1):
        net.train()
        epoch_start, loss_sum, correct, counted = time.time(), 0.0, 0, 0
        order = torch.randperm(len(photos), generator=generator)
        for batch in progress_bar(order.split(args.batch_size), desc=f'epoch {epoch}/{args.epochs}', leave=False):
            x, target = random_crops(photos[batch.to(args.device)], classes[batch.to(args.device)], args.crop_size, generator)
            scores = net(x)
            loss = F.cross_entropy(scores, target, ignore_index=IGNORE)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            known = target != IGNORE
            loss_sum += loss.item() * len(batch)
            correct += int((scores.argmax(1) == target)[known].sum())
            counted += int(known.sum())
        print(f'epoch {epoch}/{args.epochs}: loss {loss_sum / len(photos):.4f}, training pixel accuracy '
              f'{correct / max(counted, 1):.3f}, {time.time() - epoch_start:.1f} s', flush=True)
    seconds = time.time() - start

    segmenter = Segmenter(net, palette, args.crop_size, args.device, path=args.output)
    info = {'dataroot': os.path.abspath(args.dataroot), 'direction': args.direction, 'phase': args.phase,
            'pairs': len(train_paths), 'epochs': args.epochs, 'batch_size': args.batch_size, 'lr': args.lr,
            'load_size': args.load_size, 'seed': args.seed, 'device': args.device, 'training_seconds': round(seconds, 1)}
    eval_dir = os.path.join(args.dataroot, args.eval_phase) if args.eval_phase else None
    if eval_dir and os.path.isdir(eval_dir):
        eval_paths = make_dataset(eval_dir)
        eval_photos, eval_labels, _ = load_pairs(eval_paths, args.direction, args.crop_size, palette,
                                                 'reading the evaluation pairs', args.device)
        result = ceiling(segmenter, eval_photos, eval_labels)
        info.update(eval_phase=args.eval_phase, ceiling={k: result['output'][k] for k in SCORES})
        print(f'on the real photos of {eval_dir} ({len(eval_paths)}, at {args.crop_size}x{args.crop_size}): '
              f'{format_semantic(result)}')
    save_segmenter(args.output, net, palette, args.crop_size, info)
    print(f'trained in {seconds:.0f} s; saved the segmenter to {args.output}')


if __name__ == '__main__':
    main()
