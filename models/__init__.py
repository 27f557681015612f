"""Models are plug-ins: --model NAME loads models/NAME_model.py and its NAMEModel class."""
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

