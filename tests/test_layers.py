"""The layers of docs/architecture.md: util at the bottom, then data, then models, then training, then options,
then the commands (train.py, test.py, export.py, app.py). No module imports from a layer above its own, and
there is no import circle: every product module imports first and alone."""
import ast
import os
import subprocess
import sys

from tests.scripts import REPO

LAYERS = {'util': 0, 'data': 1, 'models': 2, 'training': 3, 'options': 4, 'train': 5, 'test': 5, 'export': 5, 'app': 5}
COMMANDS = ('train', 'test', 'export', 'app')


def product_modules():
    """{dotted module name: path} for every module of the layers."""
    modules = {command: os.path.join(REPO, f'{command}.py') for command in COMMANDS}
    for package in ('util', 'data', 'models', 'training', 'options'):
        for folder, _, names in os.walk(os.path.join(REPO, package)):
            for name in names:
                if name.endswith('.py'):
                    path = os.path.join(folder, name)
                    dotted = os.path.relpath(path, REPO)[:-len('.py')].replace(os.sep, '.')
                    modules[dotted.removesuffix('.__init__')] = path
    return modules


def imported_modules(path):
    """The dotted names a file imports, wherever the import statement sits (functions included)."""
    names = []
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names += [node.module] + [f'{node.module}.{alias.name}' for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            raise AssertionError(f'{path}: relative import; write the absolute name so the layer shows')
    return names


def test_no_module_imports_from_a_layer_above_its_own():
    upward = []
    for module, path in product_modules().items():
        own = LAYERS[module.split('.')[0]]
        for name in imported_modules(path):
            top = name.split('.')[0]
            if top in LAYERS and LAYERS[top] > own:
                upward.append(f'{module} imports {name}')
    assert not upward, '\n'.join(upward)


def imports_of(package, forbidden):
    """'module imports name' for each import of package's modules from the package forbidden."""
    return [f'{m} imports {n}' for m, p in product_modules().items() if m.split('.')[0] == package
            for n in imported_modules(p) if n.split('.')[0] == forbidden]


def test_data_never_imports_models():
    # data must stay usable without any model (the colour encoding both use is util/lab.py)
    found = imports_of('data', 'models')
    assert not found, found


def test_training_never_imports_options():
    # training is handed the parsed configuration (opt); how a command line becomes one is not its business
    found = imports_of('training', 'options')
    assert not found, found


def test_every_module_imports_first_and_alone():
    """Each module imported in a process where no other product module is loaded yet. The processes fork
    from one that has imported only the third-party packages (torch alone takes seconds), so each import
    starts from what a fresh interpreter would have of this project: nothing."""
    modules = sorted(product_modules())
    program = f'''
import os, sys
sys.path.insert(0, {REPO!r})
import numpy, torch, torchvision, PIL.Image, dominate, tqdm, visdom  # noqa: F401
ours = {tuple(sorted(LAYERS))!r}
failed = []
for module in {modules!r}:
    assert not [m for m in sys.modules if m.split('.')[0] in ours], 'a product module is loaded already'
    pid = os.fork()
    if pid == 0:
        try:
            __import__(module)
        except BaseException as e:
            print(f'{{module}}: {{type(e).__name__}}: {{e}}', flush=True)
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status:
        failed.append(module)
print('FAILED', failed)
'''
    result = subprocess.run([sys.executable, '-c', program], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'FAILED []' in result.stdout, result.stdout[-3000:]
    assert len(modules) > 30  # the walk found the tree
