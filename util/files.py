"""Crash-safe file writing: a file is either its previous version or the complete new one, never torn."""
import os
import re
import tempfile

import torch

from util.errors import UserError


def mkdirs(*paths):
    for path in paths:
        os.makedirs(path, exist_ok=True)


def atomic_write(path, write, durable=True):
    """Call write(file_object) on a temporary file beside path, then rename it into place.

    A crash at any moment leaves either the previous file or the complete new one, never a torn one.
    durable=False skips the two fsyncs (a few ms each): the file is still never torn by a crash of the
    process, but a power cut may lose it. For outputs that can be made again, such as images.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.' + os.path.basename(path) + '.', suffix='.tmp')
    try:
        os.fchmod(fd, 0o666 & ~UMASK)  # mkstemp's 0600 would hide galleries and checkpoints from other users
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    if not durable:
        return
    # The rename itself survives a power cut only once the folder is on disk too.
    folder = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _umask()


def atomic_write_text(path, text):
    atomic_write(path, lambda f: f.write(text.encode('utf-8')))


def atomic_torch_save(obj, path):
    atomic_write(path, lambda f: torch.save(obj, f))


# What atomic_write leaves behind when killed: .NAME.RANDOM.tmp
STALE_TEMPORARY = re.compile(r'^\..+\.(pth|json|txt|onnx|pt2)\.[^.]+\.tmp$')


def ensure_writable(directory, what='checkpoints', flag='--checkpoints_dir'):
    """Fail at the start, with the fix, rather than at the first save hours later."""
    try:
        os.makedirs(directory, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=directory, prefix='.write_test.', suffix='.tmp')
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise UserError(f'cannot write {what} to {directory}: {e.strerror or e}. Choose a writable '
                        f'{flag} (or fix the permissions of that folder).')


def remove_stale_temporaries(directory):
    """Temporary files left by a process killed while saving (complete files are never touched)."""
    for name in os.listdir(directory):
        if STALE_TEMPORARY.match(name):
            os.remove(os.path.join(directory, name))


def options_dict(opt):
    """The options as JSON values, as saved beside the checkpoints and in the training state."""
    return {k: (v if v != float('inf') else None) for k, v in vars(opt).items()
            if isinstance(v, (str, int, float, bool, type(None)))}
