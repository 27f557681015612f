"""Train an image-to-image translation model (pix2pix by default).

    python train.py --dataroot ./datasets/facades --name facades_pix2pix --model pix2pix --direction BtoA
    python train.py --name demo          # no --dataroot: the built-in demo dataset
    torchrun --nproc_per_node=2 train.py --name demo   # 2 processes (GPUs), one model (util/distributed.py)

Every epoch walks the data once; every iteration updates D, then G (models/pix2pix_model.py).
Losses are printed (and plotted in visdom and on checkpoints/NAME/web/index.html) every --print_freq
samples, visuals shown and saved every --display_freq, the latest checkpoint (with everything needed
to resume exactly, training/state.py) every --save_latest_freq, and numbered checkpoints every
--save_epoch_freq epochs. With --val_freq N, G is scored on held-out images every N epochs and the best
one kept (training/validation.py); --tensorboard also logs all of it for TensorBoard.
"""
import time

import models
from models.segmenter import load_segmenter
from data import create_dataloader, create_validation_loader, visual_mappings
from options.train_options import TrainOptions
from training.guards import StopSignals
from training.plateau import Plateau
from training.random_states import seed_everything
from training.saving import NetworkSaver
from training.state import TrainingState
from training.validation import Validation
from util import distributed
from util.display.visualizer import Visualizer


def main(argv=None):
    """Train as the command line (or argv) says; returns the trained model."""
    options = TrainOptions()
    # The run's configuration, read-only from here on (options/resolution.py): the flags, with --continue_train
    # the saved architecture and run, the recipe, the demo settings; the device; under torchrun, the process group.
    opt = options.parse(argv)
    rank, world_size = distributed.rank(), distributed.world_size()  # (0, 1) unless started by torchrun
    # Checks the checkpoint folder is writable; with --continue_train reads latest_train_state.pth.
    state = TrainingState(opt)
    seed_everything(opt.seed + rank)  # initial weights and dropout; crops and flips come from (seed, epoch, sample)

    loader = create_dataloader(opt, shuffle=not opt.serial_batches, rank=rank, world_size=world_size)
    print(f'The number of training images = {len(loader.dataset)} ({loader.num_workers} loader worker processes)')
    model = models.create_model(opt)
    plateau = Plateau(opt, model)  # what --lr_policy plateau follows, and whether lower or higher is better
    distributed.barrier()  # --continue_train: every rank loads the files rank 0 wrote, once it is done writing
    model.setup(opt, plateau.mode)
    saver = NetworkSaver(model, opt, loader.dataset)  # --ema_bn_images: the saved averages' statistics from this data
    state.restore(saver, plateau)  # --continue_train: the model's state, the counters, the plateau sum, random states
    segmenter = load_segmenter(opt.segmenter, opt.device) if opt.segmenter else None  # the semantic score
    validation = Validation(opt, state, create_validation_loader(opt), saver, segmenter)  # --val_freq
    if distributed.is_main():  # written once the data and model are known good, so a failed start keeps the old ones
        options.save_and_print(opt, 'train_opt')
    model.wrap_networks(distributed.wrap)  # DDP: same start on every rank, gradients averaged over ranks
    # The visuals are shown as 8-bit previews through their side's value mapping, and saved in the data's units.
    mappings = visual_mappings(opt, model.visual_names, model.visual_roles['input'])
    visualizer = Visualizer(opt, mappings, is_main=distributed.is_main(), step=state.progress.total_iters)
    stop = StopSignals(opt.device)  # SIGINT/SIGTERM from now on: save after the iteration, then exit

    last_epoch = opt.n_epochs + opt.n_epochs_decay
    for epoch in range(state.progress.epoch, last_epoch + 1):
        epoch_start = time.time()
        state.begin_epoch(epoch, model.device)  # a resumed epoch keeps the samples it had seen
        model.begin_epoch(epoch)  # pix2pixHD's --niter_fix_global: which parts of G train this epoch
        train_one_epoch(model, loader, state, visualizer, stop, opt, world_size, last_epoch)
        if validation.due(epoch, last_epoch):  # before the save, which then records it; rank 0 scores, others wait
            visualizer.plot_validation(validation.run(model, state.progress))
        if epoch % opt.save_epoch_freq == 0 or epoch == last_epoch:
            print(f'saving the model at the end of epoch {epoch}, iters {state.progress.total_iters}')
            state.save()
            if distributed.is_main():
                saver.save(str(epoch))
        lr = model.update_learning_rate(metric=plateau.metric(state.progress, validation))
        print(f'End of epoch {epoch} / {last_epoch} \t Time Taken: {time.time() - epoch_start:.1f} sec \t '
              f'learning rate = {lr:.7f}', flush=True)
    visualizer.close()
    distributed.cleanup()
    return model


def train_one_epoch(model, loader, state, visualizer, stop, opt, world_size, last_epoch):
    progress = state.progress
    visualizer.reset()
    iter_data_time = time.time()
    # A new shuffle each epoch, reproducible from (seed, epoch); a resumed epoch skips the samples it saw.
    for data in visualizer.progress(state.batches(loader), progress.epoch, last_epoch):
        iter_start = time.time()
        model.set_input(data)
        model.optimize_parameters()
        model.update_averages()  # --ema_decay: the moving average of G's weights (models/weight_average.py)
        losses = model.get_current_losses()
        batch = data['A'].shape[0] * world_size  # samples in this step, over all ranks
        state.step(batch, losses)  # counted, summed for --lr_policy plateau, NaN/Inf noted (checked at prints, saves)

        if progress.crossed(opt.display_freq):
            visualizer.display_current_results(model.get_current_visuals(), progress.epoch,
                                               save_result=progress.crossed(opt.update_html_freq),
                                               step=progress.total_iters)
        if progress.crossed(opt.print_freq):
            state.check_losses()
            t_comp = (time.time() - iter_start) / batch
            values = {k: v.item() for k, v in distributed.mean_over_ranks(losses).items()}
            visualizer.print_current_losses(progress.epoch, progress.epoch_iter, values, t_comp,
                                            iter_start - iter_data_time)
            visualizer.plot_current_losses(progress.epoch, progress.epoch_iter / len(loader.dataset), values,
                                           step=progress.total_iters, learning_rates=model.learning_rates())
        if progress.crossed(opt.save_latest_freq):
            visualizer.print_message(f'saving the latest model (epoch {progress.epoch}, '
                                     f'total_iters {progress.total_iters})')
            state.save()  # latest_net_*.pth + latest_train_state.pth
            if opt.save_by_iter and distributed.is_main():
                state.saver.save(f'iter_{progress.total_iters}')
        if stop.requested(agree_now=progress.crossed(opt.print_freq)):
            state.save_and_exit(stop)
        iter_data_time = time.time()


if __name__ == '__main__':
    main()
