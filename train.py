"""Train an image-to-image translation model (pix2pix by default).

    python train.py --dataroot ./datasets/facades --name facades_pix2pix --model pix2pix --direction BtoA
    python train.py --name demo          # no --dataroot: the built-in demo dataset

Every epoch walks the data once; every iteration updates D, then G (models/pix2pix_model.py).
Losses are printed every --print_freq samples, visuals saved every --display_freq, the latest
checkpoint every --save_latest_freq, and numbered checkpoints every --save_epoch_freq epochs.
"""
import random
import time

import numpy as np
import torch

from data import create_dataloader
from models import create_model
from options.train_options import TrainOptions
from util.visualizer import Visualizer


def crossed(count, step, freq):
    """True when count just passed a multiple of freq (count grows by step each iteration)."""
    return count // freq != (count - step) // freq


options = TrainOptions()
opt = options.parse()
if opt.seed is None:
    opt.seed = random.randrange(2 ** 31)  # chosen here so that it is saved with the options
random.seed(opt.seed)
np.random.seed(opt.seed)
torch.manual_seed(opt.seed)
options.save_and_print(opt, 'train_opt')

loader = create_dataloader(opt, shuffle=not opt.serial_batches)
print(f'The number of training images = {len(loader.dataset)}')
model = create_model(opt)
model.setup(opt)
visualizer = Visualizer(opt)

total_iters = 0
last_epoch = opt.n_epochs + opt.n_epochs_decay
for epoch in range(opt.epoch_count, last_epoch + 1):
    epoch_start = time.time()
    loader.sampler.set_epoch(epoch)  # a new shuffle each epoch, reproducible from (seed, epoch)
    epoch_iter = 0
    l1_sum = torch.zeros((), device=model.device)
    iter_data_time = time.time()
    for i, data in enumerate(loader):
        iter_start = time.time()
        batch = data['A'].shape[0]
        total_iters += batch
        epoch_iter += batch

        model.set_input(data)
        model.optimize_parameters()
        losses = model.get_current_losses()
        l1_sum += losses.get('G_L1', torch.zeros(()))

        if crossed(total_iters, batch, opt.display_freq):
            visualizer.save_current_results(model.get_current_visuals(), epoch)
        if crossed(total_iters, batch, opt.print_freq):
            t_comp = (time.time() - iter_start) / batch
            visualizer.print_current_losses(epoch, epoch_iter, {k: v.item() for k, v in losses.items()},
                                            t_comp, iter_start - iter_data_time)
        if crossed(total_iters, batch, opt.save_latest_freq):
            print(f'saving the latest model (epoch {epoch}, total_iters {total_iters})')
            model.save_networks('latest')
            if opt.save_by_iter:
                model.save_networks(f'iter_{total_iters}')
        iter_data_time = time.time()

    if epoch % opt.save_epoch_freq == 0 or epoch == last_epoch:
        print(f'saving the model at the end of epoch {epoch}, iters {total_iters}')
        model.save_networks('latest')
        model.save_networks(str(epoch))
    lr = model.update_learning_rate(metric=(l1_sum / max(i + 1, 1)).item())
    print(f'End of epoch {epoch} / {last_epoch} \t Time Taken: {time.time() - epoch_start:.1f} sec \t '
          f'learning rate = {lr:.7f}', flush=True)
