"""Extract a downloaded .tar(.gz/.bz2/.xz)/.tgz/.zip archive without trusting it.

Tar archives go through tarfile's 'data' filter (PEP 706), which refuses
special files and members or links that land outside the destination; our own
checks add what it misses (see _check_tar) and the truncation check. Zip
archives have no such filter: all their checks are ours. The archive is
extracted into a temporary folder beside the destination and its top-level
entries are then renamed into place, so a refused, corrupt or truncated archive
leaves nothing behind.

Shell use: python -m util.archives ARCHIVE DEST
"""
import os
import shutil
import stat
import sys
import tarfile
import tempfile
import zipfile
import zlib

from util.errors import UserError

_MAX_LINK_DEPTH = 40  # as Linux's own symlink-following limit


class ArchiveError(UserError):
    """The archive cannot be read, or extracting it would overwrite something."""


class UnsafeArchiveError(ArchiveError):
    """A member would land outside the destination or is not a plain file/folder/link."""


def _parts(name, member):
    """Path components of an archive-relative path, refusing ones that could escape."""
    if name.startswith('/'):
        raise UnsafeArchiveError(f'unsafe member {member!r}: absolute path {name!r}')
    parts = [part for part in name.split('/') if part not in ('', '.')]
    if '..' in parts:
        raise UnsafeArchiveError(f'unsafe member {member!r}: ".." in path {name!r}')
    return parts


def _resolve(parts, links, depth=0):
    """Where `parts` lands once the archive's own symlinks are followed like the OS
    does; None if it leaves the destination. A lexical normpath is not enough:
    with `x/up -> ..`, `x/up/..` is outside although it normalizes to `x`.
    Absolute targets are not special-cased: the data filter refuses every
    absolute link."""
    if depth > _MAX_LINK_DEPTH:
        return None
    resolved = []
    for part in parts:
        if part in ('', '.'):
            continue
        if part == '..':
            if not resolved:
                return None
            resolved.pop()
            continue
        resolved.append(part)
        target = links.get('/'.join(resolved))
        if target is not None:
            resolved = _resolve(resolved[:-1] + target.split('/'), links, depth + 1)
            if resolved is None:
                return None
    return resolved


def _check_tar(members):
    """What the data filter lets through: it strips a leading '/'; it checks a
    link against what is extracted so far, missing one that escapes through a
    link stored after it; it writes through inside symlinks; it extracts a hard
    link to a symlink as a copy of that symlink, maybe pointing outside, and
    one to a missing member as a bare KeyError. Being lexical, these checks
    also do not share the filter's realpath bypasses (python/cpython#135034)."""
    named = [(member, _parts(member.name, member.name)) for member in members]
    links = {'/'.join(parts): member.linkname for member, parts in named if member.issym()}
    files = set()  # what a hard link may name: files (and checked hard links) stored before it
    for member, parts in named:
        for end in range(1, len(parts)):
            if '/'.join(parts[:end]) in links:
                raise UnsafeArchiveError(f'unsafe member {member.name!r}: '
                                         f'stored under the symlink {"/".join(parts[:end])!r}')
        # Resolving a symlink's own path follows it (and any chain it starts).
        if member.issym() and _resolve(parts, links) is None:
            raise UnsafeArchiveError(f'unsafe member {member.name!r}: '
                                     f'symlink to {member.linkname!r} points outside')
        # A hard link's target names an earlier member, relative to the archive root.
        if member.islnk() and '/'.join(_parts(member.linkname, member.name)) not in files:
            raise UnsafeArchiveError(f'unsafe member {member.name!r}: hard link to {member.linkname!r}, '
                                     'which is not a file stored before it in the archive')
        (files.add if member.isfile() or member.islnk() else files.discard)('/'.join(parts))


def _check_complete(archive):
    """tarfile quietly takes a stream cut off at a header boundary for the end of
    the archive, and never reads a compressed stream's trailer. Insist on the
    end-of-archive marker (two zero blocks) and read on to the very end so that
    gzip/bz2/xz verify their checksums."""
    archive.fileobj.seek(archive.offset)
    if archive.fileobj.read(2 * tarfile.BLOCKSIZE) != bytes(2 * tarfile.BLOCKSIZE):
        raise ArchiveError('truncated: no end-of-archive marker after the last member')
    while archive.fileobj.read(1 << 20):
        pass


def _check_zip(infos):
    for info in infos:
        _parts(info.filename, info.filename)
        # Unix zips keep the file type in the high bits; zipfile would write a
        # symlink or device entry as a plain file holding its target, so refuse
        # rather than silently change what the archive means.
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise UnsafeArchiveError(f'unsafe member {info.filename!r}: symlink or special file in a zip')


def _extract_into(archive_path, folder):
    if zipfile.is_zipfile(archive_path):
        with zipfile.ZipFile(archive_path) as archive:
            _check_zip(archive.infolist())
            bad_member = archive.testzip()
            if bad_member is not None:
                raise ArchiveError(f'{bad_member!r} is corrupt (CRC mismatch)')
            archive.extractall(folder)
        return
    try:
        archive = tarfile.open(archive_path)
    except tarfile.ReadError:
        # A zip cut short loses its central directory and lands here too.
        raise ArchiveError('not a tar or zip archive, or cut off early') from None
    with archive:
        if not hasattr(tarfile, 'data_filter'):
            # Refusing is smaller than keeping a second copy of what the filter
            # checks, and every supported Python has had it since June 2023.
            raise ArchiveError('extracting a tar archive safely needs Python 3.10.12, 3.11.4, 3.12 or newer')
        # Reading every header decompresses all the data: truncation shows here,
        # before anything is written.
        members = archive.getmembers()
        _check_complete(archive)
        _check_tar(members)
        try:
            # Also drops setuid bits, group/other write bits and ownership.
            archive.extractall(folder, members=members, filter='data')
        except tarfile.FilterError as error:  # its message names the member
            raise UnsafeArchiveError(f'unsafe member, refused by the data filter: {error}') from None


def safe_extract(archive_path, dest_dir):
    """Extract archive_path so that its top-level entries appear in dest_dir
    (created if missing), like `tar -xf ARCHIVE -C DEST`.

    Raises UnsafeArchiveError for a malicious member and ArchiveError for a
    missing, unreadable or truncated archive or when an entry already exists
    in dest_dir; either way nothing is written. Returns the new entries' paths.
    """
    if not os.path.isfile(archive_path):
        raise ArchiveError(f'{archive_path}: no such file')
    dest_dir = os.path.abspath(dest_dir)
    parent = os.path.dirname(dest_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f'.{os.path.basename(dest_dir)}.extract-', dir=parent)
    try:
        try:
            _extract_into(archive_path, staging)
        except ArchiveError as error:
            raise type(error)(f'{archive_path}: {error.message}') from None
        # RuntimeError: zipfile's verdict on encrypted members or unknown compression.
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError, RuntimeError) as error:
            raise ArchiveError(f'{archive_path}: cannot extract: {error}') from error
        entries = sorted(os.listdir(staging))
        if not entries:
            raise ArchiveError(f'{archive_path}: archive is empty')
        clashes = [os.path.join(dest_dir, entry) for entry in entries
                   if os.path.lexists(os.path.join(dest_dir, entry))]
        if clashes:
            raise ArchiveError(f'{", ".join(clashes)} already exists; remove it first')
        os.makedirs(dest_dir, exist_ok=True)
        for entry in entries:
            os.rename(os.path.join(staging, entry), os.path.join(dest_dir, entry))
        return [os.path.join(dest_dir, entry) for entry in entries]
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print('usage: python -m util.archives ARCHIVE DEST', file=sys.stderr)
        return 2
    safe_extract(*args)  # an ArchiveError exits with its one-line message and status 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
