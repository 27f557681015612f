"""The loss curves of a loss_log.txt drawn as inline SVG, for the training web page.

Drawn by hand rather than with a plotting library: a few lines and labels need no dependency,
and the page stays one self-contained file that any browser shows.
"""
import math
import re

from dominate.svg import line, polyline, rect, svg, text
from dominate.tags import div, p

# A loss line as Visualizer.print_current_losses (and the reference) writes it:
# (epoch: 3, iters: 200, time: 0.051, data: 0.002) G_GAN: 0.812 G_L1: 12.345 D_real: 0.301 D_fake: 0.288
LOSS_LINE = re.compile(r'^\(epoch: (\d+), iters: (\d+),[^)]*\) (.*)$')
LOSS_VALUE = re.compile(r'(\S+): (\S+)')
# A curve with more points than this is drawn through the means of consecutive runs of points.
MAX_POINTS = 400
COLORS = ('#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf')
WIDTH, HEIGHT = 360, 190
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 26, 34


class LossLog:
    """The loss lines of a loss_log.txt. Each points() call parses only the lines appended since
    the last, so redrawing the charts at every print stays cheap in a long run."""

    def __init__(self, path):
        self.path = path
        self.offset = 0  # bytes of the file parsed so far (whole lines only)
        self.entries = []  # (epoch, iters, {loss name: value})

    def points(self):
        """[(x, {loss name: value})] in the order trained, x in epochs trained (1.0 = end of epoch 1).

        The log does not say how many samples an epoch has; the largest `iters` it holds stands in
        (exact once an epoch ended on a print, otherwise short by less than print_freq). The log is
        appended to by every run: a run that starts again at an earlier epoch (a new run under the
        same name, or --continue_train from an older checkpoint) replaces the points after its start.
        """
        self._read_new_lines()
        epoch_size = max([iters for _, iters, _ in self.entries] + [1])
        points = []
        for epoch, iters, values in self.entries:
            x = epoch - 1 + iters / epoch_size
            while points and points[-1][0] >= x:
                points.pop()
            points.append((x, values))
        return points

    def _read_new_lines(self):
        with open(self.path, 'rb') as log:
            log.seek(self.offset)
            appended = log.read()
        complete = appended[:appended.rfind(b'\n') + 1]  # a line still being written waits for the next call
        self.offset += len(complete)
        for row in complete.decode('utf-8', errors='replace').splitlines():
            match = LOSS_LINE.match(row.strip())
            if match is None:
                continue
            values = {}
            for name, number in LOSS_VALUE.findall(match.group(3)):
                try:
                    values[name] = float(number)
                except ValueError:
                    continue
            self.entries.append((int(match.group(1)), int(match.group(2)), values))


def loss_plots(points):
    """A div of one chart per loss, each with its own y range: G_L1 near 30 beside D_real near
    0.3 on one axis would flatten D_real to a line."""
    names = list(dict.fromkeys(name for _, values in points for name in values))
    x_max = max([x for x, _ in points] + [1e-9])
    charts = div(cls='loss-plots', style='display: flex; flex-wrap: wrap; gap: 8px')
    for index, name in enumerate(names):
        curve = [(x, values[name]) for x, values in points if name in values]
        charts.add(loss_chart(name, curve, x_max, COLORS[index % len(COLORS)]))
    if not names:
        charts.add(p('no losses logged yet'))
    return charts


def loss_chart(name, curve, x_max, color):
    finite = [(x, y) for x, y in curve if math.isfinite(y)]
    caption = f'{name}: {finite[-1][1]:.4g} at epoch {finite[-1][0]:.2f}' if finite else f'{name}: no finite value'
    if len(finite) < len(curve):
        caption += f' ({len(curve) - len(finite)} not finite, left out)'
    chart = svg(cls='loss-plot', width=WIDTH, height=HEIGHT, viewBox=f'0 0 {WIDTH} {HEIGHT}',
                font_family='sans-serif', font_size=11, data_loss=name)
    chart.add(text(caption, x=LEFT, y=16, font_size=12, font_weight='bold'))
    chart.add(rect(x=LEFT, y=TOP, width=WIDTH - LEFT - RIGHT, height=HEIGHT - TOP - BOTTOM,
                   fill='white', stroke='#999'))
    ys = [y for _, y in finite] or [0.0]
    y_ticks = nice_ticks(min(ys), max(ys), 4)
    x_ticks = nice_ticks(0, x_max, 5)
    y_low, y_high = y_ticks[0], y_ticks[-1]

    def px(x):
        return LEFT + (WIDTH - LEFT - RIGHT) * x / x_ticks[-1]

    def py(y):
        return HEIGHT - BOTTOM - (HEIGHT - TOP - BOTTOM) * (y - y_low) / (y_high - y_low)

    for y in y_ticks:
        chart.add(line(x1=LEFT, x2=WIDTH - RIGHT, y1=f'{py(y):.1f}', y2=f'{py(y):.1f}', stroke='#e5e5e5'))
        chart.add(text(f'{y:g}', x=LEFT - 4, y=f'{py(y):.1f}', text_anchor='end', dominant_baseline='middle'))
    for x in x_ticks:
        chart.add(text(f'{x:g}', x=f'{px(x):.1f}', y=HEIGHT - BOTTOM + 14, text_anchor='middle'))
    chart.add(text('epoch', x=(LEFT + WIDTH - RIGHT) / 2, y=HEIGHT - 4, text_anchor='middle', fill='#555'))
    chart.add(polyline(points=' '.join(f'{px(x):.1f},{py(y):.1f}' for x, y in thin(finite)),
                       fill='none', stroke=color, stroke_width=1.5, stroke_linejoin='round'))
    return chart


def thin(curve):
    """At most MAX_POINTS points: means of consecutive runs when there are more."""
    if len(curve) <= MAX_POINTS:
        return curve
    size = len(curve) / MAX_POINTS
    runs = (curve[round(i * size):round((i + 1) * size)] for i in range(MAX_POINTS))
    return [(sum(x for x, _ in run) / len(run), sum(y for _, y in run) / len(run)) for run in runs]


def nice_ticks(low, high, count):
    """Round tick values (steps of 1, 2 or 5 times a power of ten) covering [low, high]."""
    if high - low < 1e-12:
        low, high = low - max(abs(low) * 0.1, 0.5), high + max(abs(high) * 0.1, 0.5)
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step)
    last = math.ceil(high / step)
    # Rounding keeps 0.30000000000000004 out of the labels.
    return [round(i * step, 12) for i in range(first, last + 1)]

