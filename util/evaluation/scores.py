"""Scores of test.py's outputs against their targets, for metrics.json, metrics.csv and the gallery.

Scores are taken on the 8-bit RGB images test.py saves (util.images.tensor2im), so they can be recomputed
from the PNGs. FID and KID need the Inception weights file on disk (--fid_weights); nothing is
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

    def __init__(self, roles, sort_by=None, fid_weights=None, device='cpu', segmenter=None, label_maps=False):
        """roles: the visual names of the model's 'input', 'output' and, if it has one, 'target' (a model's
        visual_roles). segmenter: a models.segmenter.Segmenter for the semantic score, or None; it needs
        label_maps, a model whose input can be a label map."""
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
        self.names, self.scores = [], []
        self.output_features, self.target_features = [], []

    @property
    def enabled(self):
        return self.pair is not None

    def add(self, name, images):
        """Score one image; `images` maps visual names to uint8 HxWx3 arrays. Returns its scores."""
        output, target = images[self.pair[0]], images[self.pair[1]]
        scores = metrics.score_pair(output, target)
        if self.semantic is not None:
            label_map, fake, real = (to_network_range(torch.from_numpy(images[k])[None])
                                     for k in (self.label_map, *self.pair))
            scores.update(self.semantic.update(fake, real, label_map, names=[f'{name} ({self.label_map})'])[0])
        self.names.append(name)
        self.scores.append(scores)
        if self.inception is not None:
            both = fid.features([output, target], self.inception, device=self.device)
            self.output_features.append(both[0])
            self.target_features.append(both[1])
        return scores

    def summary(self):
        """Means over the images, plus FID and KID when there are Inception features."""
        result = metrics.summarize([{k: s[k] for k in METRICS} for s in self.scores])
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
        # sorted() is stable, so ties keep dataset order; NaN never occurs for uint8 inputs.
        return sorted(range(count), key=lambda i: self.scores[i][self.sort_by],
                      reverse=WORST_FIRST_DESCENDING[self.sort_by])

    def finish(self, directory):
        """Write metrics.json and metrics.csv into directory; return the line of means for the gallery."""
        summary = self.summary()
        semantic = self.semantic.result() if self.semantic is not None else None
        self.write(directory, summary, semantic)
        order = f'; worst {self.sort_by} first' if self.sort_by else ''
        line = (f'{format_scores(summary)} (mean of {len(self.scores)} images, {self.pair[0]} against '
                f'{self.pair[1]}{order})')
        if semantic is not None:
            line += (f'. Semantic score of {self.pair[0]} against {self.label_map} over the whole set '
                     f'({semantic["classes"]} classes, segmenter {self.semantic.segmenter.path}): '
                     f'{format_semantic(semantic)}')
        return line

    def write(self, directory, summary, semantic=None):
        """metrics.json (means and per image; inf PSNR as null; the semantic score) and metrics.csv (per
        image, then the means; with the semantic score, its whole-set figures and the real photos' row)."""
        columns = METRICS + (SCORES if semantic else ())
        report = {
            'output': self.pair[0], 'target': self.pair[1], 'count': len(self.scores),
            'mean': metrics.json_safe(summary),
            'images': [dict(name=name, **metrics.json_safe(s)) for name, s in zip(self.names, self.scores)],
        }
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
            writer.writerow(['real photos'] + [''] * len(METRICS) + [repr(semantic['target'][k]) for k in SCORES])
        atomic_write_text(os.path.join(directory, 'metrics.csv'), table.getvalue())


def format_scores(scores):
    """'L1 0.1790, PSNR 12.86 dB, SSIM 0.2300' (+ FID and KID when present)."""
    parts = [f'L1 {scores["l1"]:.4f}', f'PSNR {format_psnr(scores["psnr"])}', f'SSIM {scores["ssim"]:.4f}']
    if 'fid' in scores:
        parts += [f'FID {scores["fid"]:.2f}', f'KID {scores["kid"]:.4f} ± {scores["kid_std"]:.4f}']
    if 'pixel_accuracy' in scores:  # an image's own semantic score
        parts.append(f'pixel accuracy {scores["pixel_accuracy"]:.3f}')
    return ', '.join(parts)


def format_psnr(value):
    return f'{value:.2f} dB' if math.isfinite(value) else 'inf (identical)'
