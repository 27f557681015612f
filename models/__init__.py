"""Models are plug-ins: --model NAME loads models/NAME_model.py and its NAMEModel class."""
from models.base_model import BaseModel
from util.plugins import find_plugin_class


def find_model_class(model_name):
    return find_plugin_class('models', model_name, 'model', BaseModel, '--model')


def create_model(opt):
    return find_model_class(opt.model)(opt)
