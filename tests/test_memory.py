"""Thousands of iterations keep the trainer's memory flat (nothing accumulates per iteration: no
retained graphs, no growing lists of losses or images)."""
import re
import time

from tests.tiny_data import make_aligned_pairs

MIB = 1024 * 1024


def resident_bytes(pid):
    with open(f'/proc/{pid}/status') as f:
        return int(re.search(r'VmRSS:\s+(\d+) kB', f.read())[1]) * 1024


def test_memory_stays_flat_over_2000_iterations(runner, tmp_path):
    data = make_aligned_pairs(str(tmp_path / 'data'), count=10, size=16, phases=('train',))
    # Prints, saves, numbered checkpoints and web-page updates all happen several times.
    child = runner.start('train.py', '--dataroot', data, '--checkpoints_dir', tmp_path / 'checkpoints',
                         '--name', 'long', '--netG', 'unet_16', '--ngf', 4, '--ndf', 4, '--load_size', 16,
                         '--crop_size', 16, '--norm', 'instance', '--netD', 'n_layers', '--n_layers_D', 1,
                         '--n_epochs', 200, '--n_epochs_decay', 0, '--print_freq', 100, '--display_freq', 250,
                         '--save_latest_freq', 500, '--save_epoch_freq', 50, '--display_id', 0,
                         '--num_threads', 0, '--seed', 0)
    samples = []  # (iterations printed so far, resident bytes)
    while True:
        try:
            rss = resident_bytes(child.pid)
        except (FileNotFoundError, ProcessLookupError, TypeError):  # gone, or a zombie without VmRSS
            break
        samples.append((100 * child.stdout.count('(epoch: '), rss))
        if 'End of epoch 200 / 200' in child.stdout:
            break
        time.sleep(0.05)
    assert child.wait(timeout=120) == 0, child.stderr[-2000:]

    # Start: once warm, after the first save and page write (their buffers are allocated on first use).
    start = next(rss for iterations, rss in samples if iterations >= 600)
    end = [rss for iterations, rss in samples if iterations >= 1900][-1]
    assert end - start < 8 * MIB, f'resident size grew from {start / MIB:.1f} MiB to {end / MIB:.1f} MiB'
