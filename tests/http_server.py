"""Serve a folder over HTTP on 127.0.0.1, so download scripts are tested without the internet."""
import contextlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

# Any http_proxy in the environment must not see these local requests.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _free_port():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def _start(directory, timeout):
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, '-m', 'http.server', '--bind', '127.0.0.1', str(port), '--directory', str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f'http://127.0.0.1:{port}'
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            _OPENER.open(url + '/', timeout=1).close()
            return process, url
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    _stop(process)
    return None, None


def _stop(process):
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def serve_directory(directory, timeout=10):
    """Yield the base URL (no trailing slash) of a server for `directory`."""
    # Another process can take the free port before the server binds it; retry.
    for _ in range(3):
        process, url = _start(directory, timeout)
        if process is not None:
            break
    else:
        raise RuntimeError(f'could not start an HTTP server for {directory}')
    try:
        yield url
    finally:
        _stop(process)
