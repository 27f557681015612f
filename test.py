"""Translate images with a trained generator and write an HTML gallery.

    python test.py --dataroot ./datasets/facades --name facades_pix2pix --model pix2pix --direction BtoA
    python test.py --dataroot ./my_labels --name facades_label2photo_pretrained --model test

Results go to results_dir/name/<phase>_<epoch>/: images/*.png and index.html. Every image is
processed unless --num_test caps it. Architecture options come from the checkpoint's folder.
"""
import os

from data import create_dataloader
from models import create_model
from options.test_options import TestOptions
from util import html, util

options = TestOptions()
opt = options.parse()
# Test settings as in the reference: one pass, in order, no augmentation, no display.
opt.num_threads = 0
opt.serial_batches = True
opt.no_flip = True
opt.display_id = -1
options.save_and_print(opt, 'test_opt')

loader = create_dataloader(opt, shuffle=False)
model = create_model(opt)
model.setup(opt)
if opt.eval:
    model.eval()

web_dir = os.path.join(opt.results_dir, opt.name, f'{opt.phase}_{model.checkpoint_prefix(opt)}')
webpage = html.HTML(web_dir, f'Experiment = {opt.name}, Phase = {opt.phase}, Epoch = {opt.epoch}')
webpage.add_text(f'model {opt.model}, netG {opt.netG}, epoch {model.checkpoint_prefix(opt)}, '
                 f'{"eval" if opt.eval else "train"} mode, dataroot {opt.dataroot}')
count = 0
for data in loader:
    if count >= opt.num_test:
        break
    model.set_input(data)
    model.test()
    visuals = model.get_current_visuals()
    paths = model.get_image_paths()
    for b in range(len(paths)):
        if count >= opt.num_test:
            break
        stem = os.path.splitext(os.path.relpath(paths[b], opt.dataroot))[0].replace(os.sep, '_')
        names = []
        for label, image in visuals.items():
            name = f'{stem}_{label}.png'
            util.save_image(util.tensor2im(image[b]), os.path.join(webpage.get_image_dir(), name), opt.aspect_ratio)
            names.append(name)
        webpage.add_header(stem)
        webpage.add_images(names, list(visuals), names, width=opt.display_winsize)
        count += 1
webpage.save()
print(f'processed {count} images; gallery at {os.path.join(web_dir, "index.html")}')
