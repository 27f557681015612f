"""The loss curves of a loss_log.txt, and the validation scores of a val_log.jsonl, drawn as inline SVG
for the training web page.

Drawn by hand rather than with a plotting library: a few lines and labels need no dependency,
and the page stays one self-contained file that any browser shows.
"""
import json
import math
import re

from dominate.svg import line, polyline, rect, svg, text, tspan
from dominate.tags import div, p

# A loss line as Visualizer.print_current_losses (and the reference) writes it:
# (epoch: 3, iters: 200, time: 0.051, data: 0.002) G_GAN: 0.812 G_L1: 12.345 D_real: 0.301 D_fake: 0.288
LOSS_LINE = re.compile(r'^\(epoch: (\d+), iters: (\d+),[^)]*\) (.*)$')
LOSS_VALUE = re.compile(r'(\S+): (\S+)')
VALIDATION_LOG = 'val_log.jsonl'  # in the checkpoint folder, beside loss_log.txt
# A curve with more points than this is drawn through the means of consecutive runs of points.
MAX_POINTS = 400
COLORS = ('#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf')
WIDTH, HEIGHT = 360, 190
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 26, 34


class AppendedLog:
    """A log file that runs append lines to. Each points() call parses only the lines appended since the
    last, so redrawing the charts at every print stays cheap in a long run.

    Every run appends: a run that starts again at an earlier point (a new run under the same name, or
    --continue_train from an older checkpoint) replaces the points from its start on."""

    def __init__(self, path):
        self.path = path
        self.offset = 0  # bytes of the file parsed so far (whole lines only)
        self.entries = []

    def new_lines(self):
        try:
            with open(self.path, 'rb') as log:
                log.seek(self.offset)
                appended = log.read()
        except FileNotFoundError:  # nothing logged yet
            return []
        complete = appended[:appended.rfind(b'\n') + 1]  # a line still being written waits for the next call
        self.offset += len(complete)
        return complete.decode('utf-8', errors='replace').splitlines()


def latest_run(points):
    """[(x, values)] in file order, without the points a later line with an earlier or equal x replaced."""
    kept = []
    for x, values in points:
        while kept and kept[-1][0] >= x:
            kept.pop()
        kept.append((x, values))
    return kept


class LossLog(AppendedLog):
    """The loss lines of a loss_log.txt."""

    def points(self):
        """[(x, {loss name: value})] in the order trained, x in epochs trained (1.0 = end of epoch 1).

        The log does not say how many samples an epoch has; the largest `iters` it holds stands in
        (exact once an epoch ended on a print, otherwise short by less than print_freq).
        """
        for row in self.new_lines():
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
        epoch_size = max([iters for _, iters, _ in self.entries] + [1])
        return latest_run((epoch - 1 + iters / epoch_size, values) for epoch, iters, values in self.entries)


class ValidationLog(AppendedLog):
    """The lines of a val_log.jsonl (training/validation.py writes them)."""

    def points(self):
        """[(epoch, {network: {metric: value}})], a missing value (PSNR of identical images) as inf."""
        for row in self.new_lines():
            try:
                entry = json.loads(row)
            except ValueError:  # not ours: ignored, as loss_log.txt's header lines are
                continue
            scores = {network: {metric: math.inf if value is None else value for metric, value in values.items()}
                      for network, values in entry['scores'].items()}
            self.entries.append((entry['epoch'], scores))
        return latest_run(self.entries)


def loss_plots(points, validation=()):
    """A div of one chart per loss, each with its own y range (G_L1 near 30 beside D_real near 0.3 on one
    axis would flatten D_real to a line), then one per validation metric with a line per network scored."""
    names = list(dict.fromkeys(name for _, values in points for name in values))
    metrics = list(dict.fromkeys(metric for _, scores in validation for values in scores.values() for metric in values))
    x_max = max([x for x, _ in points] + [x for x, _ in validation] + [1e-9])
    charts = div(cls='loss-plots', style='display: flex; flex-wrap: wrap; gap: 8px')
    for index, name in enumerate(names):
        curve = [(x, values[name]) for x, values in points if name in values]
        charts.add(chart(name, {name: curve}, x_max, [COLORS[index % len(COLORS)]], data_loss=name))
    for metric in metrics:
        networks = list(dict.fromkeys(network for _, scores in validation for network in scores))
        curves = {network: [(x, scores[network][metric]) for x, scores in validation
                            if metric in scores.get(network, {})] for network in networks}
        charts.add(chart(f'val {metric}', curves, x_max, COLORS, data_metric=metric))
    if not names and not metrics:
        charts.add(p('no losses logged yet'))
    return charts


def chart(title, curves, x_max, palette, **data):
    """An SVG chart of {label: [(x, y)]}, a line per label in the palette's colours, titled with each
    line's last value (in its colour when there are several); data: data-* attributes naming it."""
    colors = {label: palette[index % len(palette)] for index, label in enumerate(curves)}
    finite = {label: [(x, y) for x, y in curve if math.isfinite(y)] for label, curve in curves.items()}
    dropped = sum(len(curve) for curve in curves.values()) - sum(len(curve) for curve in finite.values())
    picture = svg(cls='loss-plot', width=WIDTH, height=HEIGHT, viewBox=f'0 0 {WIDTH} {HEIGHT}',
                  font_family='sans-serif', font_size=11, **data)
    picture.add(caption(title, finite, colors, dropped))
    picture.add(rect(x=LEFT, y=TOP, width=WIDTH - LEFT - RIGHT, height=HEIGHT - TOP - BOTTOM,
                     fill='white', stroke='#999'))
    ys = [y for curve in finite.values() for _, y in curve] or [0.0]
    y_ticks = nice_ticks(min(ys), max(ys), 4)
    x_ticks = nice_ticks(0, x_max, 5)
    y_low, y_high = y_ticks[0], y_ticks[-1]

    def px(x):
        return LEFT + (WIDTH - LEFT - RIGHT) * x / x_ticks[-1]

    def py(y):
        return HEIGHT - BOTTOM - (HEIGHT - TOP - BOTTOM) * (y - y_low) / (y_high - y_low)

    for y in y_ticks:
        picture.add(line(x1=LEFT, x2=WIDTH - RIGHT, y1=f'{py(y):.1f}', y2=f'{py(y):.1f}', stroke='#e5e5e5'))
        picture.add(text(f'{y:g}', x=LEFT - 4, y=f'{py(y):.1f}', text_anchor='end', dominant_baseline='middle'))
    for x in x_ticks:
        picture.add(text(f'{x:g}', x=f'{px(x):.1f}', y=HEIGHT - BOTTOM + 14, text_anchor='middle'))
    picture.add(text('epoch', x=(LEFT + WIDTH - RIGHT) / 2, y=HEIGHT - 4, text_anchor='middle', fill='#555'))
    for label, curve in finite.items():
        picture.add(polyline(points=' '.join(f'{px(x):.1f},{py(y):.1f}' for x, y in thin(curve)), fill='none',
                             stroke=colors[label], stroke_width=1.5, stroke_linejoin='round', data_label=label))
    return picture


def caption(title, finite, colors, dropped):
    """'G_L1: 12.3 at epoch 2.00', or with several lines 'val l1: G 0.179, G_ema 0.175 at epoch 3.00'."""
    last = {label: curve[-1] for label, curve in finite.items() if curve}
    line_text = text(x=LEFT, y=16, font_size=12, font_weight='bold', __pretty=False)  # no spaces between parts
    if not last:
        line_text.add(f'{title}: no finite value')
    elif len(finite) == 1:
        (x, y), = last.values()
        line_text.add(f'{title}: {y:.4g} at epoch {x:.2f}')
    else:
        line_text.add(f'{title}:')
        for index, (label, (_, y)) in enumerate(last.items()):
            line_text.add(tspan(f' {label} {y:.4g}' + (',' if index < len(last) - 1 else ''), fill=colors[label]))
        line_text.add(f' at epoch {max(x for x, _ in last.values()):.2f}')
    if dropped:
        line_text.add(f' ({dropped} not finite, left out)')
    return line_text


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

