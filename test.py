"""Translate images with a trained generator and write an HTML gallery.

    python test.py --dataroot ./datasets/facades --name facades_pix2pix --model pix2pix --direction BtoA
    python test.py --dataroot ./my_labels --name facades_label2photo_pretrained --model test
    python test.py --dataroot ./photo.png --name NAME     (one image, or a folder of them: generator only)

Results go to results_dir/name/<phase>_<epoch>/: images/ and index.html. Every image is processed unless
--num_test caps it. Architecture options and value mappings come from the checkpoint's folder; each visual
is written in the data's type and units (8-bit pictures as PNG; 16-bit one-channel PNG, or TIFF, beside an
8-bit _preview.png). --tile translates large images in overlapping tiles (models/tiling.py).
When the model has targets (pix2pix on aligned data, colorization), each output is scored against its
target (L1, PSNR, SSIM, and for data other than 8-bit pictures the MAE, all in the data's units; FID and KID
with --fid_weights; with --segmenter, the semantic score against the input label maps) into metrics.json and
metrics.csv, the means head the gallery, and --sort_by_metric lists the worst images first.
"""
import os

import models
from data import create_dataloader, visual_mappings
from models.checkpoint import file_prefix
from models.segmenter import load_segmenter
from options.test_options import TestOptions
from util.display import html
from util.display.visualizer import progress_bar
from util.evaluation.scores import Evaluation, format_scores
from util.images import save_visual
from util.value_mapping import parse_channels


def main(argv=None):
    options = TestOptions()
    # With the architecture and value mappings the checkpoint was saved with; one pass, in order, no flip.
    # Single images rather than pairs: the generator alone (--model test).
    opt = options.parse(argv)
    options.save_and_print(opt, 'test_opt')
    segmenter = load_segmenter(opt.segmenter, opt.device) if opt.segmenter else None  # a bad file fails here, first

    loader = create_dataloader(opt, shuffle=False)
    print(f'The number of test images = {len(loader.dataset)} ({loader.num_workers} loader worker processes)')
    model = models.create_model(opt)
    model.setup(opt)  # loads the generator and puts it in its test mode: the paper's, or --eval's
    mappings = visual_mappings(opt, model.visual_names, model.visual_roles['input'])
    pictured = parse_channels(opt.preview_channels)
    evaluation = Evaluation(model.visual_roles, opt.sort_by_metric, opt.fid_weights, opt.device, segmenter,
                            model.translates_label_maps, mappings, pictured)

    web_dir = os.path.join(opt.results_dir, opt.name, f'{opt.phase}_{file_prefix(opt)}')
    webpage = html.HTML(web_dir, f'Experiment = {opt.name}, Phase = {opt.phase}, Epoch = {opt.epoch}')
    total = min(opt.num_test, len(loader.dataset))
    webpage.add_table(html.gallery_summary(opt, file_prefix(opt), total))
    rows = translate(model, loader, evaluation, webpage, opt, total, mappings, pictured)
    if evaluation.scores:
        means = evaluation.finish(web_dir)  # metrics.json and metrics.csv
        webpage.add_text(means)
        print(means)
    for i in evaluation.order(len(rows)):
        header, pictures, labels, files = rows[i]
        webpage.add_header(header)
        webpage.add_images(pictures, labels, files, width=opt.display_winsize)
    webpage.save()
    print(f'processed {len(rows)} images; gallery at {os.path.join(web_dir, "index.html")}')


def translate(model, loader, evaluation, webpage, opt, total, mappings, preview_channels):
    """Run the generator over the first `total` images, save every visual in the data's units and type (with a
    picture of it where the file is not one: preview_channels, of mappings {visual: ValueMapping}) and score the
    outputs. Returns the gallery's rows (header, picture names, labels, file names), added at the end so they
    can be sorted."""
    rows = []
    roles = model.visual_roles
    for data in progress_bar(loader, desc='test', total=-(-total // opt.batch_size)):
        if len(rows) >= total:  # here rather than after the last batch, so that the bar counts that batch
            break
        model.set_input(data)
        model.test()
        visuals = model.get_current_visuals()
        # Real images are written from the values read, so that a file's values come back bit for bit.
        units = {roles[role]: data[f'{role}_units'] for role in ('input', 'target') if f'{role}_units' in data}
        stems = [os.path.splitext(os.path.relpath(path, loader.dataset.image_dir))[0].replace(os.sep, '_')
                 for path in model.get_image_paths()[:total - len(rows)]]
        scores = evaluation.add_batch(stems, visuals, data) if evaluation.enabled else None
        for b, stem in enumerate(stems):
            pictures, files = [], []
            for label, image in visuals.items():
                picture, file = save_visual(image[b], mappings[label], webpage.get_image_dir(), f'{stem}_{label}',
                                            units[label][b] if label in units else None, opt.aspect_ratio,
                                            preview_channels)
                pictures.append(picture)
                files.append(file)
            header = f'{stem}: {format_scores(scores[b])}' if scores else stem
            rows.append((header, pictures, list(visuals), files))
    return rows


if __name__ == '__main__':
    main()
