"""What the user sees of training: loss lines on the console and in loss_log.txt, and the web page."""
import os
import time

from util import html, util


class Visualizer:
    def __init__(self, opt):
        self.opt = opt
        self.name = opt.name
        self.expr_dir = os.path.join(opt.checkpoints_dir, opt.name)
        self.web_dir = os.path.join(self.expr_dir, 'web')
        self.use_html = not opt.no_html
        util.mkdirs(self.expr_dir)
        self.log_name = os.path.join(self.expr_dir, 'loss_log.txt')
        with open(self.log_name, 'a') as log_file:
            log_file.write(f'================ Training Loss ({time.strftime("%c")}) ================\n')

    def print_current_losses(self, epoch, iters, losses, t_comp, t_data):
        """One line per print_freq iterations: epoch, iteration within it, seconds per sample, losses."""
        message = f'(epoch: {epoch}, iters: {iters}, time: {t_comp:.3f}, data: {t_data:.3f}) '
        message += ' '.join(f'{k}: {v:.3f}' for k, v in losses.items())
        print(message, flush=True)
        with open(self.log_name, 'a') as log_file:
            log_file.write(message + '\n')

    def save_current_results(self, visuals, epoch):
        """Save the current visuals as epoch###_<name>.png and rebuild web/index.html, newest epoch first."""
        if not self.use_html:
            return
        webpage = html.HTML(self.web_dir, f'Experiment name = {self.name}', refresh=60)
        for label, image in visuals.items():
            util.save_image(util.tensor2im(image), os.path.join(webpage.get_image_dir(), f'epoch{epoch:03d}_{label}.png'))
        for n in range(epoch, 0, -1):
            names = [f'epoch{n:03d}_{label}.png' for label in visuals]
            if not all(os.path.exists(os.path.join(webpage.get_image_dir(), name)) for name in names):
                continue
            webpage.add_header(f'epoch [{n}]')
            webpage.add_images(names, list(visuals), names, width=self.opt.display_winsize)
        webpage.save()
