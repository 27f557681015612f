"""The download scripts, run for real against a local HTTP server, and the
archive checks they rely on."""
import io
import os
import stat
import subprocess
import sys
import tarfile
import zipfile

import pytest
import torch

from tests.servers import http_server
from util.archives import ArchiveError, UnsafeArchiveError, safe_extract

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATASET_SCRIPT = os.path.join(REPO_ROOT, 'datasets', 'download_pix2pix_dataset.sh')
MODEL_SCRIPT = os.path.join(REPO_ROOT, 'scripts', 'download_pix2pix_model.sh')
DATASET_NAMES = ['facades', 'maps', 'edges2shoes', 'edges2handbags', 'night2day', 'cityscapes']
MODEL_NAMES = ['facades_label2photo', 'edges2shoes', 'sat2map', 'map2sat', 'day2night']


def member(name, data=b'', kind=tarfile.REGTYPE, linkname=''):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info, data


def write_tar(path, members, mode='w:gz'):
    with tarfile.open(path, mode) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


FACADES = [member('facades', kind=tarfile.DIRTYPE),
           member('facades/train/1.jpg', b'train image'),
           member('facades/test/1.jpg', b'test image')]


@pytest.fixture
def env(tmp_path):
    """Environment for the scripts: destinations in tmp and this interpreter as python3."""
    variables = {key: value for key, value in os.environ.items() if 'proxy' not in key.lower()}
    variables.update(PATH=os.path.dirname(sys.executable) + os.pathsep + variables['PATH'],
                     PIX2PIX_DATASETS_DIR=str(tmp_path / 'datasets'),
                     PIX2PIX_CHECKPOINTS_DIR=str(tmp_path / 'checkpoints'))
    return variables


def run_script(script, name, env, cwd):
    # cwd is a scratch folder, never the repo root: the scripts must work from anywhere.
    return subprocess.run(['bash', script, name], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


def download(script, name, served, env, cwd):
    """Run a download script for name against a local HTTP server of the folder served; returns the
    script's result and the server's base URL."""
    variable = 'PIX2PIX_DATASET_URL' if script == DATASET_SCRIPT else 'PIX2PIX_MODEL_URL'
    with http_server(served) as server:
        url = server.url.rstrip('/')
        return run_script(script, name, dict(env, **{variable: url}), cwd=cwd), url


def folder_tree(root):
    return sorted(os.path.relpath(os.path.join(folder, name), root)
                  for folder, folders, files in os.walk(root) for name in folders + files)


# --- datasets/download_pix2pix_dataset.sh

def test_dataset_is_downloaded_and_extracted(tmp_path, env):
    served = tmp_path / 'served'
    served.mkdir()
    write_tar(served / 'facades.tar.gz', FACADES)

    result, url = download(DATASET_SCRIPT, 'facades', served, env, cwd=served)
    assert result.returncode == 0, result.stderr
    again, _ = download(DATASET_SCRIPT, 'facades', served, env, cwd=served)

    datasets = tmp_path / 'datasets'
    assert (datasets / 'facades' / 'train' / '1.jpg').read_bytes() == b'train image'
    assert folder_tree(datasets) == ['facades', 'facades/test', 'facades/test/1.jpg',
                                     'facades/train', 'facades/train/1.jpg']
    assert again.returncode == 0 and 'already exists' in again.stdout


@pytest.mark.parametrize('script, name, file, folder', [
    (DATASET_SCRIPT, 'maps', 'maps.tar.gz', 'datasets'),
    (MODEL_SCRIPT, 'day2night', 'day2night.pth', 'checkpoints'),
])
def test_a_file_missing_on_the_server_leaves_nothing(tmp_path, env, script, name, file, folder):
    result, url = download(script, name, tmp_path, env, cwd=tmp_path)  # the server has nothing: a 404
    assert result.returncode != 0
    assert f'{url}/{file}' in result.stderr
    assert not (tmp_path / folder).exists()


def test_truncated_dataset_leaves_nothing(tmp_path, env):
    whole = write_tar(tmp_path / 'whole.tar.gz', FACADES + [member('facades/val/1.jpg', os.urandom(50000))])
    served = tmp_path / 'served'
    served.mkdir()
    (served / 'facades.tar.gz').write_bytes(whole.read_bytes()[:whole.stat().st_size // 2])
    (tmp_path / 'datasets').mkdir()

    result, url = download(DATASET_SCRIPT, 'facades', served, env, cwd=tmp_path)

    assert result.returncode != 0
    assert 'nothing was extracted' in result.stderr
    assert os.listdir(tmp_path / 'datasets') == []


@pytest.mark.parametrize('evil', [
    member('../evil.txt', b'escaped'),
    member('facades/../../evil.txt', b'escaped'),
    member('/ABSOLUTE/evil.txt', b'escaped'),
    member('facades/escape', kind=tarfile.SYMTYPE, linkname='../..'),
], ids=['parent', 'nested-parent', 'absolute', 'symlink'])
def test_unsafe_dataset_archive_is_refused(tmp_path, env, evil):
    info, data = evil
    info.name = info.name.replace('/ABSOLUTE', str(tmp_path))
    served = tmp_path / 'served'
    served.mkdir()
    write_tar(served / 'facades.tar.gz', FACADES + [(info, data)])

    result, url = download(DATASET_SCRIPT, 'facades', served, env, cwd=served)

    assert result.returncode != 0
    assert 'nothing was extracted' in result.stderr
    assert not (tmp_path / 'datasets').exists()
    assert not (tmp_path / 'evil.txt').exists() and not (tmp_path.parent / 'evil.txt').exists()


def test_unknown_dataset_lists_the_valid_names(tmp_path, env):
    result = run_script(DATASET_SCRIPT, 'horses', env, cwd=tmp_path)
    assert result.returncode != 0
    assert all(name in result.stderr for name in DATASET_NAMES)
    assert not (tmp_path / 'datasets').exists()


def test_cityscapes_explains_the_manual_steps(tmp_path, env):
    result = run_script(DATASET_SCRIPT, 'cityscapes', env, cwd=tmp_path)
    assert result.returncode != 0
    for needed in ('cityscapes-dataset.com', 'gtFine', 'leftImg8bit', 'combine_A_and_B.py'):
        assert needed in result.stderr
    assert not (tmp_path / 'datasets').exists()


# --- scripts/download_pix2pix_model.sh

def save_state_dict(path):
    state = {'model.0.weight': torch.arange(6.0).view(2, 3), 'model.0.bias': torch.ones(2)}
    torch.save(state, path)
    return state


def test_model_lands_where_test_py_looks(tmp_path, env):
    served = tmp_path / 'served'
    served.mkdir()
    state = save_state_dict(served / 'facades_label2photo.pth')

    result, url = download(MODEL_SCRIPT, 'facades_label2photo', served, env, cwd=served)

    assert result.returncode == 0, result.stderr
    checkpoints = tmp_path / 'checkpoints'
    assert folder_tree(checkpoints) == ['facades_label2photo_pretrained',
                                        'facades_label2photo_pretrained/latest_net_G.pth']
    loaded = torch.load(checkpoints / 'facades_label2photo_pretrained' / 'latest_net_G.pth', weights_only=True)
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[key], state[key]) for key in state)


@pytest.mark.parametrize('served_bytes', [
    lambda good: os.urandom(2000),
    lambda good: good[:len(good) // 2],
], ids=['garbage', 'truncated'])
def test_corrupt_model_is_refused_and_the_old_one_kept(tmp_path, env, served_bytes):
    served = tmp_path / 'served'
    served.mkdir()
    save_state_dict(served / 'good.pth')
    (served / 'sat2map.pth').write_bytes(served_bytes((served / 'good.pth').read_bytes()))
    previous = tmp_path / 'checkpoints' / 'sat2map_pretrained' / 'latest_net_G.pth'
    previous.parent.mkdir(parents=True)
    previous.write_bytes(b'an earlier download')

    result, url = download(MODEL_SCRIPT, 'sat2map', served, env, cwd=tmp_path)

    assert result.returncode != 0
    assert 'not a loadable PyTorch state_dict' in result.stderr
    assert previous.read_bytes() == b'an earlier download'
    assert folder_tree(tmp_path / 'checkpoints') == ['sat2map_pretrained', 'sat2map_pretrained/latest_net_G.pth']


def test_unknown_model_lists_the_valid_names(tmp_path, env):
    result = run_script(MODEL_SCRIPT, 'facades', env, cwd=tmp_path)
    assert result.returncode != 0
    assert all(name in result.stderr for name in MODEL_NAMES)
    assert not (tmp_path / 'checkpoints').exists()


# --- util/archives.py directly

def assert_refused(archive, tmp_path, error=UnsafeArchiveError, match=None):
    before = folder_tree(tmp_path)
    with pytest.raises(error, match=match):
        safe_extract(archive, tmp_path / 'dest')
    assert folder_tree(tmp_path) == before


def test_extracts_files_folders_and_inside_links(tmp_path):
    archive = write_tar(tmp_path / 'a.tar.gz', FACADES + [
        member('facades/latest', kind=tarfile.SYMTYPE, linkname='train'),
        member('facades/copy.jpg', kind=tarfile.LNKTYPE, linkname='facades/train/1.jpg'),
        member('facades/copy2.jpg', kind=tarfile.LNKTYPE, linkname='facades/copy.jpg'),
        member('facades/up/here', kind=tarfile.SYMTYPE, linkname='../test/1.jpg'),
    ])
    assert safe_extract(archive, tmp_path / 'dest') == [str(tmp_path / 'dest' / 'facades')]
    root = tmp_path / 'dest' / 'facades'
    assert (root / 'latest' / '1.jpg').read_bytes() == b'train image'
    assert (root / 'copy.jpg').read_bytes() == (root / 'copy2.jpg').read_bytes() == b'train image'
    assert (root / 'up' / 'here').read_bytes() == b'test image'
    assert sorted(os.listdir(tmp_path)) == ['a.tar.gz', 'dest']


@pytest.mark.parametrize('evil', [
    member('/etc/evil'),
    member('a/../../evil'),
    member('link', kind=tarfile.SYMTYPE, linkname='/etc'),
    member('link', kind=tarfile.SYMTYPE, linkname='../outside'),
    member('hard', kind=tarfile.LNKTYPE, linkname='/etc/passwd'),
    member('hard', kind=tarfile.LNKTYPE, linkname='../outside'),
    member('hard', kind=tarfile.LNKTYPE, linkname='facades/not-in-archive.jpg'),
    member('device', kind=tarfile.CHRTYPE),
    member('block', kind=tarfile.BLKTYPE),
    member('fifo', kind=tarfile.FIFOTYPE),
], ids=lambda evil: f'{evil[0].name}->{evil[0].linkname}' if evil[0].linkname else evil[0].name)
def test_refuses_escaping_or_special_members(tmp_path, evil):
    assert_refused(write_tar(tmp_path / 'a.tar', FACADES + [evil], mode='w'), tmp_path)


def test_refuses_links_that_escape_through_other_links(tmp_path):
    # x/up -> .. is the destination itself, so y -> x/up/.. is its parent,
    # although the path normalizes to "x".
    chain = [member('x', kind=tarfile.DIRTYPE),
             member('x/up', kind=tarfile.SYMTYPE, linkname='..'),
             member('y', kind=tarfile.SYMTYPE, linkname='x/up/..')]
    assert_refused(write_tar(tmp_path / 'chained.tar', chain, mode='w'), tmp_path)
    # Stored before the link it escapes through, y passes tarfile's data filter.
    assert_refused(write_tar(tmp_path / 'reversed.tar', chain[::-1], mode='w'), tmp_path)
    # tarfile extracts a hard link to a symlink as a copy of the symlink: here
    # h -> ../../f, which points outside from where h stands.
    to_symlink = write_tar(tmp_path / 'to_symlink.tar', [
        member('d1/d2/s', kind=tarfile.SYMTYPE, linkname='../../f'),
        member('h', kind=tarfile.LNKTYPE, linkname='d1/d2/s'),
        member('f', b'the symlink target'),
    ], mode='w')
    assert_refused(to_symlink, tmp_path)
    # Writing through an (inside) link is refused too, though the data filter
    # allows it: what it points to could change. A ".." must not hide the link.
    for name in ['facades/alias/2.jpg', 'facades/train/../alias/2.jpg']:
        through = write_tar(tmp_path / 'through.tar', FACADES + [
            member('facades/alias', kind=tarfile.SYMTYPE, linkname='train'),
            member(name, b'via a link'),
        ], mode='w')
        assert_refused(through, tmp_path)


def test_data_filter_refusal_names_the_archive_and_the_member(tmp_path):
    archive = write_tar(tmp_path / 'a.tar', FACADES + [member('facades/device', kind=tarfile.CHRTYPE)], mode='w')
    assert_refused(archive, tmp_path, match=r"a\.tar: unsafe member.*'facades/device' is a special file")


def test_a_python_without_the_data_filter_is_told_to_upgrade(tmp_path, monkeypatch):
    monkeypatch.delattr(tarfile, 'data_filter')
    assert_refused(write_tar(tmp_path / 'a.tar.gz', FACADES), tmp_path, ArchiveError, match='needs Python 3.10.12, 3.11.4')


def test_refuses_truncated_plain_tar_cut_at_a_header(tmp_path):
    whole = write_tar(tmp_path / 'whole.tar', FACADES, mode='w').read_bytes()
    cut = tmp_path / 'cut.tar'
    cut.write_bytes(whole[:tarfile.BLOCKSIZE])  # only the first folder's header
    assert_refused(cut, tmp_path, ArchiveError)


def test_refuses_to_overwrite_an_existing_entry(tmp_path):
    archive = write_tar(tmp_path / 'a.tar.gz', FACADES)
    (tmp_path / 'dest' / 'facades').mkdir(parents=True)
    assert_refused(archive, tmp_path, ArchiveError)


def test_zip_archives(tmp_path):
    good = tmp_path / 'good.zip'
    with zipfile.ZipFile(good, 'w') as archive:
        archive.writestr('facades/train/1.jpg', b'train image')
    safe_extract(good, tmp_path / 'dest')
    assert (tmp_path / 'dest' / 'facades' / 'train' / '1.jpg').read_bytes() == b'train image'

    for name, evil in [('parent.zip', '../evil'), ('absolute.zip', '/tmp/evil'), ('link.zip', 'link')]:
        with zipfile.ZipFile(tmp_path / name, 'w') as archive:
            info = zipfile.ZipInfo(evil)
            if name == 'link.zip':
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, b'/etc/passwd')
        assert_refused(tmp_path / name, tmp_path)


def test_command_line(tmp_path):
    archive = write_tar(tmp_path / 'a.tgz', FACADES)
    command = [sys.executable, '-m', 'util.archives', str(archive), str(tmp_path / 'dest')]
    ok = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / 'dest' / 'facades' / 'test' / '1.jpg').exists()
    again = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and again.stderr.startswith('error:') and 'already exists' in again.stderr


def test_downloaded_reference_generator_runs_in_test_py_with_no_architecture_flags(tmp_path, env):
    # A reference-format file (plain state_dict, module nesting of the reference, no architecture.json);
    # unet_32 with ngf 8 and batch norm stands in for the published unet_256 ones.
    import numpy as np
    from PIL import Image

    from models import networks
    from tests.scripts import run
    torch.manual_seed(0)
    net = networks.define_G(3, 3, 8, 'unet_32', 'batch', use_dropout=True)
    served = tmp_path / 'served'
    served.mkdir()
    torch.save(net.state_dict(), served / 'facades_label2photo.pth')
    assert download(MODEL_SCRIPT, 'facades_label2photo', served, env, cwd=served)[0].returncode == 0
    labels = tmp_path / 'labels'
    labels.mkdir()
    Image.new('RGB', (64, 64), (200, 30, 30)).save(labels / 'red.png')

    proc = run('test.py', '--dataroot', labels, '--name', 'facades_label2photo_pretrained', '--model', 'test',
               '--checkpoints_dir', tmp_path / 'checkpoints', '--results_dir', tmp_path / 'results', '--eval')
    assert 'netG: unet_32' in proc.stdout and 'ngf: 8' in proc.stdout
    produced = Image.open(tmp_path / 'results' / 'facades_label2photo_pretrained' / 'test_latest' / 'images' /
                          'red_fake.png')
    x = torch.tensor([200 / 127.5 - 1, 30 / 127.5 - 1, 30 / 127.5 - 1]).view(1, 3, 1, 1).expand(1, 3, 256, 256)
    with torch.no_grad():
        expected = ((net.eval()(x)[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    got = torch.from_numpy(np.asarray(produced).copy())
    assert (got.int() - expected.int()).abs().max() <= 1
