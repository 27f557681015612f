"""Scores of test.py's outputs against their targets, for metrics.json, metrics.csv and the gallery.

8-bit pictures (8-bit data of 1 or 3 channels mapped over 0..255, the reference's) are scored on the 8-bit RGB
images test.py saves, so the scores can be recomputed from the PNGs: l1, psnr and ssim. Other data (16-bit,
float, a given or measured range, other channel counts) is scored in the data's own units, on the output as
test.py writes it (mapping.to_array) against the target's values as read: mae in the target's units, l1 on the
ranges' 0..1 scales, psnr and ssim over the mapping's ranges, and each channel's own where there are several
(metrics.score_in_units). l1, psnr and ssim exist either way, so --sort_by_metric and --val_metric rank any
data. FID and KID need the Inception weights file on disk (--fid_weights); nothing is
downloaded. With a segmenter (--segmenter) the semantic score (util/evaluation/semantic.py) of the
outputs, and of the real targets as its ceiling, is taken against the input label maps: per image, and
over the whole set from one confusion matrix, as the FCN-score is. metrics.json has the whole-set
figures under 'semantic'; in metrics.csv they fill the semantic columns of the 'mean' row (they are not
means of the per-image figures) and of a last row, 'real photos'.
"""
import csv
import io
import json
import math
import os

import torch

from util.evaluation import fid, metrics
from util.evaluation.semantic import SCORES, SemanticScore, format_semantic, to_network_range
from util.errors import UserError
from util.files import atomic_write_text

METRICS = ('l1', 'psnr', 'ssim')
# Worst first: the largest L1, the lowest PSNR or SSIM.
WORST_FIRST_DESCENDING = {'l1': True, 'psnr': False, 'ssim': False}
# What train.py --val_metric can rank generators by: the image metrics, and the semantic score with a segmenter.
RANKED_METRICS = tuple(WORST_FIRST_DESCENDING) + SCORES


def lower_is_better(metric):
    return WORST_FIRST_DESCENDING.get(metric, False)  # the semantic scores are accuracies: higher is better


def is_better(metric, score, than):
    """Whether score beats than (None: no score yet) on metric."""
    return than is None or (score < than if lower_is_better(metric) else score > than)


class Evaluation:
    """Collects per-image scores (and Inception features for FID/KID) while test.py runs."""

    def __init__(self, roles, sort_by=None, fid_weights=None, device='cpu', segmenter=None, label_maps=False,
                 mappings=None, preview_channels=(0, 1, 2)):
        """roles: the visual names of the model's 'input', 'output' and, if it has one, 'target' (a model's
        visual_roles). segmenter: a models.segmenter.Segmenter for the semantic score, or None; it needs
        label_maps, a model whose input can be a label map. mappings: {visual name: ValueMapping} of the
        model's visuals (data.visual_mappings), which scoring needs; preview_channels: the channels the 8-bit
        pictures show of data with more than three (--preview_channels)."""
        shown = ', '.join(roles.values())
        if segmenter is not None and not (label_maps and 'target' in roles):
            raise UserError(f'--segmenter scores photos made from label maps, but this model shows {shown}; '
                            f'use --model pix2pix on aligned labels|photo pairs')
        self.label_map = roles['input']
        self.pair = (roles['output'], roles['target']) if 'target' in roles else None
        if self.pair is None:
            for flag, value in (('--sort_by_metric', sort_by), ('--fid_weights', fid_weights)):
                if value:
                    raise UserError(f'{flag} needs targets to compare with, but this model shows only {shown}; '
                                    f'use a model that has them (pix2pix on aligned data, colorization)')
        self.sort_by = sort_by
        self.device = device
        self.inception = None
        if fid_weights:
            try:
                self.inception = fid.load_inception(fid_weights)
            except (FileNotFoundError, RuntimeError, ImportError) as e:
                raise UserError(f'--fid_weights: {e}')
        self.semantic = SemanticScore(segmenter) if segmenter is not None else None
        self.mappings, self.preview_channels = mappings, preview_channels
        self.mapping = mappings[self.pair[0]] if mappings and self.pair else None  # the output's and the target's
        # In units unless the data is 8-bit pictures, whose scores stay the reference's, on its PNGs.
        self.in_units = self.mapping is not None and not (self.mapping.is_8bit_full()
                                                          and self.mapping.channels in (1, 3))
        self.metrics = metrics.names_in_units(self.mapping.channels) if self.in_units else METRICS
        self.names, self.scores = [], []
        self.output_features, self.target_features = [], []

    @property
    def enabled(self):
        return self.pair is not None

    def add_batch(self, names, visuals, batch):
        """Score the first len(names) images of a batch. visuals: {visual name: the network's (N, C, H, W) values}
        (model.get_current_visuals()); batch: the loader's, whose 'target_units' (when it has them) are the
        targets' exact values in the data's units. Returns each image's scores."""
        targets = batch.get('target_units')
        return [self.add(name, {label: values[b] for label, values in visuals.items()},
                         None if targets is None else targets[b]) for b, name in enumerate(names)]

    def add(self, name, visuals, target_units=None):
        """Score one image: visuals {visual name: the network's (C, H, W) values}; target_units, the target's values
        in the data's units as read (else they come from its network values). Returns its scores."""
        output_label, target_label = self.pair
        # The 8-bit RGB pictures test.py shows, of the visuals scored on them: FID, KID and the semantic score
        # compare pictures, whatever the data.
        shown = set(self.pair) if not self.in_units or self.inception is not None else set()
        if self.semantic is not None:
            shown |= {self.label_map, *self.pair}
        pictures = {label: self.mappings[label].preview(visuals[label], self.preview_channels) for label in shown}
        if self.in_units:
            target = (self.mapping.to_array(visuals[target_label]) if target_units is None
                      else self.mapping.units_to_array(target_units))
            output = self.mapping.to_array(visuals[output_label])  # as test.py writes it
            scores = metrics.score_in_units(output, target, self.mapping.ranges)
        else:
            scores = metrics.score_pair(pictures[output_label], pictures[target_label])
        if self.semantic is not None:
            label_map, fake, real = (to_network_range(torch.from_numpy(pictures[k])[None])
                                     for k in (self.label_map, *self.pair))
            scores.update(self.semantic.update(fake, real, label_map, names=[f'{name} ({self.label_map})'])[0])
        self.names.append(name)
        self.scores.append(scores)
        if self.inception is not None:
            both = fid.features([pictures[output_label], pictures[target_label]], self.inception, device=self.device)
            self.output_features.append(both[0])
            self.target_features.append(both[1])
        return scores

    def summary(self):
        """Means over the images, plus FID and KID when there are Inception features."""
        result = metrics.summarize([{k: s[k] for k in self.metrics} for s in self.scores])
        if len(self.output_features) == 1:
            print('warning: FID and KID need at least 2 test images; left out')
        elif self.output_features:
            result['fid'] = fid.fid_from_features(self.output_features, self.target_features)
            result['kid'], result['kid_std'] = fid.kid_from_features(self.output_features, self.target_features)
        return result

    def order(self, count):
        """Gallery order of `count` rows: dataset order, or worst first by --sort_by_metric."""
        if not self.sort_by:
            return list(range(count))
        # sorted() is stable, so ties keep dataset order; NaN never occurs: the data read is finite.
        return sorted(range(count), key=lambda i: self.scores[i][self.sort_by],
                      reverse=WORST_FIRST_DESCENDING[self.sort_by])

    def finish(self, directory):
        """Write metrics.json and metrics.csv into directory; return the line of means for the gallery."""
        summary = self.summary()
        semantic = self.semantic.result() if self.semantic is not None else None
        self.write(directory, summary, semantic)
        units = f" in the data's units ({self.mapping.describe()})" if self.in_units else ''
        order = f'; worst {self.sort_by} first' if self.sort_by else ''
        line = (f'{format_scores(summary)} (mean of {len(self.scores)} images, {self.pair[0]} against '
                f'{self.pair[1]}{units}{order})')
        if semantic is not None:
            line += (f'. Semantic score of {self.pair[0]} against {self.label_map} over the whole set '
                     f'({semantic["classes"]} classes, segmenter {self.semantic.segmenter.path}): '
                     f'{format_semantic(semantic)}')
        return line

    def write(self, directory, summary, semantic=None):
        """metrics.json (means and per image; inf PSNR as null; the semantic score; scores in units, the mapping
        whose ranges they were taken over) and metrics.csv (per image, then the means; with the semantic score,
        its whole-set figures and the real photos' row)."""
        columns = self.metrics + (SCORES if semantic else ())
        report = {
            'output': self.pair[0], 'target': self.pair[1], 'count': len(self.scores),
            'mean': metrics.json_safe(summary),
            'images': [dict(name=name, **metrics.json_safe(s)) for name, s in zip(self.names, self.scores)],
        }
        if self.in_units:
            report['mapping'] = self.mapping.to_dict()
        if semantic:
            report['semantic'] = dict(semantic, segmenter=self.semantic.segmenter.path, label_map=self.label_map,
                                      palette=self.semantic.segmenter.palette.tolist(),
                                      **{role: metrics.json_safe(semantic[role]) for role in ('output', 'target') if role in semantic})
        atomic_write_text(os.path.join(directory, 'metrics.json'), json.dumps(report, indent=1) + '\n')
        table = io.StringIO()
        writer = csv.writer(table, lineterminator='\n')
        writer.writerow(('name',) + columns)
        for name, s in zip(self.names, self.scores):
            writer.writerow([name] + [repr(s[k]) for k in columns])
        mean = dict(summary, **(semantic['output'] if semantic else {}))
        writer.writerow(['mean'] + [repr(mean[k]) for k in columns])
        if semantic:
            writer.writerow(['real photos'] + [''] * len(self.metrics) + [repr(semantic['target'][k]) for k in SCORES])
        atomic_write_text(os.path.join(directory, 'metrics.csv'), table.getvalue())


def format_scores(scores):
    """'L1 0.1790, PSNR 12.86 dB, SSIM 0.2300' (+ FID and KID when present); scores in the data's units as
    'MAE 12.3 (0: 10.1, 1: 14.5), L1 0.0031, PSNR 41.27 dB (0: ..., 1: ...), SSIM 0.9712 (0: ..., 1: ...)',
    each channel's in brackets where there are several."""
    parts = [f'L1 {scores["l1"]:.4f}', f'PSNR {format_psnr(scores["psnr"])}{per_channel(scores, "psnr", format_psnr)}',
             f'SSIM {scores["ssim"]:.4f}{per_channel(scores, "ssim", "{:.4f}".format)}']
    if 'mae' in scores:
        parts.insert(0, f'MAE {scores["mae"]:.4g}{per_channel(scores, "mae", "{:.4g}".format)}')
    if 'fid' in scores:
        parts += [f'FID {scores["fid"]:.2f}', f'KID {scores["kid"]:.4f} ± {scores["kid_std"]:.4f}']
    if 'pixel_accuracy' in scores:  # an image's own semantic score
        parts.append(f'pixel accuracy {scores["pixel_accuracy"]:.3f}')
    return ', '.join(parts)


def per_channel(scores, metric, fmt):
    """' (0: A, 1: B)': each channel's metric where scores have them (several channels in units), else ''."""
    values = [f'{key[len(metric) + 1:-1]}: {fmt(value)}' for key, value in scores.items()
              if key.startswith(f'{metric}[')]
    return f' ({", ".join(values)})' if values else ''


def format_psnr(value):
    return f'{value:.2f} dB' if math.isfinite(value) else 'inf (identical)'
