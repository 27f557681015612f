"""TensorBoard logs of a training run (train.py --tensorboard), in checkpoints/NAME/tensorboard/:

    tensorboard --logdir checkpoints

Scalars: loss/<name> and learning_rate/<network> (G, and D, whose rate --lr_D sets apart) at every
--print_freq, val/<network>/<metric> at each validation;
images: visuals/<name> (8-bit previews) at every --display_freq. The step of every point is total_iters, the samples
trained on so far (the x of loss_log.txt's lines), so curves from runs with other batch sizes line up.

Written with torch.utils.tensorboard. The tensorboard package is optional: it is imported only for
--tensorboard, and its absence is a one-line error before training starts.
"""
from util.errors import UserError

INSTALL = 'pip install tensorboard'


def require():
    """torch.utils.tensorboard's SummaryWriter, or a UserError saying how to get it."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise UserError(f'--tensorboard needs the tensorboard package ({e}); install it ({INSTALL}) or leave '
                        f'out --tensorboard')
    return SummaryWriter


class TensorBoardLog:
    def __init__(self, log_dir, first_step):
        # purge_step: TensorBoard hides every point the folder holds from first_step on. A resumed run
        # starts after its last save, so what the interrupted run wrote past that save is dropped and the
        # resumed run writes those steps again, once; a new run under the same name replaces the old curves.
        self.writer = require()(log_dir, purge_step=first_step)

    # Each call writes through to the file, so a run killed right after a save has every point up to it.
    def scalars(self, values, step):
        """values: {tag: number}."""
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def images(self, images, step):
        """images: {tag: HxWx3 uint8 array}."""
        for tag, image in images.items():
            self.writer.add_image(tag, image, step, dataformats='HWC')
        self.writer.flush()

    def close(self):
        self.writer.close()
