"""A local web page to try trained generators: pick an experiment, drop an image, see and download its translation.

    python app.py --name facades_pix2pix           # then open http://127.0.0.1:7860
    python app.py --checkpoints_dir ./checkpoints --epoch 200 --model_suffix _ema --port 8000

The page lists every experiment under --checkpoints_dir that has <epoch>_net_G<model_suffix>.pth, --name
first. An upload is translated as `test.py --eval --preprocess none --dataroot IMAGE --name NAME` would:
with the generator alone (colorization experiments: from the image's lightness), in eval mode (running
statistics, no dropout, so the same image always gives the same output), at the image's own size. The
page reports the time per image. It is served by Gradio, an optional package (pip install gradio), which
serves its own front-end: the page fetches nothing from the internet, and the server listens on 127.0.0.1.
"""
import os
import shutil
import sys
import tempfile
import time

import torch
from PIL import Image, UnidentifiedImageError

import models
from data import find_dataset_class
from models.checkpoint import file_prefix, read_architecture
from options.app_options import AppOptions
from util.errors import UserError
from util.images import save_image, tensor2im

# The image formats test.py reads (data/image_folder.IMG_EXTENSIONS), by the name PIL gives the file's format.
FORMATS = {'PNG': '.png', 'JPEG': '.jpg', 'BMP': '.bmp', 'TIFF': '.tif', 'WEBP': '.webp', 'PPM': '.ppm'}
GRAY_MODES = ('1', 'L', 'LA', 'I', 'I;16', 'I;16B', 'I;16L', 'F')
# Small images fill their frame, their pixels shown as squares rather than blurred.
CSS = '#input img, #output img {width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated}'


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    opt = AppOptions().parse(argv)
    translator = Translator(argv, opt)
    gradio = import_gradio()
    page = build_page(gradio, translator)
    print(f'experiments: {", ".join(translator.experiments)}; serving the page on http://127.0.0.1:{opt.port}')
    try:
        page.launch(server_name='127.0.0.1', server_port=opt.port, ssr_mode=False, show_error=True,
                    footer_links=['gradio'], css=CSS)
    except OSError as e:
        raise UserError(f'cannot serve on 127.0.0.1:{opt.port} ({e}); choose another --port')


def import_gradio():
    # Otherwise Gradio reports usage to its servers and asks for its latest version, over the internet.
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    try:
        import gradio
    except ImportError:
        raise UserError('app.py needs gradio, which is optional: pip install "gradio>=6"')
    if int(gradio.__version__.split('.')[0]) < 6:
        raise UserError(f'app.py needs gradio 6 or newer (this is {gradio.__version__}): pip install -U "gradio>=6"')
    return gradio


def list_experiments(opt):
    """The folders under --checkpoints_dir holding the generator file that --epoch/--model_suffix name, --name first."""
    generator = f'{file_prefix(opt)}_net_G{opt.model_suffix}.pth'
    root = opt.checkpoints_dir
    found = sorted(name for name in (os.listdir(root) if os.path.isdir(root) else [])
                   if os.path.isfile(os.path.join(root, name, generator)))
    if not found:
        raise UserError(f'no experiment under {root} has a {generator}: train one (python train.py --name NAME), '
                        f'or point --checkpoints_dir, --epoch and --model_suffix at one')
    if opt.name in found:
        return [opt.name] + [name for name in found if name != opt.name]
    if opt.is_typed('name'):
        raise UserError(f'{os.path.join(root, opt.name, generator)} does not exist; experiments with one: '
                        f'{", ".join(found)}')
    return found


class Translator:
    """The experiments under --checkpoints_dir, each loaded on first use, and the translation of one upload."""

    def __init__(self, argv, opt):
        self.argv, self.opt = argv, opt
        self.experiments = list_experiments(opt)
        self.loaded = {}
        self.scratch = tempfile.mkdtemp(prefix='pix2pix_app_')

    def load(self, name):
        """(options, model) of an experiment, as test.py --eval --preprocess none would build them."""
        if name not in self.loaded:
            if name not in self.experiments:
                raise UserError(f'unknown experiment {name!r}; choose one of {", ".join(self.experiments)}')
            saved = read_architecture(self.opt.derive(name=name)) or {}
            # Pairs need targets; single images take the generator alone (as test.py does for them).
            model = 'colorization' if saved.get('model') == 'colorization' else 'test'
            settings = dict(name=name, model=model, eval=True, preprocess='none', no_flip=True)
            settings.update({'direction': saved['direction']} if 'direction' in saved else {})
            opt = AppOptions().parse(self.argv, settings)
            model = models.create_model(opt)
            model.setup(opt)  # in --eval's test mode
            self.loaded[name] = opt, model
        return self.loaded[name]

    def translate(self, name, upload):
        """(input picture, output PNG path, seconds) for the uploaded file; UserError for a bad upload."""
        opt, model = self.load(name)
        image_path, gray = self.checked_copy(upload)
        start = time.perf_counter()
        dataset = find_dataset_class(opt.dataset_mode)(opt.derive(dataroot=image_path))
        if getattr(dataset, 'channels', None) == 3 and gray:  # what single images are converted to
            raise UserError(f'{os.path.basename(upload)} is a grayscale image, but {name} translates colour (RGB) '
                            f'images: upload a colour image')
        model.set_input(torch.utils.data.default_collate([dataset[0]]))
        model.test()
        visuals = model.get_current_visuals()
        output = tensor2im(visuals[model.visual_roles['output']])
        seconds = time.perf_counter() - start
        output_path = os.path.join(self.scratch, f'{os.path.splitext(os.path.basename(upload))[0]}_{name}.png')
        save_image(output, output_path)
        return tensor2im(visuals[model.visual_roles['input']]), output_path, seconds

    def checked_copy(self, upload):
        """(path, grayscale?) of the upload, checked from its header alone (a huge image is refused before it
        is decoded) and copied under the extension of its format, so that the datasets read it as test.py would."""
        file = os.path.basename(upload)
        kinds = 'a PNG, JPEG, BMP, TIFF, WebP or PPM image'
        try:
            with Image.open(upload) as image:
                (width, height), mode, kind = image.size, image.mode, image.format
        except Image.DecompressionBombError:
            raise UserError(f'{file} has more pixels than PIL will open: upload an image of at most '
                            f'{self.opt.max_image_size} pixels per side')
        except (UnidentifiedImageError, OSError):
            raise UserError(f'{file} is not an image: upload {kinds}')
        if kind not in FORMATS:
            raise UserError(f'{file} is a {kind} image: upload {kinds}')
        if max(width, height) > self.opt.max_image_size:
            raise UserError(f'{file} is {width}x{height} pixels, larger than this page takes: at most '
                            f'{self.opt.max_image_size} pixels per side (app.py --max_image_size); upload a smaller image')
        path = os.path.join(self.scratch, 'upload' + FORMATS[kind])
        shutil.copyfile(upload, path)
        return path, mode in GRAY_MODES


def build_page(gr, translator):
    device = translator.opt.device

    def run(name, upload):
        if not upload:
            return None, None, ''
        try:
            source, output, seconds = translator.translate(name, upload)
        except UserError as e:
            return None, None, f'**Error:** {e.message}'
        height, width = source.shape[:2]
        return source, output, f'{width}x{height} pixels: {seconds * 1000:.0f} ms per image ({device})'

    with gr.Blocks(title='pix2pix') as page:
        gr.Markdown('## pix2pix\nPick an experiment, then drop an image below or click to choose one. The output '
                    'is the generator in eval mode at the image\'s own size, as `test.py --eval --preprocess none`.')
        experiment = gr.Dropdown(translator.experiments, value=translator.experiments[0], label='Experiment')
        upload = gr.File(label='Image', type='filepath', elem_id='upload')
        status = gr.Markdown(elem_id='status')
        with gr.Row():
            source = gr.Image(label='Input', format='png', interactive=False, buttons=[], height=320,
                              elem_id='input')
            output = gr.Image(label='Output', type='filepath', interactive=False, buttons=['download'], height=320,
                              elem_id='output')
        for event in (upload.change, experiment.change):  # one at a time: they share the models
            event(run, [experiment, upload], [source, output, status], concurrency_id='translate',
                  concurrency_limit=1)
    return page


if __name__ == '__main__':
    main()
