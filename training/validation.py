"""Validation while training (train.py --val_freq N): every N epochs and after the last, G and its weight
average (--ema_decay) are scored on held-out images with test.py's scores, and the best of each is kept.

Each validation
  - runs the generators as test.py does by default, in the paper's test mode (BaseModel.testing_with), and
    scores their outputs with test.py's Evaluation (util/evaluation/scores.py): L1, PSNR and SSIM on the
    8-bit images test.py would save, or for other data (16-bit, float, given or measured ranges) the scores in
    the data's units against the targets' values as read;
  - appends a line to checkpoints/NAME/val_log.jsonl; train.py passes the same record to the displays (the
    web page's charts, visdom, TensorBoard);
  - saves a generator whose --val_metric beats its best so far as best_net_G.pth (best_net_G_ema.pth), in
    the usual checkpoint format (test.py --epoch best loads it), with best_net_G.json beside it: the epoch,
    the score and all the scores.

Under torchrun rank 0 validates and the other ranks wait for its record (each needs it for --plateau_on
val). The training's random streams are untouched: dropout draws from a side stream seeded with the
run's seed (the same masks at every validation, so epochs are compared on equal terms), and the batch
norm running statistics are left as they were. What validation knows (the last validated epoch, its
scores, the best so far) is saved in the training state, so a resumed run neither validates an epoch
twice nor forgets its best.
"""
import json
import os
import time

from torch.utils.data import default_collate

from data import visual_mappings
from training.random_states import side_stream
from util.display.loss_plot import VALIDATION_LOG
from util.display.visualizer import progress_bar
from util.distributed import broadcast, is_main
from util.errors import UserError
from util.evaluation import metrics
from util.evaluation.scores import Evaluation, format_scores, is_better
from util.evaluation.semantic import SCORES, SemanticScore
from util.files import atomic_write_text
from util.value_mapping import parse_channels


class Validation:
    def __init__(self, opt, state, loader, saver, segmenter=None):
        """loader: data.create_validation_loader(opt), None without --val_freq. state: the TrainingState,
        which saves what validation knows (state.validation) with everything else. saver: the NetworkSaver
        (training/saving.py) of the model to be trained, which writes the best generators. segmenter
        (--segmenter): a models.segmenter.Segmenter that adds the semantic score."""
        self.opt = opt
        self.state = state
        self.loader = loader
        self.saver = saver
        self.segmenter = segmenter
        model = saver.model
        if loader is not None and segmenter is not None:
            self.evaluation(model)  # a model that does not translate label maps fails now
            self.check_palette(model)
        if loader is not None and 'target' not in model.visual_roles:
            raise UserError(f'--val_freq scores outputs against targets, but --model {opt.model} shows only '
                            f'{", ".join(model.visual_names)}; drop --val_freq')

    def evaluation(self, model):
        """test.py's Evaluation of the model's outputs."""
        return Evaluation(model.visual_roles, segmenter=self.segmenter, label_maps=model.translates_label_maps,
                          mappings=visual_mappings(self.opt, model.visual_names, model.visual_roles['input']),
                          preview_channels=parse_channels(self.opt.preview_channels))

    def check_palette(self, model):
        """Refuse a segmenter made for other label maps now, on the first validation image's, rather than at
        the first validation, hours in. Every rank checks the same image, so all stop together and none waits
        for the others until --dist_timeout."""
        model.set_input(default_collate([self.loader.dataset[0]]))  # as a validation batch reaches the model
        label_map = getattr(model, model.visual_roles['input'])
        name = f'{model.get_image_paths()[0]} ({model.visual_roles["input"]}, the first validation image)'
        SemanticScore(self.segmenter).read_label_maps(label_map, names=[name])

    def due(self, epoch, last_epoch):
        """Every --val_freq epochs and after the last one, unless this epoch was validated before a save that
        this run resumed from."""
        return (self.loader is not None and (epoch % self.opt.val_freq == 0 or epoch == last_epoch)
                and self.state.validation.get('epoch') != epoch)

    def run(self, model, progress):
        """Score every generator of the model; returns the record val_log.jsonl gets, on every rank."""
        record = None
        if is_main():
            started = time.time()
            # The same dropout masks every time, and none of the training's random numbers used up.
            with side_stream(model.device, self.opt.seed):
                scores = {name: self.score(model, name, net) for name, net in model.generators().items()}
            record = {'epoch': progress.epoch, 'total_iters': progress.total_iters,
                      'split': self.loader.dataset.image_dir, 'images': len(self.loader.dataset),
                      'seconds': round(time.time() - started, 3), 'scores': scores,
                      'best': self.keep_best(progress, scores)}
            with open(os.path.join(self.state.dir, VALIDATION_LOG), 'a') as log:
                log.write(json.dumps({**record, 'scores': {name: metrics.json_safe(values)
                                                           for name, values in scores.items()}}) + '\n')
            report = '; '.join(f'{name}: {format_scores(values)}' for name, values in scores.items())
            best = f'; new best {self.opt.val_metric}: {", ".join(record["best"])}' if record['best'] else ''
            print(f'validation at epoch {progress.epoch} ({record["images"]} images of {record["split"]}, '
                  f'{record["seconds"]:.1f} s): {report}{best}', flush=True)
        record = broadcast(record)  # the other ranks wait here
        best = dict(self.state.validation.get('best', {}))
        best.update({name: {'epoch': record['epoch'], 'metric': self.opt.val_metric,
                            'score': record['scores'][name][self.opt.val_metric]} for name in record['best']})
        self.state.validation = {'epoch': record['epoch'], 'scores': record['scores'], 'best': best}
        return record

    def score(self, model, name, net):
        """Means of test.py's scores of net's outputs over the validation images, and with a segmenter the
        semantic score over the whole split (one confusion matrix, as test.py reports it)."""
        evaluation = self.evaluation(model)
        with model.testing_with(net):
            for data in progress_bar(self.loader, desc=f'validating {name}', leave=False):
                model.set_input(data)
                model.test()
                evaluation.add_batch(model.get_image_paths(), model.get_current_visuals(), data)
        semantic = evaluation.semantic.result()['output'] if evaluation.semantic is not None else {}
        return {**evaluation.summary(), **{k: semantic[k] for k in SCORES if k in semantic}}

    def keep_best(self, progress, scores):
        """Save each generator that beats its best --val_metric so far as best_net_<name>.pth, then its
        record as best_net_<name>.json; returns their names."""
        metric = self.opt.val_metric
        # A best by another metric (--val_metric changed on resuming) is no bar: the first score sets a new one.
        best = {name: entry['score'] for name, entry in self.state.validation.get('best', {}).items()
                if entry['metric'] == metric}
        improved = [name for name, values in scores.items() if is_better(metric, values[metric], best.get(name))]
        for name in improved:
            self.saver.save('best', [name])
            # Written after the weights: a crash in between leaves the record of the previous best beside
            # the newer, better file, never a record of weights that were not saved.
            atomic_write_text(os.path.join(self.state.dir, f'best_net_{name}.json'), json.dumps({
                'epoch': progress.epoch, 'total_iters': progress.total_iters, 'metric': metric,
                'score': metrics.json_safe(scores[name])[metric], 'scores': metrics.json_safe(scores[name]),
                'split': self.loader.dataset.image_dir, 'images': len(self.loader.dataset)}, indent=1) + '\n')
        return improved

    def score_at(self, epoch):
        """G's --val_metric at this epoch, if it was validated (for --plateau_on val); None otherwise."""
        record = self.state.validation
        return record['scores']['G'][self.opt.val_metric] if record.get('epoch') == epoch else None
