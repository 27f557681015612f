"""training/plateau.py: what --lr_policy plateau follows, which way is better, and its running sum, which
the resume file keeps under its first name, 'l1_sum'."""
from types import SimpleNamespace

import pytest
import torch

from training.plateau import Plateau
from training.state import Progress
from util.errors import UserError


def options(**changes):
    return SimpleNamespace(**{'model': 'pix2pix', 'lr_policy': 'plateau', 'plateau_on': 'train', 'val_metric': 'l1',
                              **changes})


PIX2PIX = SimpleNamespace(plateau_loss='G_L1')


@pytest.mark.parametrize('plateau_on, val_metric, mode', [
    ('train', 'psnr', 'min'),  # a training loss falls as G improves, whatever ranks validations
    ('val', 'l1', 'min'), ('val', 'psnr', 'max'), ('val', 'ssim', 'max'), ('val', 'mean_iou', 'max')])
def test_the_mode_follows_what_is_better(plateau_on, val_metric, mode):
    assert Plateau(options(plateau_on=plateau_on, val_metric=val_metric), PIX2PIX).mode == mode


def test_a_model_without_a_plateau_loss_is_refused_unless_validation_is_followed():
    with pytest.raises(UserError, match='--lr_policy plateau follows a training loss, but --model mine names none'):
        Plateau(options(model='mine'), SimpleNamespace(plateau_loss=None))
    Plateau(options(model='mine', plateau_on='val'), SimpleNamespace(plateau_loss=None))
    Plateau(options(model='mine', lr_policy='linear'), SimpleNamespace(plateau_loss=None))


def test_the_epoch_mean_of_the_loss_and_its_saved_sum():
    plateau = Plateau(options(), PIX2PIX)
    progress = Progress(epoch=1)
    plateau.begin_epoch(progress.begin_epoch(2), 'cpu')
    for loss, batch in ((2.0, 4), (1.0, 2)):
        progress.step(batch)
        plateau.add({'G_L1': torch.tensor(loss), 'G_GAN': torch.tensor(9.0)}, batch)
    assert plateau.metric(progress, validation=None) == pytest.approx(10 / 6)
    assert plateau.state_dict() == {'l1_sum': 10.0}
    # Resumed in the middle of epoch 2: the sum goes on; epoch 3 starts again from zero.
    resumed = Plateau(options(), PIX2PIX)
    resumed.load_state_dict({'l1_sum': 10.0, 'epoch': 2})
    resumed.begin_epoch(Progress(epoch=2, epoch_iter=6).begin_epoch(2), 'cpu')
    assert resumed.state_dict() == {'l1_sum': 10.0}
    resumed.begin_epoch(Progress(epoch=2, epoch_iter=6).begin_epoch(3), 'cpu')
    assert resumed.state_dict() == {'l1_sum': 0.0}


def test_following_validation_takes_its_score_at_the_epoch():
    validation = SimpleNamespace(score_at=lambda epoch: {4: 21.5}.get(epoch))
    plateau = Plateau(options(plateau_on='val', val_metric='psnr'), PIX2PIX)
    assert plateau.metric(Progress(epoch=4), validation) == 21.5
    assert plateau.metric(Progress(epoch=5), validation) is None  # no validation this epoch: no step
