"""Turn an unaligned-style dataset (trainA/trainB, testA/testB, valA/valB) whose
folders pair up by sorted file order into aligned A|B images in train/, test/
and val/, named 0000.jpg, 0001.jpg, ... as the reference does.

Usage: python datasets/make_dataset_aligned.py --dataset-path DIR
"""
import argparse
import os
import sys

from pairing import both_exist, is_hidden, report_problem, write_all

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg')
SPLITS = ('train', 'test', 'val')


def image_paths(folder):
    # Only images count: a stray file would shift every later pair by one.
    return [os.path.join(folder, name) for name in sorted(os.listdir(folder))
            if name.lower().endswith(IMAGE_EXTENSIONS) and not is_hidden(name)
            and os.path.isfile(os.path.join(folder, name))]


def split_jobs(dataset_path, split):
    """The (path_A, path_B, path_AB) jobs for one split, and how many problems it had."""
    folder_A, folder_B = os.path.join(dataset_path, split + 'A'), os.path.join(dataset_path, split + 'B')
    if not both_exist(folder_A, folder_B):
        return [], 1
    paths_A, paths_B = image_paths(folder_A), image_paths(folder_B)
    if len(paths_A) != len(paths_B):
        report_problem(f'{folder_A} has {len(paths_A)} images but {folder_B} has {len(paths_B)}; '
                       f'pairing by sorted order needs equal counts, so split {split!r} is skipped')
        return [], 1
    folder_AB = os.path.join(dataset_path, split)
    os.makedirs(folder_AB, exist_ok=True)
    return [(path_A, path_B, os.path.join(folder_AB, f'{index:04d}.jpg'))
            for index, (path_A, path_B) in enumerate(zip(paths_A, paths_B))], 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--dataset-path', dest='dataset_path', required=True,
                        help='Which folder to process (it should have subfolders testA, testB, trainA and trainB')
    dataset_path = parser.parse_args(argv).dataset_path
    print(dataset_path)

    present = [split for split in SPLITS
               if os.path.isdir(os.path.join(dataset_path, split + 'A'))
               or os.path.isdir(os.path.join(dataset_path, split + 'B'))]
    if not present:
        parser.error(f'{dataset_path} has none of ' + ', '.join(f'{s}A/{s}B' for s in SPLITS))
    return write_all((split_jobs(dataset_path, split) for split in present), parallel=True)


if __name__ == '__main__':
    sys.exit(main())
