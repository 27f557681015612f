"""Models are plug-ins: --model NAME loads models/NAME_model.py and its NAMEModel class."""
import importlib

from models.base_model import BaseModel


def find_model_class(model_name):
    module_name = f'models.{model_name}_model'
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:
            raise
        from data import available
        from options.base_options import OptionError
        raise OptionError(f'--model {model_name}: there is no models/{model_name}_model.py '
                          f'(available: {", ".join(available("models", "_model"))})')
    target = model_name.replace('_', '') + 'model'
    for name, cls in vars(module).items():
        if name.lower() == target and isinstance(cls, type) and issubclass(cls, BaseModel):
            return cls
    raise ImportError(f'{module_name}.py must define a subclass of BaseModel named {target} (any case)')


def create_model(opt):
    return find_model_class(opt.model)(opt)
