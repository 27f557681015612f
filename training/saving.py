"""Writing a training model's networks, with the weight averages' batch norm statistics recomputed
(--ema_bn_images) over the training images."""
from torch.utils.data import default_collate


class NetworkSaver:
    """save(prefix, names) writes the model's networks and weight averages as <prefix>_net_<name>.pth.

    A weight average's batch norm running statistics are averages of the trained weights' statistics, which
    do not fit the averaged weights; with --ema_bn_images N and batch norm, each saved average carries
    statistics recomputed over the first N samples of dataset (train.py gives it the training set), while
    the average kept for training goes on unchanged."""

    def __init__(self, model, opt, dataset=None):
        self.model = model
        self.opt = opt
        self.dataset = dataset

    def save(self, prefix, names=None):
        averages = {name: self.average_to_save(average) for name, average in self.model.averages.items()
                    if names is None or name in names}
        self.model.save_networks(prefix, names, averages)

    def average_to_save(self, average):
        images = min(getattr(self.opt, 'ema_bn_images', 0), len(self.dataset or ()))
        if not images or self.opt.norm not in ('batch', 'syncbatch'):
            return average.net
        model, size = self.model, self.opt.batch_size  # the batches training normalises over
        batches = (model.generator_input(default_collate([self.dataset[i]
                                                          for i in range(start, min(start + size, images))]))
                   for start in range(0, images, size))
        with model.autocast():
            return average.with_recomputed_statistics(batches, model.generate)
