"""Datasets are plug-ins: --dataset_mode NAME loads data/NAME_dataset.py and its NAMEDataset class."""
import itertools
import os

import torch

from data import demo
from data.base_dataset import BaseDataset
from data.image_folder import has_split
from util.errors import UserError
from util.plugins import find_plugin_class


def find_dataset_class(dataset_name):
    return find_plugin_class('data', dataset_name, 'dataset', BaseDataset, '--dataset_mode')


def visual_mappings(opt, labels, input_label):
    """{label: ValueMapping} of a model's visuals: G's input (input_label) in its side's values, everything else
    (its output, its target) in the other side's."""
    mappings = find_dataset_class(opt.dataset_mode).value_mappings(opt)
    input_side = 'B' if opt.direction == 'BtoA' else 'A'
    output_side = 'A' if input_side == 'B' else 'B'
    return {label: mappings[input_side if label == input_label else output_side] for label in labels}


def create_dataloader(opt, shuffle, rank=0, world_size=1, keep_workers=True):
    """Build the dataset named by --dataset_mode and a loader over this process's shard of it. keep_workers:
    its worker processes live from the first pass to the end of the run (persistent_workers), not one pass.

    A DistributedSampler is used even in one process: its order depends only on (seed, epoch), which
    is what makes an interrupted epoch reproducible. Call loader.sampler.set_epoch(epoch) each epoch.
    The loader draws its workers' seeds from a generator of its own, so that iterating it leaves the
    training process's random streams (dropout) as they would be without workers.
    """
    if os.path.commonpath([os.path.abspath(opt.dataroot), demo.DEMO_ROOT]) == demo.DEMO_ROOT:  # made on first use
        demo.ensure_demo_dataset()
    dataset = find_dataset_class(opt.dataset_mode)(opt)
    sampler = ResumableSampler(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle,
                               seed=opt.seed or 0, drop_last=False)
    workers = loader_workers(opt.num_threads, world_size)
    return torch.utils.data.DataLoader(
        dataset, batch_size=opt.batch_size, sampler=sampler, num_workers=workers,
        pin_memory=opt.device.startswith('cuda'), persistent_workers=keep_workers and workers > 0,
        generator=torch.Generator().manual_seed(opt.seed or 0))


def create_validation_loader(opt):
    """For train.py --val_freq: a loader over the split --val_phase of DATAROOT (default: val if it exists, else
    test; DATAROOT/SPLIT, or DATAROOT/SPLITA and SPLITB), its first --val_max images in sorted order, prepared
    as test.py prepares them: in order, no flip, load_size = crop_size (test.py's default), with the real images'
    values in the data's units. None without --val_freq."""
    if not opt.val_freq:
        return None
    phase = opt.val_phase or ('val' if has_split(opt.dataroot, 'val') else 'test')
    if not has_split(opt.dataroot, phase):
        named = (f'--val_phase {phase}: there is no {phase}/ (nor {phase}A/ and {phase}B/) in {opt.dataroot}'
                 if opt.val_phase else f'--val_freq {opt.val_freq}: there is no val/ or test/ (nor valA/ and valB/ '
                                       f'or testA/ and testB/) in {opt.dataroot} to validate on')
        raise UserError(f'{named}. Put held-out pairs there (laid out as {opt.phase}\'s), name another split of '
                        f'DATAROOT with --val_phase, or drop --val_freq.')
    # Images of different sizes (--preprocess none) cannot share a batch. Not training data: its batches hold the
    # real images' values in the data's units too, which the scores compare outputs with, as test.py's do.
    val_opt = opt.derive(phase=phase, max_dataset_size=opt.val_max, load_size=opt.crop_size, no_flip=True,
                         serial_batches=True, batch_size=1 if opt.preprocess == 'none' else opt.batch_size,
                         is_train=False)
    # Its workers end with each validation rather than idle, holding memory, between validations.
    return create_dataloader(val_opt, shuffle=False, keep_workers=False)


class ResumableSampler(torch.utils.data.DistributedSampler):
    """A DistributedSampler whose epoch can begin part-way: set start_index (this process's samples to skip)
    before iterating. The skipped samples are never loaded, and the rest come in the (seed, epoch) order,
    as (epoch, index) keys: the dataset seeds each sample's augmentation with them."""
    start_index = 0

    def __iter__(self):
        return ((self.epoch, index) for index in itertools.islice(super().__iter__(), self.start_index, None))

    def __len__(self):
        return max(0, self.num_samples - self.start_index)


def loader_workers(requested, processes_per_machine=1):
    """At most --num_threads workers, and never more than the cores the model's processes leave free:
    on a small CPU, workers competing with the model for cores slow training far more than in-process
    loading does."""
    spare_cores = (os.cpu_count() or 1) - 2 * processes_per_machine
    return max(0, min(requested, spare_cores))
