"""Train an image-to-image translation model (pix2pix by default).

    python train.py --dataroot ./datasets/facades --name facades_pix2pix --model pix2pix --direction BtoA
    python train.py --name demo          # no --dataroot: the built-in demo dataset
    torchrun --nproc_per_node=2 train.py --name demo   # 2 processes (GPUs), one model (util/distributed.py)

Every epoch walks the data once; every iteration updates D, then G (models/pix2pix_model.py).
Losses are printed (and plotted in visdom and on checkpoints/NAME/web/index.html) every --print_freq
samples, visuals shown and saved every --display_freq, the latest checkpoint (with everything needed
to resume exactly, util/training_state.py) every --save_latest_freq, and numbered checkpoints every
--save_epoch_freq epochs.
"""
import random
import time

import numpy as np
import torch

from data import create_dataloader
from models import create_model
from options.train_options import TrainOptions
from util import distributed
from util.training_state import TrainingState
from util.visualizer import Visualizer


def crossed(count, step, freq):
    """True when count just passed a multiple of freq (count grows by step each iteration)."""
    return count // freq != (count - step) // freq


options = TrainOptions()
opt = options.parse()
rank, world_size = distributed.setup(opt)  # (0, 1) unless started by torchrun
# Checks the checkpoint folder is writable; with --continue_train reads latest_train_state.pth (and its seed).
state = TrainingState(opt)
if opt.seed is None:
    # Chosen here so that it is saved with the options; rank 0's, as it orders every rank's data.
    opt.seed = distributed.broadcast(random.randrange(2 ** 31))
random.seed(opt.seed + rank)  # each rank draws its own crops, flips and dropout
np.random.seed(opt.seed + rank)
torch.manual_seed(opt.seed + rank)

loader = create_dataloader(opt, shuffle=not opt.serial_batches, rank=rank, world_size=world_size)
print(f'The number of training images = {len(loader.dataset)}')
model = create_model(opt)
distributed.barrier()  # --continue_train: every rank loads the files rank 0 wrote, once it is done writing
model.setup(opt)
state.start(model)  # --continue_train: networks, optimizers, schedulers, counters; catch SIGINT/SIGTERM from now
if distributed.is_main():  # written once the data and model are known good, so a failed start keeps the old ones
    options.save_and_print(opt, 'train_opt')
for name in model.model_names:  # DDP: same start on every rank, gradients averaged over ranks
    setattr(model, 'net' + name, distributed.wrap(getattr(model, 'net' + name)))
visualizer = Visualizer(opt, is_main=distributed.is_main())

total_iters = state.total_iters
last_epoch = opt.n_epochs + opt.n_epochs_decay
for epoch in range(state.epoch, last_epoch + 1):
    epoch_start = time.time()
    epoch_iter, l1_sum = state.seen(epoch, model.device)  # zero, or what an interrupted epoch had seen
    iter_data_time = time.time()
    visualizer.reset()
    # A new shuffle each epoch, reproducible from (seed, epoch); a resumed epoch skips the samples it saw.
    for data in visualizer.progress(state.batches(loader, epoch), epoch, last_epoch):
        iter_start = time.time()
        batch = data['A'].shape[0] * world_size  # samples in this step, over all ranks
        total_iters += batch
        epoch_iter += batch

        model.set_input(data)
        model.optimize_parameters()
        model.update_averages()  # --ema_decay: the moving average of G's weights (models/weight_average.py)
        losses = model.get_current_losses()
        l1_sum += losses.get('G_L1', torch.zeros(())) * batch
        state.watch(losses, epoch, total_iters)  # NaN/Inf noted on the device, checked when printing or saving

        if crossed(total_iters, batch, opt.display_freq):
            visualizer.display_current_results(model.get_current_visuals(), epoch,
                                               save_result=crossed(total_iters, batch, opt.update_html_freq))
        if crossed(total_iters, batch, opt.print_freq):
            state.check_losses()
            t_comp = (time.time() - iter_start) / batch
            values = {k: v.item() for k, v in distributed.mean_over_ranks(losses).items()}
            visualizer.print_current_losses(epoch, epoch_iter, values, t_comp, iter_start - iter_data_time)
            visualizer.plot_current_losses(epoch, epoch_iter / len(loader.dataset), values)
        if crossed(total_iters, batch, opt.save_latest_freq):
            visualizer.print_message(f'saving the latest model (epoch {epoch}, total_iters {total_iters})')
            state.save(model, epoch, epoch_iter, total_iters, l1_sum)  # latest_net_*.pth + latest_train_state.pth
            if opt.save_by_iter and distributed.is_main():
                model.save_networks(f'iter_{total_iters}')
        if state.should_stop(total_iters, batch):  # SIGINT/SIGTERM came: save, then exit
            state.save_and_exit(model, epoch, epoch_iter, total_iters, l1_sum)
        iter_data_time = time.time()

    if epoch % opt.save_epoch_freq == 0 or epoch == last_epoch:
        print(f'saving the model at the end of epoch {epoch}, iters {total_iters}')
        state.save(model, epoch, epoch_iter, total_iters, l1_sum)
        if distributed.is_main():
            model.save_networks(str(epoch))
    l1_mean = distributed.mean_over_ranks({'G_L1': l1_sum / max(epoch_iter, 1)})['G_L1']  # ranks must agree
    lr = model.update_learning_rate(metric=l1_mean.item())
    print(f'End of epoch {epoch} / {last_epoch} \t Time Taken: {time.time() - epoch_start:.1f} sec \t '
          f'learning rate = {lr:.7f}', flush=True)
distributed.cleanup()
