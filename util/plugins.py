"""Finding a plug-in class by name: --model NAME -> models/NAME_model.py, class NAMEModel (any case)."""
import importlib
import pkgutil

from util.errors import UserError


def find_plugin_class(package, name, suffix, base_class, flag):
    module_name = f'{package}.{name}_{suffix}'
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:
            raise
        raise UserError(f'{flag} {name}: there is no {package}/{name}_{suffix}.py '
                          f'(available: {", ".join(available(package, suffix))})')
    target = (name + suffix).replace('_', '').lower()
    for attr, cls in vars(module).items():
        if attr.lower() == target and isinstance(cls, type) and issubclass(cls, base_class):
            return cls
    raise ImportError(f'{module_name}.py must define a subclass of {base_class.__name__} named {target} (any case)')


def available(package, suffix):
    modules = pkgutil.iter_modules(importlib.import_module(package).__path__)
    return sorted(m.name[:-len(suffix) - 1] for m in modules if m.name.endswith('_' + suffix))


def option_group(parser, title):
    """The argparse group of parser titled title (made on first use): how each plug-in puts its flags under
    the heading --help shows them in."""
    for group in parser._action_groups:
        if group.title == title:
            return group
    return parser.add_argument_group(title)
