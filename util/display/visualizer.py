"""What the user sees of training: loss lines on the console and in loss_log.txt, a progress bar,
the live visdom display, the web page and TensorBoard's logs, with the validation scores in each."""
import os
import sys
import time

from tqdm import tqdm

from util.display import html
from util.display.loss_plot import VALIDATION_LOG, LossLog, ValidationLog, loss_plots
from util.display.tensorboard import TensorBoardLog
from util.display.visdom_display import VisdomDisplay, make_display
from util.files import mkdirs
from util.images import save_visual, visual_files
from util.value_mapping import parse_channels


def progress_bar(iterable, enabled=True, **tqdm_args):
    """A tqdm bar over iterable, drawn only when stdout and stderr are both terminals: in a log file
    or a pipe its redraws are noise, and the plain lines printed beside it say the same."""
    on_terminal = sys.stdout.isatty() and sys.stderr.isatty()
    return tqdm(iterable, disable=not (enabled and on_terminal), dynamic_ncols=True, **tqdm_args)


class Visualizer:
    def __init__(self, opt, mappings, is_main=True, step=0):
        """mappings: {visual label: ValueMapping} (data.visual_mappings): each visual is shown as an 8-bit preview
        through its mapping and saved to the web page in the data's units and type.
        is_main=False (every process but rank 0 under torchrun): shows, prints and writes nothing.
        step: the samples trained on before this run (total_iters), from which on TensorBoard's points are
        this run's."""
        self.opt = opt
        self.mappings = mappings
        self.preview_channels = parse_channels(opt.preview_channels)
        self.is_main = is_main
        self.name = opt.name
        self.expr_dir = os.path.join(opt.checkpoints_dir, opt.name)
        self.web_dir = os.path.join(self.expr_dir, 'web')
        self.use_html = is_main and not opt.no_html
        self.saved = False  # whether this epoch's visuals are on the web page yet
        self.page_epoch, self.page_labels = 0, []  # the newest visuals on the web page
        self.bar = None
        self.log_name = os.path.join(self.expr_dir, 'loss_log.txt')
        self.loss_log = LossLog(self.log_name)
        self.validation_log = ValidationLog(os.path.join(self.expr_dir, VALIDATION_LOG))
        self.display = make_display(opt) if is_main else VisdomDisplay(display_id=0)
        self.tensorboard = None
        if not is_main:
            return
        if opt.tensorboard:
            self.tensorboard = TensorBoardLog(os.path.join(self.expr_dir, 'tensorboard'), first_step=step + 1)
        mkdirs(self.expr_dir)
        with open(self.log_name, 'a') as log_file:
            log_file.write(f'================ Training Loss ({time.strftime("%c")}) ================\n')

    def reset(self):
        """Call at the start of each epoch: its first displayed visuals also go to the web page."""
        self.saved = False

    def progress(self, loader, epoch, last_epoch):
        """loader inside this epoch's progress bar, whose losses print_current_losses updates."""
        self.bar = progress_bar(loader, enabled=self.is_main, desc=f'epoch {epoch}/{last_epoch}', leave=False)
        return self.bar

    def print_message(self, message):
        """Print a line (main process only) without tearing the progress bar."""
        if self.is_main:
            tqdm.write(message, file=sys.stdout)
            sys.stdout.flush()

    def print_current_losses(self, epoch, iters, losses, t_comp, t_data):
        """One line per print_freq iterations (epoch, iteration within it, seconds per sample, losses) on the
        console and in loss_log.txt; the progress bar shows the losses and the web page's charts are redrawn."""
        if not self.is_main:
            return
        message = f'(epoch: {epoch}, iters: {iters}, time: {t_comp:.3f}, data: {t_data:.3f}) '
        message += ' '.join(f'{k}: {v:.3f}' for k, v in losses.items())
        if self.bar is not None:
            self.bar.set_postfix({k: f'{v:.3f}' for k, v in losses.items()}, refresh=False)
        self.print_message(message)
        with open(self.log_name, 'a') as log_file:
            log_file.write(message + '\n')
        if self.use_html:
            self.write_page()

    def plot_current_losses(self, epoch, counter_ratio, losses, step, learning_rates):
        """Add the losses to visdom's plot at x = epochs trained (counter_ratio: the part of this epoch done),
        and with each network's learning rate ({name: rate}) to TensorBoard at step (total_iters)."""
        self.display.plot_losses(epoch - 1 + counter_ratio, losses)
        if self.tensorboard:
            self.tensorboard.scalars({**{f'loss/{k}': v for k, v in losses.items()},
                                      **{f'learning_rate/{k}': v for k, v in learning_rates.items()}}, step)

    def plot_validation(self, record):
        """A validation's scores (training/validation.py's record) in visdom, TensorBoard and the web page,
        whose charts are redrawn from val_log.jsonl."""
        self.display.plot_validation(record['epoch'], record['scores'])
        if self.tensorboard:
            self.tensorboard.scalars({f'val/{name}/{metric}': value for name, values in record['scores'].items()
                                      for metric, value in values.items()}, record['total_iters'])
        if self.use_html:
            self.write_page()

    def display_current_results(self, visuals, epoch, save_result, step):
        """Show the first image of each visual ((B, C, H, W) network values) in visdom and TensorBoard (at step,
        total_iters) as an 8-bit preview, and save it to the web page when save_result (every --update_html_freq)
        or when this epoch has none there yet, as the reference does."""
        if not self.is_main:
            return
        pictures = {label: self.mappings[label].preview(image[0], self.preview_channels)
                    for label, image in visuals.items()}
        self.display.show_images(pictures, epoch)
        if self.tensorboard:
            self.tensorboard.images({f'visuals/{label}': picture for label, picture in pictures.items()}, step)
        if self.use_html and (save_result or not self.saved):
            self.saved = True
            self.save_current_results(visuals, epoch)

    def save_current_results(self, visuals, epoch):
        """Save the first image of each visual as web/images/epoch###_<label> (util.images.save_visual: 8-bit
        pictures as PNG, other data in its own type beside a preview) and rebuild the page."""
        image_dir = os.path.join(self.web_dir, 'images')
        mkdirs(image_dir)
        for label, image in visuals.items():
            save_visual(image[0], self.mappings[label], image_dir, f'epoch{epoch:03d}_{label}',
                        preview_channels=self.preview_channels)
        self.page_epoch, self.page_labels = epoch, list(visuals)
        self.write_page()

    def write_page(self):
        """web/index.html: the charts of the losses and validation scores, redrawn from loss_log.txt and
        val_log.jsonl, then the visuals by epoch, newest first."""
        webpage = html.HTML(self.web_dir, f'Experiment name = {self.name}', refresh=60)
        validation = self.validation_log.points()
        webpage.add_header('losses (from loss_log.txt)' + (f' and validation scores (from {VALIDATION_LOG})'
                                                           if validation else ''))
        webpage.add(loss_plots(self.loss_log.points(), validation))
        for n in range(self.page_epoch, 0, -1):
            pictures, files = zip(*(visual_files(self.mappings[label], f'epoch{n:03d}_{label}')
                                    for label in self.page_labels))
            if not all(os.path.exists(os.path.join(webpage.get_image_dir(), name)) for name in pictures + files):
                continue
            webpage.add_header(f'epoch [{n}]')
            webpage.add_images(pictures, self.page_labels, files, width=self.opt.display_winsize)
        webpage.save()

    def close(self):
        if self.tensorboard:
            self.tensorboard.close()
