#!/usr/bin/env python3
"""Install visdom's web assets without internet, from the npm registry.

`python -m visdom.server` downloads its JS/CSS/fonts from CDNs into the installed
package's static/ folder before it starts, and exits when they cannot be reached.
Every one of those files is also published in an npm package, which `npm pack`
fetches through the npm registry.

Rather than copying the list of files out of visdom/server/build.py, this script
runs visdom's own `download_scripts()` with its network calls answered from npm
tarballs: every file lands at exactly the path build.py chooses, and a visdom
release that asks for a URL we cannot map fails loudly here instead of at server
start.

Usage: python scripts/setup_visdom_offline.py [--install-dir DIR]
Exit status 0 when every file is in place (already, or after this run), 1 otherwise.
"""

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from unittest import mock

UNPKG = "https://unpkg.com/"
MATHJAX_CDN = "https://cdnjs.cloudflare.com/ajax/libs/mathjax/"
# URLs outside unpkg and cdnjs, and the npm package file each one serves.
OTHER_HOSTS = {
    "https://cdn.plot.ly/plotly-2.11.1.min.js": ("plotly.js-dist-min@2.11.1", "plotly.min.js"),
    "http://d3js.org/d3.v3.min.js": ("d3@3.5.17", "d3.min.js"),
    "https://d3js.org/d3-selection-multi.v1.js": ("d3-selection-multi@1.0.1", "build/d3-selection-multi.js"),
}
PACKAGE_URL = re.compile(r"^((?:@[^/@]+/)?[^/@]+)@([^/]+)(?:/(.*))?$")


def npm_source(url):
    """Return (npm spec, path inside the package or None for its main file) for a CDN URL."""
    url = url.split("#")[0].split("?")[0]
    if url in OTHER_HOSTS:
        return OTHER_HOSTS[url]
    if url.startswith(MATHJAX_CDN):
        version, _, path = url[len(MATHJAX_CDN):].partition("/")
        return "mathjax@" + version, path
    if url.startswith(UNPKG):
        match = PACKAGE_URL.match(url[len(UNPKG):])
        if match:
            name, version, path = match.groups()
            return "%s@%s" % (name, version), path or None
    raise LookupError("no npm package known for %s" % url)


class NpmPackages:
    """Fetches npm tarballs on first use and reads files out of them."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.npm = shutil.which("npm")
        self.tarballs = {}

    def read(self, url):
        spec, path = npm_source(url)
        archive, members = self.tarball(spec)
        if path is None:
            # unpkg serves a bare package URL as the file its package.json names.
            manifest = json.load(archive.extractfile(members["package.json"]))
            path = manifest.get("unpkg") or manifest.get("main") or "index.js"
        path = os.path.normpath(path)
        if path not in members:
            raise LookupError("%s has no file %s" % (spec, path))
        return archive.extractfile(members[path]).read()

    def tarball(self, spec):
        if spec not in self.tarballs:
            if self.npm is None:
                raise RuntimeError("npm not found on PATH; install Node.js and npm (apt-get install npm)")
            done = subprocess.run(
                [self.npm, "pack", spec, "--silent"], cwd=self.workdir,
                capture_output=True, text=True, timeout=300,
            )
            lines = done.stdout.split()
            if done.returncode != 0 or not lines:
                raise RuntimeError("npm pack %s failed: %s" % (spec, done.stderr.strip()[-500:]))
            archive = tarfile.open(os.path.join(self.workdir, lines[-1]))
            # npm tarballs keep everything under one top folder, usually "package/".
            members = {os.path.normpath(m.name.partition("/")[2]): m
                       for m in archive.getmembers() if m.isfile()}
            self.tarballs[spec] = (archive, members)
        return self.tarballs[spec]


def run_build(install_dir, fetch):
    """Run visdom's download_scripts into install_dir, each URL answered by fetch(url) -> bytes.

    Returns a list of (url, error) for the URLs fetch could not answer.
    """
    from visdom.server.build import download_scripts

    failures = []

    class Opener:
        def open(self, request):
            url = request.full_url if isinstance(request, urllib.request.Request) else request
            try:
                return io.BytesIO(fetch(url))
            except (LookupError, RuntimeError, OSError, subprocess.SubprocessError) as error:
                failures.append((url, error))
                # build.py logs an HTTPError and moves on to the next file.
                raise urllib.error.HTTPError(url, 404, str(error), None, None)

    class Response:
        def __init__(self, content):
            self.content = content

    def requests_get(url, *args, **kwargs):
        return Response(fetch(url))

    quiet = io.StringIO()
    with mock.patch("urllib.request.build_opener", lambda *handlers: Opener()), \
            mock.patch("urllib.request.install_opener", lambda opener: None), \
            mock.patch("requests.get", requests_get), \
            contextlib.redirect_stdout(quiet):
        try:
            download_scripts(install_dir=install_dir)
        except (LookupError, RuntimeError, OSError, subprocess.SubprocessError) as error:
            # build.py has no error handling around its MathJax downloads.
            failures.append(("(MathJax files)", error))
    return failures


def planned_files():
    """Paths, relative to the install dir, of every file download_scripts writes."""
    with tempfile.TemporaryDirectory() as scratch:
        run_build(scratch, lambda url: b"x")
        return sorted(os.path.relpath(os.path.join(folder, name), scratch)
                      for folder, _, names in os.walk(scratch) for name in names)


def missing_files(install_dir, planned):
    return [path for path in planned
            if not os.path.isfile(os.path.join(install_dir, path))
            or os.path.getsize(os.path.join(install_dir, path)) == 0]


def is_complete(install_dir, planned, version):
    built = os.path.join(install_dir, "static", "version.built")
    if not os.path.isfile(built):
        return False
    with open(built) as handle:
        return handle.read().strip() == version and not missing_files(install_dir, planned)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--install-dir", help="visdom package folder to fill (default: the installed visdom)")
    args = parser.parse_args()
    # visdom imports torch when it can, which takes seconds and is not needed here.
    sys.modules.setdefault("torch", None)
    try:
        import visdom
        from visdom.utils.shared_utils import get_visdom_path
    except ImportError as error:
        print("error: visdom is not importable by %s (%s); pip install visdom first" % (sys.executable, error),
              file=sys.stderr)
        return 1

    install_dir = args.install_dir or get_visdom_path()
    planned = planned_files()
    if is_complete(install_dir, planned, visdom.__version__):
        print("visdom %s static files already in place in %s" % (visdom.__version__, install_dir))
        return 0

    if shutil.which("npm") is None:
        print("error: npm not found on PATH; it fetches visdom's web files from the npm registry. "
              "Install Node.js and npm (apt-get install npm).", file=sys.stderr)
        return 1

    built = os.path.join(install_dir, "static", "version.built")
    # Without version.built, build.py rewrites every file, which also repairs empty or stale ones.
    if os.path.exists(built):
        os.remove(built)
    with tempfile.TemporaryDirectory() as workdir:
        failures = run_build(install_dir, NpmPackages(workdir).read)

    missing = missing_files(install_dir, planned)
    if failures or missing:
        # Leave no version.built behind, so the next run (or start_visdom.sh) tries again.
        if os.path.exists(built):
            os.remove(built)
        for url, error in failures:
            print("error: %s: %s" % (url, error), file=sys.stderr)
        for path in missing:
            print("error: not placed: %s" % os.path.join(install_dir, path), file=sys.stderr)
        return 1
    print("placed %d visdom %s static files in %s" % (len(planned), visdom.__version__, install_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
