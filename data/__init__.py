"""Datasets are plug-ins: --dataset_mode NAME loads data/NAME_dataset.py and its NAMEDataset class."""
import importlib
import os

import torch

from data.base_dataset import BaseDataset


def find_dataset_class(dataset_name):
    module_name = f'data.{dataset_name}_dataset'
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:
            raise
        from options.base_options import OptionError
        raise OptionError(f'--dataset_mode {dataset_name}: there is no data/{dataset_name}_dataset.py '
                          f'(available: {", ".join(available("data", "_dataset"))})')
    target = dataset_name.replace('_', '') + 'dataset'
    for name, cls in vars(module).items():
        if name.lower() == target and isinstance(cls, type) and issubclass(cls, BaseDataset):
            return cls
    raise ImportError(f'{module_name}.py must define a subclass of BaseDataset named {target} (any case)')


def available(package, suffix):
    import pkgutil
    pkg = importlib.import_module(package)
    return sorted(m.name[:-len(suffix)] for m in pkgutil.iter_modules(pkg.__path__) if m.name.endswith(suffix))


def create_dataloader(opt, shuffle, rank=0, world_size=1):
    """Build the dataset named by --dataset_mode and a loader over this process's shard of it.

    A DistributedSampler is used even in one process: its order depends only on (seed, epoch), which
    is what makes an interrupted epoch reproducible. Call loader.sampler.set_epoch(epoch) each epoch.
    """
    dataset = find_dataset_class(opt.dataset_mode)(opt)
    sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle,
                                                  seed=opt.seed or 0, drop_last=False)
    workers = loader_workers(opt.num_threads, world_size)
    return torch.utils.data.DataLoader(
        dataset, batch_size=opt.batch_size, sampler=sampler, num_workers=workers,
        pin_memory=opt.device.startswith('cuda'), persistent_workers=workers > 0)


def loader_workers(requested, processes_per_machine=1):
    """At most --num_threads workers, and never more than the cores the model's processes leave free:
    on a small CPU, workers competing with the model for cores slow training far more than in-process
    loading does."""
    spare_cores = (os.cpu_count() or 1) - 2 * processes_per_machine
    return max(0, min(requested, spare_cores))
