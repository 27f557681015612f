"""Combine folders of A and B images into pix2pix's side-by-side A|B images.

fold_A and fold_B hold the same split folders (train, val, test, ...). Each
image in fold_A/SPLIT pairs with the image of the same name in fold_B/SPLIT
(with --use_AB, x_A.ext pairs with x_B.ext and the result is named x.ext), and
fold_AB/SPLIT/NAME gets A on the left and B on the right.

Pairs that cannot be made (no partner, different sizes, unreadable file) are
reported by name and skipped; the rest are still written and the exit status
is then 1.
"""
import argparse
import os
import sys

from pairing import both_exist, is_hidden, report_problem, write_all


def parse_args(argv):
    parser = argparse.ArgumentParser(description='create image pairs')
    parser.add_argument('--fold_A', dest='fold_A', help='input directory for image A', type=str,
                        default='../dataset/50kshoes_edges')
    parser.add_argument('--fold_B', dest='fold_B', help='input directory for image B', type=str,
                        default='../dataset/50kshoes_jpg')
    parser.add_argument('--fold_AB', dest='fold_AB', help='output directory', type=str,
                        default='../dataset/test_AB')
    parser.add_argument('--num_imgs', dest='num_imgs', help='number of images', type=int, default=1000000)
    parser.add_argument('--use_AB', dest='use_AB', help='if true: (0001_A, 0001_B) to (0001_AB)',
                        action='store_true')
    parser.add_argument('--no_multiprocessing', dest='no_multiprocessing', action='store_true', default=False,
                        help='If used, chooses single CPU execution instead of parallel execution')
    args = parser.parse_args(argv)
    for folder in (args.fold_A, args.fold_B):
        if not os.path.isdir(folder):
            parser.error(f'{folder} is not a folder')
    return args


def subfolders(folder):
    return {entry.name for entry in os.scandir(folder) if entry.is_dir() and not is_hidden(entry.name)}


def images_by_pairing_name(folder, tag):
    """{name the pair is made under: file name} for the files in folder. With
    tag '_A' only x_A.ext files count, paired under x.ext."""
    names = [entry.name for entry in os.scandir(folder) if entry.is_file() and not is_hidden(entry.name)]
    if tag is None:
        return {name: name for name in names}
    return {name.replace(tag + '.', '.'): name for name in names if tag + '.' in name}


def split_jobs(args, split):
    """The (path_A, path_B, path_AB) jobs for one split, and how many problems it had."""
    folder_A, folder_B = os.path.join(args.fold_A, split), os.path.join(args.fold_B, split)
    if not both_exist(folder_A, folder_B):
        return [], 1
    files_A = images_by_pairing_name(folder_A, '_A' if args.use_AB else None)
    files_B = images_by_pairing_name(folder_B, '_B' if args.use_AB else None)
    used = sorted(files_A)[:args.num_imgs]
    print(f'split = {split}, use {len(used)}/{len(files_A)} images')

    jobs, problems = [], 0
    for name in used:
        path_A = os.path.join(folder_A, files_A[name])
        if name in files_B:
            jobs.append((path_A, os.path.join(folder_B, files_B[name]), os.path.join(args.fold_AB, split, name)))
        else:
            partner = files_A[name].replace('_A.', '_B.') if args.use_AB else name
            report_problem(f'no partner for {path_A}: {os.path.join(folder_B, partner)} is missing; skipped')
            problems += 1
    for name in sorted(set(files_B) - set(files_A)):
        report_problem(f'no partner for {os.path.join(folder_B, files_B[name])} in {folder_A}; skipped')
        problems += 1
    if jobs:
        os.makedirs(os.path.join(args.fold_AB, split), exist_ok=True)
    return jobs, problems


def main(argv=None):
    args = parse_args(argv)
    for arg, value in vars(args).items():
        print(f'[{arg}] = ', value)

    splits = sorted(subfolders(args.fold_A) | subfolders(args.fold_B))
    return write_all((split_jobs(args, split) for split in splits), parallel=not args.no_multiprocessing)


if __name__ == '__main__':
    sys.exit(main())
