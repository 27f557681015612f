"""models.create_model checks a model against BaseModel's contract (models/base_model.py) when it is made:
what is missing is a UserError naming each part and the model's file."""
from types import SimpleNamespace

import pytest
import torch

import models
from models.base_model import BaseModel
from util.errors import UserError


class Unfinished(BaseModel):
    """Shows its visuals but cannot run: no forward(), no optimize_parameters(), no netG."""
    visual_roles = {'input': 'real', 'output': 'fake'}

    def __init__(self, opt):
        super().__init__(opt)
        self.loss_names, self.visual_names, self.model_names = ['G'], ['real', 'fake'], ['G']

    def set_input(self, data):
        self.real = data['A']


class Mislabelled(Unfinished):
    """Complete, but its roles name a visual it does not show."""
    visual_roles = {'input': 'real', 'output': 'fake_B'}

    def __init__(self, opt):
        super().__init__(opt)
        self.netG = torch.nn.Identity()

    def forward(self):
        self.fake = self.netG(self.real)

    def optimize_parameters(self):
        self.forward()


def create(model_class, tmp_path, monkeypatch, is_train=True):
    monkeypatch.setattr(models, 'find_model_class', lambda name: model_class)
    opt = SimpleNamespace(model='mine', is_train=is_train, device='cpu', checkpoints_dir=str(tmp_path), name='run',
                          amp='none')
    return models.create_model(opt)


def test_a_model_missing_parts_is_refused_by_name_and_file(tmp_path, monkeypatch):
    with pytest.raises(UserError) as info:
        create(Unfinished, tmp_path, monkeypatch)
    assert str(info.value) == ('error: --model mine: Unfinished in tests/test_model_contract.py does not define '
                               'forward(), optimize_parameters(), netG, which every model must (see '
                               'models/base_model.py)')
    # Testing needs no training step.
    with pytest.raises(UserError, match=r'does not define forward\(\), netG, which'):
        create(Unfinished, tmp_path, monkeypatch, is_train=False)


def test_visual_roles_must_name_shown_visuals(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="visual_roles naming its visual_names as 'input', 'output' and maybe "
                                        "'target' .it has {'input': 'real', 'output': 'fake_B'}."):
        create(Mislabelled, tmp_path, monkeypatch)
    Mislabelled.visual_roles = {'input': 'real', 'output': 'fake'}
    assert isinstance(create(Mislabelled, tmp_path, monkeypatch), Mislabelled)
