"""Models are plug-ins: --model NAME loads models/NAME_model.py and its NAMEModel class."""
from models import checkpoint, discriminators, networks
from models.base_model import BaseModel, missing_parts
from util.errors import UserError
from util.plugins import find_plugin_class


def find_model_class(model_name):
    return find_plugin_class('models', model_name, 'model', BaseModel, '--model')


def create_model(opt):
    """The model --model names, checked against what models/base_model.py says a model must define."""
    model = find_model_class(opt.model)(opt)
    missing = missing_parts(model)
    if missing:
        model_file = type(model).__module__.replace('.', '/') + '.py'
        raise UserError(f'--model {opt.model}: {type(model).__name__} in {model_file} does not define '
                        f'{", ".join(missing)}, which every model must (see models/base_model.py)')
    return model


def resolve_architecture(opt):
    """Right after parsing: when testing or resuming, take the architecture options the checkpoint was saved
    with (checkpoint.adopt_saved_architecture reads them); then check that the networks take the training
    images' size."""
    if not opt.is_train or opt.continue_train:
        checkpoint.adopt_saved_architecture(opt)
    if not opt.is_train or opt.preprocess == 'none':
        return
    size = opt.crop_size if 'crop' in opt.preprocess else opt.load_size
    if opt.netD == 'multiscale' and opt.num_D > discriminators.scales_that_fit(size, opt.n_layers_D):
        fits = discriminators.scales_that_fit(size, opt.n_layers_D)
        raise UserError(f'--netD multiscale --num_D {opt.num_D}: a PatchGAN of --n_layers_D {opt.n_layers_D} needs '
                        f'{discriminators.patchgan_min_size(opt.n_layers_D)} pixels, so {size}-pixel training images '
                        f'leave room for {fits} scale(s) of halving; use ' +
                        (f'--num_D {fits}' if fits else 'larger images') + ' or a smaller --n_layers_D')
    if opt.netG.startswith('unet_'):
        need = 2 ** networks.unet_depth(opt.netG)
        if size % need:
            largest = 1 << (max(size, 16).bit_length() - 1)
            raise UserError(f'--netG {opt.netG} needs images whose sides are multiples of {need}, but training '
                            f'images are {size} pixels; use --crop_size {max(need, size // need * need)} or '
                            f'--netG unet_{largest}')
