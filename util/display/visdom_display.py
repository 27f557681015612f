"""Live training display in a visdom server: the latest images, the loss curves and the validation scores.

Training must never wait on or fail because of the display: without a server the
display turns itself off after one warning, and a server that goes away mid-run
costs one warning and at most one request timeout.
"""

import html
import logging
import math
import sys

import numpy as np

# Seconds to connect to the server, and to wait for its answer once connected.
REQUEST_TIMEOUT = (2, 10)


def make_display(opt):
    """The display the training options ask for (disabled when opt.display_id <= 0)."""
    return VisdomDisplay(server=opt.display_server, port=opt.display_port, env=opt.display_env,
                         ncols=opt.display_ncols, display_id=opt.display_id,
                         winsize=opt.display_winsize, name=opt.name)


def _connect(server, port, env):
    import visdom

    class Client(visdom.Visdom):
        # visdom posts without a timeout, so a hung server would stall training forever.
        def _handle_post(self, url, data=None):
            return self.session.post(url, data=data or {}, timeout=REQUEST_TIMEOUT).text

    # The event socket is only needed for callbacks from the page; without it the
    # client neither waits 5 s for it at start nor keeps reconnecting once the server is gone.
    return Client(server=server, port=port, env=env, raise_exceptions=True,
                  use_incoming_socket=False)


class VisdomDisplay:
    """Shows loss curves and images in windows display_id (losses), display_id+1 (images)
    and display_id+2 (image labels) of visdom env `env`, the reference's window numbers."""

    def __init__(self, server="http://localhost", port=8097, env="main", ncols=4,
                 display_id=1, winsize=256, name="experiment"):
        self.server, self.port, self.env = server, port, env
        self.ncols, self.display_id, self.winsize, self.name = ncols, display_id, winsize, name
        self.enabled = False
        self.vis = None
        self.legend = None
        self.plot_x, self.plot_y = [], []
        self.validations = []  # (epoch, {network: {metric: value}})
        if display_id <= 0:
            return
        # The client logs a warning per HTTP session and one for running without its
        # event socket; neither says anything the user can act on.
        logging.getLogger("visdom").setLevel(logging.ERROR)
        try:
            self.vis = _connect(server, port, env)
        except ImportError:
            self._warn("visdom is not installed (pip install visdom); live display is off.")
            return
        except OSError:
            self._warn("no visdom server at %s:%d; live display is off. Start one with\n"
                       "    bash scripts/start_visdom.sh %d\n"
                       "or  python -m visdom.server -port %d --hostname 127.0.0.1 -bind_local\n"
                       "and open http://localhost:%d, or pass --display_id 0 to silence this."
                       % (server, port, port, port, port))
            return
        self.enabled = True

    def show_images(self, pictures, epoch):
        """Show pictures ({label: H x W x 3 uint8 array}, the visuals' previews)."""
        if not self.enabled:
            return
        labels = list(pictures)
        # Floats in [0, 1] make visdom pad the grid in white rather than black; it scales them back to the
        # same 8-bit values (v / 255 * 255 is v in float64).
        images = np.stack([pictures[label] for label in labels]).transpose(0, 3, 1, 2) / 255.0
        if self.ncols > 0:
            ncols = min(self.ncols, len(labels))
            rows = ["".join("<td>%s</td>" % html.escape(label) for label in labels[start:start + ncols])
                    for start in range(0, len(labels), ncols)]
            table = ("<style>table {border-collapse: separate; border-spacing: 4px; "
                     "white-space: nowrap; text-align: center} table td {width: %dpx; "
                     "padding: 4px; outline: 4px solid black}</style>"
                     "<table><caption>epoch %d</caption>%s</table>"
                     % (self.winsize, epoch, "".join("<tr>%s</tr>" % row for row in rows)))
            self._send(self.vis.images, images, nrow=ncols, padding=2, win=str(self.display_id + 1),
                       opts=dict(title=self.name + " images"))
            self._send(self.vis.text, table, win=str(self.display_id + 2),
                       opts=dict(title=self.name + " labels"))
        else:
            # As in the reference, ncols <= 0 gives each image its own window.
            for index, label in enumerate(labels):
                self._send(self.vis.image, images[index], win="%d_%d" % (self.display_id, index),
                           opts=dict(title="%s %s, epoch %d" % (self.name, label, epoch)))

    def plot_losses(self, epoch_float, losses):
        """Add one point per loss at x = epoch_float and redraw the loss plot."""
        if not self.enabled:
            return
        if self.legend is None:
            self.legend = list(losses)
        self.plot_x.append(float(epoch_float))
        self.plot_y.append([float(losses.get(key, math.nan)) for key in self.legend])
        y = np.array(self.plot_y)
        x = np.repeat(np.array(self.plot_x)[:, None], y.shape[1], axis=1)
        # The whole history is sent each time, as the reference does, so the plot is
        # complete again after the page, the window or the server was reset.
        self._send(self.vis.line, X=x, Y=y, win=str(self.display_id),
                   opts=dict(title=self.name + " loss over time", legend=self.legend,
                             xlabel="epoch", ylabel="loss"))

    def plot_validation(self, epoch, scores):
        """Add validation scores ({network: {metric: value}}) at x = epoch and redraw their plots: one per
        metric, each in window <display_id>_val_<metric> with a line per network."""
        if not self.enabled:
            return
        self.validations.append((float(epoch), scores))
        networks = list(dict.fromkeys(name for _, point in self.validations for name in point))
        metrics = list(dict.fromkeys(metric for _, point in self.validations for values in point.values()
                                     for metric in values))
        x = np.repeat(np.array([x for x, _ in self.validations])[:, None], len(networks), axis=1)
        for metric in metrics:
            # A score that is not finite (PSNR of identical images) is a gap, as a missing one is.
            y = np.array([[point.get(name, {}).get(metric, math.nan) for name in networks]
                          for _, point in self.validations], dtype=float)
            y[~np.isfinite(y)] = math.nan
            self._send(self.vis.line, X=x, Y=y, win="%d_val_%s" % (self.display_id, metric),
                       opts=dict(title="%s validation %s" % (self.name, metric), legend=networks,
                                 xlabel="epoch", ylabel=metric))

    def _send(self, draw, *args, **kwargs):
        if not self.enabled:
            return
        try:
            draw(*args, **kwargs)
        except OSError as error:
            self.enabled = False
            self._warn("lost the visdom server at %s:%d (%s); live display is off for the "
                       "rest of this run." % (self.server, self.port, error))

    @staticmethod
    def _warn(message):
        print("Warning: " + message, file=sys.stderr, flush=True)
