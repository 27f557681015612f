"""--lr_policy plateau: what it follows, which way is better, and the running sum it keeps for it."""
import torch

from util import distributed
from util.errors import UserError
from util.evaluation.scores import lower_is_better


class Plateau:
    """What --lr_policy plateau follows: the epoch's mean of the model's plateau_loss (--plateau_on train), or
    G's --val_metric at each validation (--plateau_on val). mode is the scheduler's: 'min', or 'max' for a
    validation score where higher is better (PSNR, SSIM, the semantic scores).

    The loss is summed whatever the policy, so that a save holds the same sum whichever one a resumed run takes.
    """

    def __init__(self, opt, model):
        self.on_validation = opt.plateau_on == 'val'
        self.loss = model.plateau_loss
        if opt.lr_policy == 'plateau' and not self.on_validation and self.loss is None:
            raise UserError(f'--lr_policy plateau follows a training loss, but --model {opt.model} names none; '
                            f'choose another --lr_policy, or follow validation scores (--plateau_on val)')
        self.mode = 'max' if self.on_validation and not lower_is_better(opt.val_metric) else 'min'
        self.loss_sum = 0.0  # this epoch's sum of the plateau loss, times each step's samples

    def begin_epoch(self, fresh, device):
        """fresh: a new epoch, rather than the interrupted one a resumed run begins with, which keeps its sum."""
        if fresh:
            self.loss_sum = 0.0
        self.loss_sum = torch.as_tensor(self.loss_sum, dtype=torch.float32, device=device)

    def add(self, losses, batch):
        """Count one step's losses (tensors, as model.get_current_losses() gives them) over batch samples."""
        if self.loss is not None:
            self.loss_sum = self.loss_sum + losses[self.loss].float() * batch  # stays on the device: no host sync

    def metric(self, progress, validation):
        """What model.update_learning_rate follows at the end of progress.epoch: the plateau loss's mean over
        the epoch and all ranks (they must agree), or G's validation score (None between validations: no step)."""
        if self.on_validation:
            return validation.score_at(progress.epoch)
        mean = self.loss_sum / max(progress.epoch_iter, 1)
        return distributed.mean_over_ranks({'loss': mean})['loss'].item()

    def state_dict(self):
        # 'l1_sum': the resume file's name for the sum since its first format (pix2pix's plateau loss is L1).
        return {'l1_sum': float(self.loss_sum)}

    def load_state_dict(self, saved):
        self.loss_sum = saved['l1_sum']
