"""The visdom display against a real visdom server, and its page in headless Chromium."""

import base64
import importlib.util
import io
import json
import os
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

from tests import browser, servers
from util.display import visdom_display
from util.display.visdom_display import VisdomDisplay, make_display

pytest.importorskip("visdom", reason="visdom not installed: pip install visdom")
# visdom 0.2.4 calls the deprecated logger.warn when made without its event socket.
pytestmark = pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning")

LOSS_NAMES = ["G_GAN", "G_L1", "D_real"]
NPM_PACKAGES = [
    "jquery@3.1.1", "bootstrap@3.3.7", "react@16.2.0", "react-dom@16.2.0", "react-modal@3.1.10",
    "plotly.js-dist-min@2.11.1", "sjcl@1.0.7", "layout-bin-packer@1.4.0", "d3@3.5.17",
    "d3-selection-multi@1.0.1", "save-svg-as-png@1.4.17", "react-resizable@1.4.6",
    "react-grid-layout@0.16.3", "classnames@2.2.5", "mathjax@2.7.5",
]
STEPS = 4


def load_setup_script():
    spec = importlib.util.spec_from_file_location("setup_visdom_offline", servers.SETUP_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def visuals():
    """Three 32x32 pictures (the visuals' 8-bit previews) with known colours."""
    return {
        "real_A": np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8),
        "fake_B": np.zeros((32, 32, 3), np.uint8),       # black
        "real_B": np.full((32, 32, 3), 127, np.uint8),   # mid grey
    }


def run_steps(display, steps=STEPS):
    for step in range(steps):
        losses = {name: float(index + step) for index, name in enumerate(LOSS_NAMES)}
        display.plot_losses(step / 2, losses)
        display.show_images(visuals(), epoch=step // 2 + 1)


def window(server, env, win=None):
    """What the server holds of window win in env; with win=None, {id: window} of every window there."""
    import visdom

    client = visdom.Visdom(server="http://127.0.0.1", port=server.port, env=env,
                           use_incoming_socket=False, raise_exceptions=True)
    return json.loads(client.get_window_data(win=win, env=env))


def png(window_data):
    """The image an image window shows, from its data URL."""
    from PIL import Image

    prefix = "data:image/png;base64,"
    src = window_data["content"]["src"]
    assert src.startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(src[len(prefix):]))).convert("RGB")


@pytest.fixture(scope="module")
def visdom_server(tmp_path_factory):
    with servers.visdom_server(tmp_path_factory.mktemp("visdom")) as server:
        yield server


@pytest.fixture(scope="module")
def filled_env(visdom_server):
    """An env holding STEPS rounds of images and losses, shared by the read-back tests."""
    env = "test_display"
    display = VisdomDisplay(server="http://127.0.0.1", port=visdom_server.port, env=env,
                            ncols=4, display_id=1, name="exp")
    assert display.enabled
    run_steps(display)
    return env


def test_setup_script_maps_every_file_visdom_asks_for(tmp_path):
    setup = load_setup_script()
    sources = set()

    def fetch(url):
        sources.add(setup.npm_source(url))
        return b"x"

    # A URL with no npm stand-in raises LookupError, which run_build reports as a failure.
    assert setup.run_build(str(tmp_path), fetch) == []
    assert {spec for spec, _ in sources} == set(NPM_PACKAGES)


def test_setup_script_leaves_every_file_in_place():
    import visdom
    from visdom.utils.shared_utils import get_visdom_path

    setup = load_setup_script()
    done = subprocess.run([sys.executable, str(servers.SETUP_SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    planned = setup.planned_files()
    assert setup.missing_files(get_visdom_path(), planned) == []
    assert setup.is_complete(get_visdom_path(), planned, visdom.__version__)


def test_setup_script_fails_clearly_without_npm(tmp_path):
    done = subprocess.run([sys.executable, str(servers.SETUP_SCRIPT), "--install-dir", str(tmp_path)],
                          capture_output=True, text=True, env={**os.environ, "PATH": str(tmp_path)})
    assert done.returncode == 1
    assert "npm not found" in done.stderr
    assert not (tmp_path / "static" / "version.built").exists()


def test_setup_script_exits_nonzero_when_a_file_cannot_be_placed(tmp_path, monkeypatch, capsys):
    setup = load_setup_script()
    plotly = "https://cdn.plot.ly/plotly-2.11.1.min.js"

    def read(self, url):
        if url == plotly:
            raise LookupError("not in the registry")
        return b"x"

    monkeypatch.setattr(setup.NpmPackages, "read", read)
    monkeypatch.setattr(setup.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(sys, "argv", ["setup_visdom_offline.py", "--install-dir", str(tmp_path)])
    assert setup.main() == 1
    err = capsys.readouterr().err
    assert plotly in err and "not placed" in err and "plotly-plotly.min.js" in err
    # No version.built, so the next run (or start_visdom.sh) tries again.
    assert not (tmp_path / "static" / "version.built").exists()
    assert (tmp_path / "static" / "js" / "jquery.min.js").read_bytes() == b"x"


def test_loss_plot_has_every_point_under_the_loss_names(visdom_server, filled_env):
    assert servers.listening_addresses(visdom_server.port) == ["127.0.0.1"]
    data = window(visdom_server, filled_env, "1")
    assert data["title"] == "exp loss over time"
    traces = data["content"]["data"]
    assert [trace["name"] for trace in traces] == LOSS_NAMES
    for index, trace in enumerate(traces):
        assert trace["x"] == [step / 2 for step in range(STEPS)]
        assert trace["y"] == [float(index + step) for step in range(STEPS)]
    assert data["content"]["layout"]["xaxis"]["title"] == "epoch"


def test_validation_plots_have_a_line_per_network(visdom_server):
    display = VisdomDisplay(server="http://127.0.0.1", port=visdom_server.port, env="validation", display_id=1,
                            name="exp")
    display.plot_validation(1, {"G": {"l1": 0.3, "psnr": 9.0}, "G_ema": {"l1": 0.31, "psnr": float("inf")}})
    display.plot_validation(2, {"G": {"l1": 0.2, "psnr": 10.0}, "G_ema": {"l1": 0.25, "psnr": 9.5}})
    windows = window(visdom_server, "validation")
    assert sorted(windows) == ["1_val_l1", "1_val_psnr"]  # beside the reference's windows 1, 2 and 3
    for metric, expected in (("l1", {"G": [0.3, 0.2], "G_ema": [0.31, 0.25]}),
                             ("psnr", {"G": [9.0, 10.0], "G_ema": [None, 9.5]})):  # PSNR inf: a gap
        plot = windows["1_val_" + metric]
        assert plot["title"] == "exp validation " + metric
        assert plot["content"]["layout"]["xaxis"]["title"] == "epoch"
        traces = plot["content"]["data"]
        assert {trace["name"]: trace["x"] for trace in traces} == {"G": [1, 2], "G_ema": [1, 2]}
        assert {trace["name"]: trace["y"] for trace in traces} == expected


def test_image_window_holds_the_grid_as_png(visdom_server, filled_env):
    data = window(visdom_server, filled_env, "2")
    assert data["title"] == "exp images"
    grid = png(data)
    # 3 images and ncols 4: one row of 3, each 32 px plus 2 px padding on every side.
    assert grid.size == (3 * (32 + 2 * 2), 32 + 2 * 2)
    # visdom places tile k at (k * 36 + 3, 3): one pixel past the padding.
    assert grid.getpixel((36 + 3 + 10, 3 + 10)) == (0, 0, 0)            # fake_B
    assert grid.getpixel((2 * 36 + 3 + 10, 3 + 10)) == (127, 127, 127)  # real_B
    assert grid.getpixel((1, 1)) == (255, 255, 255)                     # padded in white
    # Every value arrives as it was given.
    assert (np.asarray(grid)[3:35, 3:35] == visuals()["real_A"]).all()
    labels = window(visdom_server, filled_env, "3")
    assert all("<td>%s</td>" % name in labels["content"] for name in visuals())
    assert "epoch 2" in labels["content"]


def test_no_server_warns_once_and_turns_off(capsys):
    port = servers.free_port()
    started = time.monotonic()
    display = VisdomDisplay(server="http://127.0.0.1", port=port)
    assert time.monotonic() - started < 5
    assert not display.enabled
    out, err = capsys.readouterr()
    assert (out + err).count("Warning") == 1
    assert "bash scripts/start_visdom.sh %d" % port in err
    assert "python -m visdom.server -port %d --hostname 127.0.0.1 -bind_local" % port in err
    run_steps(display)
    assert capsys.readouterr() == ("", "")


def test_hung_server_does_not_stall_the_constructor(monkeypatch, capsys):
    monkeypatch.setattr(visdom_display, "REQUEST_TIMEOUT", (0.5, 0.5))
    with socket.socket() as hung:
        # Listening but never accepting: connections complete, answers never come.
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        started = time.monotonic()
        display = VisdomDisplay(server="http://127.0.0.1", port=hung.getsockname()[1])
        assert time.monotonic() - started < 5
    assert not display.enabled
    assert capsys.readouterr().err.count("Warning") == 1


def test_display_id_zero_makes_no_connection(monkeypatch, capsys):
    import requests

    def no_network(*args, **kwargs):
        raise AssertionError("display_id 0 must not touch the network")

    monkeypatch.setattr(requests.Session, "request", no_network)
    opt = SimpleNamespace(display_id=0, display_server="http://127.0.0.1", display_port=1,
                          display_env="main", display_ncols=4, display_winsize=256, name="exp")
    display = make_display(opt)
    assert not display.enabled
    run_steps(display)
    assert capsys.readouterr() == ("", "")


def test_server_killed_mid_run_warns_once_and_goes_on(tmp_path, capsys):
    with servers.visdom_server(tmp_path) as server:
        display = VisdomDisplay(server="http://127.0.0.1", port=server.port, env="killed")
        run_steps(display, steps=1)
        assert display.enabled
        server.stop()
        started = time.monotonic()
        run_steps(display, steps=3)
        assert time.monotonic() - started < 10
    assert not display.enabled
    out, err = capsys.readouterr()
    assert (out + err).count("Warning") == 1
    assert "lost the visdom server" in err


def test_start_script_serves_on_127_0_0_1_only(tmp_path):
    servers.require_visdom()
    servers.ensure_visdom_static()
    port = servers.free_port()
    script = servers.REPO / "scripts" / "start_visdom.sh"
    server = servers.Process(["bash", str(script), str(port)], tmp_path / "start_visdom.log",
                             env={**os.environ, "PYTHON": sys.executable, "HOME": str(tmp_path)},
                             cwd=tmp_path)
    try:
        assert server.wait_until_answers("http://127.0.0.1:%d" % port), server.log()
        assert servers.listening_addresses(port) == ["127.0.0.1"]
    finally:
        server.stop()
    assert servers.listening_addresses(port) == []


def test_page_draws_plot_and_images_in_chromium(visdom_server, filled_env):
    browser.require_chromium()
    with browser.Browser() as page:
        page.open("%s/env/%s" % (visdom_server.url, filled_env))
        # The windows arrive over the page's websocket after the load event.
        page.wait_for("document.querySelector('.js-plotly-plot .scatterlayer path.js-line')"
                      " && [...document.images].some(img => img.complete && img.naturalWidth > 0)")
        # These globals exist only if the offline copies of the CDN files were served.
        libraries = page.evaluate("[typeof jQuery, typeof React, typeof Plotly, typeof MathJax]")
        assert libraries == ["function", "object", "object", "object"]
        traces = page.evaluate("document.querySelectorAll('.js-plotly-plot .scatterlayer .trace').length")
        assert traces == len(LOSS_NAMES)
        legend = page.evaluate("[...document.querySelectorAll('.js-plotly-plot .legendtext')]"
                               ".map(e => e.textContent)")
        assert legend == LOSS_NAMES
        sizes = page.evaluate("[...document.images].map(img => [img.naturalWidth, img.naturalHeight])")
        assert sizes == [[108, 36]]
        assert "online" in page.evaluate("document.body.innerText")
        page.screenshot("/tmp/visdom_display_test.png")


def test_ncols_0_shows_each_image_in_a_window_of_its_own(visdom_server):
    # As train.py makes it from --display_ncols 0 --display_id 5: the reference's layout without a grid.
    opt = SimpleNamespace(display_id=5, display_server="http://127.0.0.1", display_port=visdom_server.port,
                          display_env="one_per_window", display_ncols=0, display_winsize=256, name="exp")
    run_steps(make_display(opt))
    windows = window(visdom_server, "one_per_window")
    # The loss plot in window 5, then 5_0, 5_1, 5_2 for the visuals; no grid (6), no label table (7).
    assert sorted(windows) == ["5", "5_0", "5_1", "5_2"]
    assert windows["5"]["title"] == "exp loss over time"
    assert [trace["name"] for trace in windows["5"]["content"]["data"]] == LOSS_NAMES
    for index, (label, picture) in enumerate(visuals().items()):
        shown = windows["5_%d" % index]
        assert shown["title"] == "exp %s, epoch 2" % label
        assert (np.asarray(png(shown)) == picture).all(), label
