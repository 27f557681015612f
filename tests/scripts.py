"""Running the project's scripts from tests as a user runs them, and what every such run shares.

One interface, two ways to start a run:

    run(script, *args, check=True, timeout=300, env=None, cwd=REPO)
        A fresh interpreter: `python SCRIPT ARGS` (`bash SCRIPT ARGS` for a .sh file, with $PYTHON set to
        this interpreter), for any script: scripts/*.sh, datasets/*.py, torchrun (an absolute path).
    runner.run(script, *args, check=True, timeout=300, env=None, cwd=REPO)
        The `runner` fixture (tests/conftest.py, one per test file): train.py or test.py as a real child
        process forked from a server that imported torch once, so a run does not pay the seconds of
        `import torch`. env is applied in the child after torch was imported: a variable read at import
        (OMP_NUM_THREADS, CUDA_VISIBLE_DEVICES) needs run().

Both run from cwd with OMP_NUM_THREADS=1 and return an object with .returncode (-N: killed by signal N),
.stdout and .stderr; with check=True a non-zero exit raises AssertionError with the ends of both. A
script path is relative to the repository root, or absolute. runner.start(...) returns at once:

    child = runner.start('train.py', ...)
    child.wait_for(r'saving the latest'); os.kill(child.pid, signal.SIGKILL); child.wait()

The child runs the script as `python script.py ARGS` would (__main__, sys.argv, cwd, a fresh random
seed), writes stdout and stderr to files, and exits the way the interpreter does: SystemExit's message on
stderr and status 1, a traceback for anything else. The server runs no torch operation before forking,
so no thread pool is copied half-used.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable

# A pix2pix small enough for a CPU test: 32-pixel images, 8 filters, no display, no loader workers.
TINY_NET = ['--netG', 'unet_32', '--ngf', '8', '--ndf', '8', '--load_size', '32', '--crop_size', '32',
            '--display_id', '0', '--num_threads', '0']

# What train.py checks before --compile on the CPU (options/checks.py); .ci/run installs g++.
needs_cxx = pytest.mark.skipif(not shutil.which(os.environ.get('CXX', 'g++')),
                               reason='torch.compile on the CPU needs a C++ compiler: apt-get install g++')


def run(script, *args, check=True, timeout=300, env=None, cwd=REPO):
    """Run script in a fresh interpreter (see the module's docstring); returns the CompletedProcess."""
    path = os.path.join(REPO, script)
    command = ['bash', path] if path.endswith('.sh') else [PYTHON, path]
    full_env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHON': PYTHON, **(env or {})}
    result = subprocess.run([*command, *map(str, args)], cwd=cwd, env=full_env, capture_output=True, text=True,
                            timeout=timeout)
    return checked(script, result, check)


def checked(script, result, check):
    if check and result.returncode != 0:
        raise AssertionError(f'{script} exited {result.returncode}\nstdout:\n{result.stdout[-3000:]}\n'
                             f'stderr:\n{result.stderr[-3000:]}')
    return result


class Prewarmed:
    """The server behind the `runner` fixture: run() and start() as the module's docstring says."""

    def __init__(self, log_dir):
        self.log_dir = str(log_dir)
        self.count = 0
        env = dict(os.environ, OMP_NUM_THREADS='1')  # read when torch loads, so set for the server
        self.server = subprocess.Popen([sys.executable, os.path.abspath(__file__)], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True, cwd=REPO, env=env)
        assert self.ask({'op': 'ping'}) == {'ready': True}

    def ask(self, command):
        self.server.stdin.write(json.dumps(command) + '\n')
        self.server.stdin.flush()
        line = self.server.stdout.readline()
        if not line:
            raise RuntimeError(f'the prewarmed server died (exit status {self.server.wait()})')
        return json.loads(line)

    def start(self, script, *args, env=None, cwd=REPO):
        if script.endswith('.sh'):
            raise ValueError(f'{script}: a shell script runs in a fresh process, with run()')
        self.count += 1
        stem = os.path.join(self.log_dir, f'run{self.count:03d}_{os.path.basename(script).rsplit(".", 1)[0]}')
        pid = self.ask({'op': 'start', 'script': os.path.join(REPO, script), 'args': [str(a) for a in args],
                        'env': {k: str(v) for k, v in (env or {}).items()}, 'cwd': str(cwd),
                        'stdout': stem + '.out', 'stderr': stem + '.err'})['pid']
        return Child(self, pid, stem + '.out', stem + '.err')

    def run(self, script, *args, check=True, timeout=300, env=None, cwd=REPO):
        child = self.start(script, *args, env=env, cwd=cwd)
        child.wait(timeout)
        return checked(script, child, check)

    def close(self):
        # Asked, not told by closing stdin: a process forked from the test (a DataLoader worker, say)
        # can hold the pipe open, and the server would never see its end.
        self.ask({'op': 'quit'})
        self.server.stdin.close()
        self.server.wait(timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Child:
    def __init__(self, runner, pid, stdout_path, stderr_path):
        self.runner, self.pid = runner, pid
        self.stdout_path, self.stderr_path = stdout_path, stderr_path
        self.returncode = None

    @property
    def stdout(self):
        with open(self.stdout_path) as f:
            return f.read()

    @property
    def stderr(self):
        with open(self.stderr_path) as f:
            return f.read()

    def wait(self, timeout=120):
        """The exit status as subprocess gives it (-N: killed by signal N); kills the child past timeout."""
        answer = self.runner.ask({'op': 'wait', 'pid': self.pid, 'timeout': timeout})
        if answer.get('timed_out'):
            raise AssertionError(f'run {self.pid} still running after {timeout} s; killed.\n{self.stdout[-2000:]}')
        self.returncode = answer['returncode']
        return self.returncode

    def wait_for(self, pattern, timeout=60):
        """Poll stdout until a line matches pattern; return the match."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.stdout)
            if match:
                return match
            time.sleep(0.005)
        raise AssertionError(f'no {pattern!r} in the output after {timeout} s:\n{self.stdout[-2000:]}\n{self.stderr[-2000:]}')


# ------------------------------------------------------------------------------------------------
# The server side


def serve():
    sys.path[0] = REPO  # as `python train.py` has it: the script's folder first (here, not tests/)
    import numpy  # noqa: F401  (imported here once, for every child)
    import torch  # noqa: F401
    import torchvision  # noqa: F401
    import data  # noqa: F401
    import models  # noqa: F401
    import options.test_options  # noqa: F401
    import options.train_options  # noqa: F401
    import util.display.visualizer  # noqa: F401
    for line in sys.stdin:
        command = json.loads(line)
        if command['op'] == 'ping':
            answer = {'ready': True}
        elif command['op'] == 'quit':
            print(json.dumps({'bye': True}), flush=True)
            return
        elif command['op'] == 'start':
            for path in (command['stdout'], command['stderr']):
                open(path, 'w').close()  # there before the test first reads them
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                run_child(command)  # never returns
            answer = {'pid': pid}
        else:
            answer = wait(command['pid'], command['timeout'])
        print(json.dumps(answer), flush=True)


def wait(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return {'returncode': os.waitstatus_to_exitcode(status)}
        time.sleep(0.005)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return {'timed_out': True}


def run_child(command):
    import atexit
    import random
    import runpy
    import traceback

    import numpy as np

    code = 1
    try:
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(os.open(command['stdout'], os.O_WRONLY), 1)
        os.dup2(os.open(command['stderr'], os.O_WRONLY), 2)
        # Line-buffered, so that a test sees each line as it is printed.
        sys.stdout = open(1, 'w', buffering=1, closefd=False)
        sys.stderr = open(2, 'w', buffering=1, closefd=False)
        os.chdir(command['cwd'])
        os.environ.update(command['env'])
        random.seed()  # a new process would not share the server's random state
        np.random.seed()
        sys.argv = [command['script'], *command['args']]
        try:
            runpy.run_path(command['script'], run_name='__main__')
            code = 0
        except SystemExit as e:
            code = e.code
        if code is None:
            code = 0
        elif not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
        atexit._run_exitfuncs()
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == '__main__':
    serve()
