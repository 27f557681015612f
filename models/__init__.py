"""Models are plug-ins: --model NAME loads models/NAME_model.py and its NAMEModel class."""
from models import checkpoint, networks
from models.base_model import BaseModel
from util.errors import UserError
from util.plugins import find_plugin_class


def find_model_class(model_name):
    return find_plugin_class('models', model_name, 'model', BaseModel, '--model')


def create_model(opt):
    return find_model_class(opt.model)(opt)


def resolve_architecture(opt):
    """Right after parsing: when testing or resuming, take the architecture options the checkpoint was saved
    with (checkpoint.adopt_saved_architecture reads them); then check that the generator takes the
    training images' size."""
    if not opt.is_train or opt.continue_train:
        checkpoint.adopt_saved_architecture(opt)
    if opt.netG.startswith('unet_') and opt.is_train and opt.preprocess != 'none':
        size = opt.crop_size if 'crop' in opt.preprocess else opt.load_size
        need = 2 ** networks.unet_depth(opt.netG)
        if size % need:
            largest = 1 << (max(size, 16).bit_length() - 1)
            raise UserError(f'--netG {opt.netG} needs images whose sides are multiples of {need}, but training '
                            f'images are {size} pixels; use --crop_size {max(need, size // need * need)} or '
                            f'--netG unet_{largest}')
