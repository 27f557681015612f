"""Interpreters without some packages: to check that a command says how to install an optional package, and that
exported models run without this project.

    blocker_source({'gradio'})           Python source that makes `import gradio` (and gradio.*) fail
    sitecustomize_without(folder, names) writes folder/sitecustomize.py with it: put folder on PYTHONPATH
"""
import os

BLOCKER = '''
import sys


class _Without:
    """An import finder that does not see the packages the test runs without, as if they were not installed:
    importing them raises ModuleNotFoundError, and importlib.util.find_spec returns None."""
    names = {names!r}

    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in self.names:
            return None
        return self.finder.find_spec(name, path, target)

    def __getattr__(self, attribute):
        return getattr(self.finder, attribute)


sys.meta_path[:] = [_Without(finder) for finder in sys.meta_path]
'''


def blocker_source(names):
    return BLOCKER.format(names=set(names))


def sitecustomize_without(folder, names):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, 'sitecustomize.py'), 'w') as f:
        f.write(blocker_source(names))
    return folder
