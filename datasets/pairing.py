"""Writing A|B side-by-side training images, shared by combine_A_and_B.py and
make_dataset_aligned.py."""
import os
import sys
from multiprocessing import Pool

from PIL import Image


def is_hidden(name):
    # Skips .DS_Store and the like, and our own temporary files from a crashed run.
    return name.startswith('.')


def write_pair(job):
    """Write image A with image B to its right; job is (path_A, path_B, path_AB).
    Returns None, or a message naming the pair when it had to be skipped."""
    path_A, path_B, path_AB = job
    try:
        with Image.open(path_A) as image_A, Image.open(path_B) as image_B:
            if image_A.size != image_B.size:
                return (f'size mismatch: {path_A} is {image_A.size[0]}x{image_A.size[1]} but '
                        f'{path_B} is {image_B.size[0]}x{image_B.size[1]}; skipped')
            # RGB like the reference's cv2.IMREAD_COLOR: grey becomes 3 channels, alpha goes.
            width, height = image_A.size
            combined = Image.new('RGB', (2 * width, height))
            combined.paste(image_A.convert('RGB'), (0, 0))
            combined.paste(image_B.convert('RGB'), (width, 0))
    except OSError as error:  # PIL.UnidentifiedImageError and truncated files are OSErrors
        return f'unreadable image in pair {path_A} + {path_B}: {error}; skipped'
    return _save_atomically(combined, path_AB)


def _save_atomically(image, path):
    """Save via a temporary file and a rename, so an interrupted run leaves no half image."""
    folder, name = os.path.split(path)
    extension = os.path.splitext(name)[1].lower()
    image_format = Image.registered_extensions().get(extension)
    if image_format not in Image.SAVE:
        return f'cannot write {path}: Pillow cannot save "{extension}" images; skipped'
    temporary = os.path.join(folder, f'.{name}.{os.getpid()}.tmp')
    try:
        # JPEG: OpenCV's default quality, which the reference wrote with, and
        # full-resolution colour so label-map edges stay crisp. Other formats
        # ignore both settings.
        image.save(temporary, format=image_format, quality=95, subsampling=0)
        os.replace(temporary, path)
    except (OSError, ValueError) as error:
        if os.path.exists(temporary):
            os.remove(temporary)
        return f'cannot write {path}: {error}; skipped'
    return None


def report_problem(message):
    print(message, file=sys.stderr, flush=True)


def both_exist(folder_A, folder_B):
    """True if both folders exist; otherwise reports the missing one."""
    for folder, other in ((folder_A, folder_B), (folder_B, folder_A)):
        if not os.path.isdir(folder):
            report_problem(f'{folder} is missing, so {other} is skipped')
            return False
    return True


def write_all(per_split, parallel):
    """Write every pair and print the summary line. per_split yields (jobs,
    number of problems already reported) for each split, a job being
    (path_A, path_B, path_AB). Returns the exit status: 1 if anything was
    skipped, else 0."""
    jobs, problems = [], 0
    for split_jobs, split_problems in per_split:
        jobs += split_jobs
        problems += split_problems
    if parallel and len(jobs) > 1:
        with Pool() as pool:
            write_problems = _count_problems(pool.imap_unordered(write_pair, jobs, chunksize=8))
    else:
        write_problems = _count_problems(map(write_pair, jobs))
    written, problems = len(jobs) - write_problems, problems + write_problems
    if problems:
        print(f'Wrote {written} images; skipped some: {problems} problem(s), see the messages above.')
        return 1
    print(f'Wrote {written} images.')
    return 0


def _count_problems(results):
    problems = 0
    for problem in results:
        if problem is not None:
            report_problem(problem)
            problems += 1
    return problems
