"""Headless Chromium for tests: rendered DOM, in-page JavaScript facts, screenshots.

    with Browser() as browser:
        browser.open("http://127.0.0.1:8097")
        browser.wait_for("document.querySelectorAll('img').length > 0")
        browser.evaluate("[...document.images].every(img => img.naturalWidth > 0)")
        browser.screenshot("/tmp/page.png")

Browser speaks the Chrome DevTools Protocol over --remote-debugging-pipe (file
descriptors 3 and 4), so it opens no port and needs no websocket client. Every
Chromium runs in its own process group with a fresh profile and is killed at the end.
"""

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    "--window-size=1280,900",
]
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium():
    """Path of a Chromium or Chrome executable on PATH, or None."""
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def require_chromium():
    path = find_chromium()
    if path is None:
        pytest.skip("chromium not installed: apt-get install chromium")
    return path


def as_url(url_or_file):
    text = str(url_or_file)
    if "://" in text or text.startswith(("about:", "data:")):
        return text
    return Path(text).resolve().as_uri()


def _scratch_environment(scratch):
    """Environment that keeps Chromium's temporary files inside scratch: killed, it leaves
    its singleton-socket folder behind in TMPDIR."""
    tmp = os.path.join(scratch, "tmp")
    os.makedirs(tmp, exist_ok=True)
    return {**os.environ, "TMPDIR": tmp}


class JavaScriptError(RuntimeError):
    pass


class Browser:
    """One headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, width=1280, height=900, timeout=30.0):
        chromium = require_chromium()
        self.timeout = timeout
        self.scratch = tempfile.mkdtemp(prefix="chromium-")
        self.log_path = os.path.join(self.scratch, "chromium.log")
        self.pid = None
        self.events = []
        self.next_id = 0
        self.buffer = b""
        to_chromium, self.to_chromium = os.pipe()
        self.from_chromium, from_chromium = os.pipe()
        # Chromium reads commands on fd 3 and writes replies on fd 4. Move its ends above
        # 4 first, so that placing one on 3 or 4 cannot overwrite the other.
        child_in = fcntl.fcntl(to_chromium, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(from_chromium, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_chromium)
        os.close(from_chromium)
        try:
            args = [chromium, *FLAGS, "--user-data-dir=" + os.path.join(self.scratch, "profile"),
                    "--remote-debugging-pipe", "about:blank"]
            environment = _scratch_environment(self.scratch)
            self.pid = os.posix_spawn(chromium, args, environment, setsid=True, file_actions=[
                (os.POSIX_SPAWN_DUP2, child_in, 3),
                (os.POSIX_SPAWN_DUP2, child_out, 4),
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, self.log_path, os.O_WRONLY | os.O_CREAT, 0o600),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ])
        except BaseException:
            self.close()
            raise
        finally:
            os.close(child_in)
            os.close(child_out)
        try:
            target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.call("Target.attachToTarget",
                                     {"targetId": target, "flatten": True})["sessionId"]
            self.call("Page.enable", session=self.session)
            self.call("Emulation.setDeviceMetricsOverride", {
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False,
            }, session=self.session)
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def open(self, url_or_file, timeout=None):
        """Navigate and wait for the load event."""
        self.events.clear()
        result = self.call("Page.navigate", {"url": as_url(url_or_file)}, session=self.session)
        if result.get("errorText"):
            raise RuntimeError("cannot open %s: %s" % (url_or_file, result["errorText"]))
        self._wait(lambda message: message.get("method") == "Page.loadEventFired"
                   and message.get("sessionId") == self.session, timeout)

    def evaluate(self, expression):
        """The JSON value of a JavaScript expression in the page (promises are awaited)."""
        reply = self.call("Runtime.evaluate", {
            "expression": expression, "returnByValue": True, "awaitPromise": True,
        }, session=self.session)
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            raise JavaScriptError(details.get("exception", {}).get("description") or details.get("text"))
        return reply["result"].get("value")

    def wait_for(self, expression, timeout=None):
        """Poll until the expression is truthy and return its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError("still %r after %.0f s: %s" % (value, timeout or self.timeout, expression))
            time.sleep(0.1)

    def dom(self):
        return self.evaluate("document.documentElement.outerHTML")

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", {"format": "png"}, session=self.session)["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return path

    def call(self, method, params=None, session=None, timeout=None):
        """Send one DevTools command and return its result."""
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self.to_chromium, data):]
        reply = self._wait(lambda answer: answer.get("id") == message["id"], timeout)
        if "error" in reply:
            raise RuntimeError("%s failed: %s" % (method, reply["error"]))
        return reply["result"]

    def _wait(self, matches, timeout):
        """The first message (queued event or new one) for which matches() holds."""
        for event in self.events:
            if matches(event):
                self.events.remove(event)
                return event
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            while b"\0" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\0", 1)
                message = json.loads(raw)
                if matches(message):
                    return message
                if "method" in message:
                    self.events.append(message)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.from_chromium], [], [], remaining)[0]:
                raise TimeoutError("no answer from chromium within %.0f s" % (timeout or self.timeout))
            chunk = os.read(self.from_chromium, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium exited:\n" + self.log())
            self.buffer += chunk

    def log(self):
        with contextlib.suppress(OSError):
            return Path(self.log_path).read_text(errors="replace")[-4000:]
        return ""

    def close(self):
        """Kill Chromium's process group and remove its profile and temporary files."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.pid = None
        for fd in (self.to_chromium, self.from_chromium):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.to_chromium = self.from_chromium = -1
        shutil.rmtree(self.scratch, ignore_errors=True)


@contextlib.contextmanager
def showing(url_or_file, wait_for=None, timeout=30.0):
    """A Browser with the page open, once wait_for (a JS expression) is truthy if given."""
    with Browser(timeout=timeout) as browser:
        browser.open(url_or_file)
        if wait_for:
            browser.wait_for(wait_for)
        yield browser


def evaluate(url_or_file, expression, wait_for=None, timeout=30.0):
    """Open the page, wait until wait_for (a JS expression) is truthy if given, evaluate."""
    with showing(url_or_file, wait_for, timeout) as browser:
        return browser.evaluate(expression)


def screenshot(url_or_file, path, wait_for=None, timeout=30.0):
    """Save a PNG of the page, after wait_for (a JS expression) is truthy if given."""
    with showing(url_or_file, wait_for, timeout) as browser:
        return browser.screenshot(path)
