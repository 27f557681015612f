"""Real servers for tests, listening on 127.0.0.1 only and stopped when the test ends.

    with visdom_server(tmp_path) as server:      # a `python -m visdom.server` subprocess
        Visdom(server="http://127.0.0.1", port=server.port, ...)
        server.stop()                             # e.g. to simulate a crash mid-run

    with http_server(directory) as server:       # a static file server in a thread
        urllib.request.urlopen(server.url + "file.txt")
        server.requests                          # paths asked for, in order
"""

import contextlib
import functools
import http.server
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SETUP_SCRIPT = REPO / "scripts" / "setup_visdom_offline.py"


def free_port():
    """A TCP port free on 127.0.0.1 right now (another process may still take it first)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers(url, timeout=1.0):
    """True when an HTTP GET of url gets any HTTP response."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def listening_addresses(port):
    """Local addresses of the TCP sockets listening on port, e.g. ['127.0.0.1'] (Linux)."""
    found = []
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        with contextlib.suppress(FileNotFoundError), open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                address, port_hex = fields[1].split(":")
                if fields[3] == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                    raw = bytes.fromhex(address)
                    # The kernel prints each 32-bit word of the address in host (little-endian) order.
                    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                    found.append(socket.inet_ntop(family, raw))
    return found


class Process:
    """A subprocess in its own process group, so stop() also ends its children."""

    def __init__(self, args, log_path, **popen_args):
        self.args = args
        self.log_path = Path(log_path)
        with open(self.log_path, "wb") as log:
            self.popen = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True,
                                          **popen_args)
        self.pid = self.popen.pid

    def running(self):
        return self.popen.poll() is None

    def log(self):
        return self.log_path.read_text(errors="replace")

    def wait_until_answers(self, url, timeout=30.0):
        """True once url answers, False if the process exits first; TimeoutError after timeout."""
        deadline = time.monotonic() + timeout
        while self.running():
            if answers(url):
                return True
            if time.monotonic() > deadline:
                raise TimeoutError("%s did not answer within %.0f s:\n%s" % (url, timeout, self.log()))
            time.sleep(0.1)
        return False

    def stop(self, grace=5.0):
        """SIGTERM the process group, SIGKILL it after `grace` seconds; returns the exit code."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait()
        return self.popen.returncode


class VisdomServer(Process):
    def __init__(self, port, env_path, log_path):
        self.port = port
        self.url = "http://127.0.0.1:%d" % port
        # --hostname, not -hostname, which argparse reads as -h.
        super().__init__([sys.executable, "-m", "visdom.server", "-port", str(port),
                          "--hostname", "127.0.0.1", "-bind_local", "-env_path", str(env_path),
                          "-logging_level", "WARNING"], log_path)


def require_visdom():
    if importlib.util.find_spec("visdom") is None:
        pytest.skip("visdom not installed: pip install visdom (see NOTES on setuptools<81)")


@functools.cache
def ensure_visdom_static():
    """Run scripts/setup_visdom_offline.py once per session; without its files the server
    tries to download them at start and exits when offline."""
    done = subprocess.run([sys.executable, str(SETUP_SCRIPT)], capture_output=True, text=True,
                          timeout=600)
    if done.returncode != 0:
        pytest.fail("scripts/setup_visdom_offline.py failed:\n" + done.stdout + done.stderr)


@contextlib.contextmanager
def visdom_server(workdir, start_timeout=30.0):
    """Start `python -m visdom.server` on a free 127.0.0.1 port, env files under workdir.

    Yields a VisdomServer (port, url, pid, stop(), log()); it is stopped on exit.
    Skips the test when visdom is not importable.
    """
    require_visdom()
    ensure_visdom_static()
    workdir = Path(workdir)
    env_path = workdir / "visdom_envs"
    env_path.mkdir(parents=True, exist_ok=True)
    # The port can be taken between free_port() and the server's bind, e.g. by tests
    # running in parallel; a fresh port fixes that.
    for attempt in range(3):
        server = VisdomServer(free_port(), env_path, workdir / ("visdom_server_%d.log" % attempt))
        try:
            if server.wait_until_answers(server.url, start_timeout):
                yield server
                return
            if "Address already in use" not in server.log():
                break
        finally:
            server.stop()
    raise RuntimeError("visdom server exited at start:\n" + server.log())


class RecordingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files quietly and appends each request's path to server.requests."""

    def log_request(self, code="-", size="-"):
        self.server.requests.append(self.path)

    def log_message(self, format, *args):
        pass


@contextlib.contextmanager
def http_server(directory, handler_class=None):
    """Serve directory over HTTP on 127.0.0.1 from a thread.

    Yields the server with .port, .url (ending in '/') and .requests (the paths asked
    for). handler_class, if given, should subclass RecordingHandler, e.g. to answer
    with errors, slowly or with truncated bodies.
    """
    handler = functools.partial(handler_class or RecordingHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.requests = []
    server.port = server.server_address[1]
    server.url = "http://127.0.0.1:%d/" % server.port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
