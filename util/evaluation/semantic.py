"""The semantic score: how well a segmenter trained on real photos recovers the input label map from a
generated photo (the FCN-score of the pix2pix paper, section 4.2, with our own segmenter).

Per pixel, the true class comes from the input label map's colour (util/evaluation/palette.py) and the
predicted class from the segmenter run on the photo. Over a whole test set they fill one confusion matrix
C (C[i, j]: pixels of true class i predicted as j), from which, as the FCN code computes them:
    pixel accuracy       sum_i C[i, i] / sum C
    mean class accuracy  mean over classes i of C[i, i] / sum_j C[i, j]
    mean IoU             mean over classes i of C[i, i] / (sum_j C[i, j] + sum_j C[j, i] - C[i, i])
A class absent from the truth of the whole set has no class accuracy (0/0), and one absent from both
the truth and the prediction no IoU: they are left out of the means, as the FCN code's nanmean leaves
them (a class predicted but absent from the truth counts, with IoU 0). The pix2pix reference's copy of
that code adds 1e-12 to each denominator, which turns them into zeros instead; with every class present
in the test set, as in facades', the two agree.
Scoring the real target photos the same way gives the ceiling: what the segmenter reaches on real photos.

    score = SemanticScore(segmenter)            # models.segmenter.load_segmenter(path, device)
    score.update(fake, real, label_map)         # batches (N, 3, H, W) in [-1, 1]; real may be None
    score.result()                              # {'output': {...}, 'target': {...}, ...}

Photos and label maps are first rounded to 8 bits, as test.py saves them, so the score of a test run can
be recomputed from its PNGs.
"""
import math

import torch

from util.errors import UserError
from util.evaluation.palette import IGNORE, TOLERANCE, label_classes, nearest_classes

SCORES = ('pixel_accuracy', 'class_accuracy', 'mean_iou')
NAMES = {'pixel_accuracy': 'pixel accuracy', 'class_accuracy': 'mean class accuracy', 'mean_iou': 'mean IoU'}
MOST_UNMATCHED = 0.5  # a label map with more of its pixels away from every palette colour is not this palette's


def unmatched_shares(nearest):
    """The share of each label map's pixels that is far from every palette colour, from nearest_classes'
    answer (N, H, W)."""
    return (nearest == IGNORE).flatten(1).float().mean(1)


def refuse_other_palette(share, what, whose):
    """A UserError when more than MOST_UNMATCHED of the pixels of `what` (label maps) are far from every
    colour of `whose` (a palette, and why that matters): they were drawn with another palette."""
    if share > MOST_UNMATCHED:
        raise UserError(f'{what}: {share:.0%} of the pixels are far from every colour of {whose}')


def confusion_matrix(truth, predicted, num_classes):
    """(K, K) int64 counts of pixels of true class i predicted as j; IGNORE pixels of truth are left out."""
    keep = truth != IGNORE
    index = truth[keep] * num_classes + predicted[keep]
    return torch.bincount(index, minlength=num_classes ** 2).reshape(num_classes, num_classes).cpu()


def scores(confusion):
    """Pixel accuracy, mean class accuracy and mean IoU of a confusion matrix (NaN without pixels), with
    the per-class accuracy and IoU as lists (None for a class absent from the truth, or from the truth
    and the prediction)."""
    confusion = confusion.double()
    correct = confusion.diagonal()
    truth, predicted = confusion.sum(1), confusion.sum(0)
    class_accuracy = correct / truth  # 0/0 = NaN: the class occurs nowhere in the truth
    iou = correct / (truth + predicted - correct)
    return {'pixel_accuracy': float(correct.sum() / confusion.sum()),
            'class_accuracy': float(class_accuracy.nanmean()),
            'mean_iou': float(iou.nanmean()),
            'per_class_accuracy': json_list(class_accuracy), 'per_class_iou': json_list(iou)}


def json_list(values):
    """A tensor's values as a list, NaN as None (JSON has no NaN)."""
    return [None if math.isnan(v) else v for v in values.tolist()]


def to_uint8(images):
    """(N, C, H, W) in [-1, 1] -> (N, H, W, C) uint8, rounded as util.images.tensor2im rounds."""
    return ((images.detach().float().clamp(-1, 1) + 1) / 2 * 255).round().to(torch.uint8).permute(0, 2, 3, 1)


def to_network_range(images):
    """(N, H, W, C) uint8 -> (N, C, H, W) in [-1, 1]: the inverse of to_uint8."""
    return images.permute(0, 3, 1, 2).float() / 127.5 - 1


class SemanticScore:
    """Accumulates the semantic score over batches. `segmenter` is a models.segmenter.Segmenter, or any
    object with .palette ((K, 3) uint8), .device, .path and .classes(photos) -> (N, H, W) class indices."""

    def __init__(self, segmenter, tolerance=TOLERANCE):
        self.segmenter = segmenter
        self.tolerance = tolerance
        self.num_classes = len(segmenter.palette)
        self.confusion = {}  # 'output' (the generated photos), 'target' (the real ones)
        self.pixels = self.unmatched = 0

    def update(self, fake, real, label_map, names=None):
        """Score a batch: generated photos, the real photos (None: no ceiling) and the input label maps,
        (N, 3, H, W) tensors in [-1, 1] of one size. Returns the generated photos' own scores, one dict
        per image. `names` (one per image) name a label map that does not use the segmenter's colours."""
        device = self.segmenter.device
        labels, nearest = self.read_label_maps(label_map, names)
        self.pixels += labels[..., 0].numel()
        self.unmatched += float(unmatched_shares(nearest).sum()) * labels[0, ..., 0].numel()
        truth = label_classes(labels, self.segmenter.palette, self.tolerance, nearest)
        per_image = []
        for role, photos in (('output', fake), ('target', real)):
            if photos is None:
                continue
            predicted = self.segmenter.classes(to_network_range(to_uint8(photos.to(device))))
            confusions = [confusion_matrix(t, p, self.num_classes) for t, p in zip(truth, predicted)]
            self.confusion[role] = self.confusion.get(role, 0) + sum(confusions)
            if role == 'output':
                per_image = [{k: v for k, v in scores(c).items() if k in SCORES} for c in confusions]
        return per_image

    def read_label_maps(self, label_map, names=None):
        """Label maps (N, 3, H, W) in [-1, 1] as uint8 (N, H, W, 3) on the segmenter's device, and each pixel's
        nearest palette class (nearest_classes); a UserError for maps that are not RGB, or are drawn with
        another palette than the segmenter's. `names` (one per map) name them in the error."""
        labels = to_uint8(label_map.to(self.segmenter.device))
        if labels.shape[-1] != 3:
            raise UserError(f'the semantic score needs RGB label maps; these have {labels.shape[-1]} channel(s)')
        nearest = nearest_classes(labels, self.segmenter.palette, self.tolerance)
        for i, share in enumerate(unmatched_shares(nearest).tolist()):
            refuse_other_palette(
                share, names[i] if names else f'label map {i} of the batch',
                f'the segmenter\'s palette ({self.num_classes} classes, {self.segmenter.path}), so it was trained on '
                f'other label maps: train one on this dataset with scripts/train_segmenter.py (and the same '
                f'--direction; the label maps must be the input side)')
        return labels, nearest

    def result(self):
        """{'output': scores of the generated photos, 'target': of the real ones (when given),
        'classes': K, 'unmatched_pixels': share of label pixels away from every palette colour (edges)}."""
        result = {role: scores(confusion) for role, confusion in self.confusion.items()}
        result.update(classes=self.num_classes, unmatched_pixels=self.unmatched / max(self.pixels, 1))
        return result


def format_semantic(result):
    """'pixel accuracy 0.512, mean class accuracy 0.301, mean IoU 0.198 (real photos: 0.7, ...)'."""
    def three(s):
        return ', '.join(f'{NAMES[k]} {s[k]:.3f}' if math.isfinite(s[k]) else f'{NAMES[k]} n/a' for k in SCORES)
    text = three(result['output'])
    if 'target' in result:
        text += f' (real photos, the ceiling: {three(result["target"])})'
    return text
